"""Drift events POSTed to the admin's webhook, signed as Standard Webhooks (CONTRACT §4).

The secret is ``whsec_<base64>`` and the HMAC key its decoded bytes. ``webhook-id`` is
``msg_<event_id>``, the same on every retry so the receiver can drop repeats;
``webhook-timestamp`` and ``webhook-signature`` are made at each send, never stored, so a
retry is signed fresh. The body goes out as the exact text received.

Nothing here logs or raises the secret, a signature or the URL (which may carry a token):
failures carry only the HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal, Protocol

import httpx
from standardwebhooks import Webhook

import booking_durability
from booking_durability.drift_events import PolicyDriftData
from booking_durability.errors import InfrastructureError

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
# The secret's JSON key in Secrets Manager: {"secret": "whsec_..."}.
SECRET_KEY = "secret"  # noqa: S105 (a key name, not a secret)
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
    """Signs webhook requests with one ``whsec_`` secret; ``repr`` never shows it."""

    def __init__(self, secret: str) -> None:
        encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else ""
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise InvalidWebhookSecret("the webhook secret must be whsec_ followed by base64")
        self._webhook = Webhook(key)

    def __repr__(self) -> str:
        return "WebhookSigner(secret=<hidden>)"

    def headers(self, msg_id: str, body: str, at: datetime) -> dict[str, str]:
        """The three Standard Webhooks headers for ``body`` sent at ``at`` (whole Unix seconds)."""
        timestamp = math.floor(at.timestamp())
        signature = self._webhook.sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def signer_from_secret(secret: Mapping[str, str]) -> WebhookSigner:
    """The signer for a secret read as ``{"secret": "whsec_..."}`` (``Rotating``'s builder)."""
    value = secret.get(SECRET_KEY)
    if not value:
        raise InvalidWebhookSecret('the webhook secret must be a JSON object {"secret": "whsec_..."}')
    return WebhookSigner(value)


def webhook_id(event: PolicyDriftData) -> str:
    """The event's ``webhook-id``: derived from its id alone, so identical on every retry."""
    return f"msg_{event.event_id}"


class WebhookTransport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; the answer's status. Raises ``WebhookUnreachable`` when there is none."""
        ...


class HttpxTransport:
    """POSTs through one shared ``httpx.Client`` (its timeouts from the settings).

    The answer's body is never read: only its status matters, and a receiver trickling a large
    body must not hold the function.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

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
            with self._client.stream("POST", url, content=body, headers=dict(headers)) as response:
                return response.status_code, None
        except httpx.TimeoutException:
            return 0, WebhookUnreachable(None, "timed out")
        except httpx.HTTPError:
            return 0, WebhookUnreachable(None, "connection failed")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebhookChannel:
    """Delivers drift events to the configured webhook; ``signer`` follows the secret's rotation."""

    url: str = field(repr=False)
    signer: Callable[[], WebhookSigner]
    transport: WebhookTransport
    clock: Callable[[], datetime] = _utc_now
    name: ClassVar[Literal["webhook"]] = "webhook"

    def deliver(self, event: PolicyDriftData, body: str) -> None:
        """POST ``body`` (the event as received), signed now. Raises ``WebhookFailure``."""
        headers = {
            "content-type": "application/json",
            "user-agent": f"booking-durability/{booking_durability.__version__}",
            **self.signer().headers(webhook_id(event), body, self.clock()),
        }
        status = self.transport.post(self.url, body.encode("utf-8"), headers)
        if 200 <= status < 300:
            return
        if status in RETRYABLE_STATUSES or status >= 500:
            raise WebhookUnreachable(status, "receiver unavailable")
        raise WebhookRejected(status, "receiver refused")
