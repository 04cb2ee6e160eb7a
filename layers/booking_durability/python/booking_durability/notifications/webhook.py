"""Drift events POSTed to the admin's webhook, signed as Standard Webhooks
(docs/reference/notifications.md#signing).

The secret is ``whsec_<base64>`` and the HMAC key its decoded bytes. ``webhook-id`` is
``msg_<event_id>``, the same on every retry so the receiver can drop repeats;
``webhook-timestamp`` and ``webhook-signature`` are made at each send, never stored, so a
retry is signed fresh. The body goes out as the exact text received.

Where to send and what to sign with come together, as one secret: ``{"url": ..., "secret":
"whsec_...", "previous": "whsec_..."}``, ``previous`` only while the secret is rotated. Then every
request carries two signatures (``v1,<new> v1,<old>``, as Standard Webhooks allows), so a
receiver that still has the old key and one that already has the new key both accept it.

The URL is a secret too (it may carry the receiver's token): nothing here logs or raises it, the
secret or a signature (failures carry only the HTTP status), and no trace records it (see
:class:`HttpxTransport`).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

import booking_durability
from booking_durability.drift_events import PolicyDriftData
from booking_durability.errors import InfrastructureError
from booking_durability.metric_names import NotificationChannel
from booking_durability.times import utc_now

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
# The webhook secret's JSON keys: where to POST, the key to sign with, and while the secret is
# rotated, the key it replaces.
URL_KEY = "url"
SECRET_KEY = "secret"  # noqa: S105 (a key name, not a secret)
PREVIOUS_KEY = "previous"
# Plain http only to the machine itself (the local stack's sink): anywhere else a signed body,
# and the URL's token, would cross the network in clear.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Answers worth retrying: the receiver is busy, overloaded or timed out. Any other non-2xx
# answer is the receiver's final word (redirects are not followed: a signed body goes only
# where it was configured to).
RETRYABLE_STATUSES = frozenset({408, 429})


class InvalidWebhookSecret(InfrastructureError):
    """The configured secret is not ``whsec_<base64>`` (its value is never in the message)."""

    code = "WEBHOOK_SECRET_INVALID"


class WebhookSecretUnavailable(InfrastructureError):
    """Secrets Manager could not give the webhook secret (unreachable, missing or not JSON)."""

    code = "WEBHOOK_SECRET_UNAVAILABLE"


class WebhookFailure(Exception):
    """A POST that was not accepted. ``status`` is the receiver's answer, None when there was none."""

    def __init__(self, status: int | None, detail: str) -> None:
        self.status = status
        super().__init__(f"{type(self).__name__} status={status} {detail}")


class WebhookUnreachable(WebhookFailure):
    """Timeout, connection error, 408, 429, 5xx: the queue delivers the event again."""


class WebhookRejected(WebhookFailure):
    """Any other answer that is not 2xx: retrying would get the same answer."""


class WebhookSigner:
    """Signs webhook requests with a ``whsec_`` secret, and with the ``previous`` one too while it
    is rotated; ``repr`` never shows either."""

    def __init__(self, secret: str, previous: str | None = None) -> None:
        keys = [_key(secret, "the webhook secret")]
        if previous:
            keys.append(_key(previous, "the webhook secret's previous key"))
        self._webhooks = [Webhook(key) for key in keys]

    def __repr__(self) -> str:
        return f"WebhookSigner(keys={len(self._webhooks)}, secret=<hidden>)"

    def headers(self, msg_id: str, body: str, at: datetime) -> dict[str, str]:
        """The three Standard Webhooks headers for ``body`` sent at ``at`` (whole Unix seconds):
        one ``v1,<signature>`` per key, the current key's first, separated by spaces."""
        timestamp = math.floor(at.timestamp())
        signed_at = datetime.fromtimestamp(timestamp, UTC)
        signature = " ".join(webhook.sign(msg_id, signed_at, body) for webhook in self._webhooks)
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def _key(secret: str, what: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else ""
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise InvalidWebhookSecret(f"{what} must be whsec_ followed by base64")
    return key


@dataclass(frozen=True)
class WebhookTarget:
    """Where drift events go and how they are signed, as the webhook secret says."""

    url: str = field(repr=False)
    signer: WebhookSigner


def target_from_secret(secret: Mapping[str, str]) -> WebhookTarget:
    """The target of a secret read as ``{"url", "secret", "previous"?}`` (``Rotating``'s builder).

    Raises :class:`InvalidWebhookSecret`, naming the field at fault, never its value.
    """
    url, key = secret.get(URL_KEY), secret.get(SECRET_KEY)
    if not url or not key:
        raise InvalidWebhookSecret(
            'the webhook secret must be a JSON object {"url": "https://...", "secret": "whsec_..."}'
        )
    if not _sendable(url):
        raise InvalidWebhookSecret("the webhook secret's url must be https (plain http only to loopback)")
    return WebhookTarget(url=url, signer=WebhookSigner(key, secret.get(PREVIOUS_KEY) or None))


def _sendable(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host or any(character.isspace() for character in url):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)


def webhook_id(event: PolicyDriftData) -> str:
    """The event's ``webhook-id``: derived from its id alone, so identical on every retry."""
    return f"msg_{event.event_id}"


class WebhookTransport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; the answer's status. Raises ``WebhookUnreachable`` when there is none."""
        ...


class HttpxTransport:
    """POSTs through one pooled ``httpx.HTTPTransport``, used directly rather than through an
    ``httpx.Client``.

    The X-Ray SDK that the Powertools Tracer patches in replaces ``httpx.Client`` with one that
    records each request's host and path in a trace subsegment; the webhook URL is a secret, so
    these requests never go through a client. The answer's body is never read: only its status
    matters, and a receiver trickling a large body must not hold the function.
    """

    def __init__(self, timeout_seconds: float, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._timeout = httpx.Timeout(timeout_seconds).as_dict()

    def __repr__(self) -> str:
        return "HttpxTransport()"

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        status, failure = self._post(url, body, headers)
        if failure is not None:
            # Raised outside the ``except`` block so nothing of httpx's error (the URL) is chained.
            raise failure
        return status

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, WebhookFailure | None]:
        try:
            request = httpx.Request(
                "POST", url, content=body, headers=dict(headers), extensions={"timeout": self._timeout}
            )
            response = self._transport.handle_request(request)
            response.close()
            return response.status_code, None
        except httpx.TimeoutException:
            return 0, WebhookUnreachable(None, "timed out")
        except (httpx.HTTPError, httpx.InvalidURL):
            return 0, WebhookUnreachable(None, "connection failed")


@dataclass
class WebhookChannel:
    """Delivers drift events to the webhook; ``target`` follows the secret's rotation."""

    target: Callable[[], WebhookTarget]
    transport: WebhookTransport
    clock: Callable[[], datetime] = utc_now
    name: ClassVar[Literal[NotificationChannel.WEBHOOK]] = NotificationChannel.WEBHOOK

    def deliver(self, event: PolicyDriftData, body: str) -> None:
        """POST ``body`` (the event as received), signed now. Raises ``WebhookFailure``."""
        target = self.target()
        headers = {
            "content-type": "application/json",
            "user-agent": f"booking-durability/{booking_durability.__version__}",
            **target.signer.headers(webhook_id(event), body, self.clock()),
        }
        status = self.transport.post(target.url, body.encode("utf-8"), headers)
        if 200 <= status < 300:
            return
        if status in RETRYABLE_STATUSES or status >= 500:
            raise WebhookUnreachable(status, "receiver unavailable")
        raise WebhookRejected(status, "receiver refused")
