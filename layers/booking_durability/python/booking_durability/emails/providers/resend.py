"""Resend over HTTPS: idempotent on the dedupe key through Resend's ``Idempotency-Key``.

Resend keeps an idempotency key for 24 h: a retry with the same key and payload returns the
first response instead of sending again, the same key with another payload answers 409
``invalid_idempotent_request`` (the first send went out: docs/reference/queue-message.md#idempotent-send
counts it as sent) and a retry racing the first one answers 409 ``concurrent_idempotent_requests``
(transient).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime, quote
from typing import Any

import httpx

import booking_durability
from booking_durability.emails.providers.base import (
    MAX_RETRY_AFTER_SECONDS,
    AlreadyDelivered,
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    ProviderThrottled,
    TransientProviderError,
    bounded_retry_after,
)

_SPECIALS = set('()<>[]:;@\\,."')


def display_address(name: str | None, address: str) -> str:
    """``Name <addr>`` as Resend takes it (UTF-8 names as they are), quoting names with specials."""
    if not name:
        return address
    if _SPECIALS.intersection(name):
        return f'"{quote(name)}" <{address}>'
    return f"{name} <{address}>"


# delta-seconds (RFC 9110), leniently: a sign and a fraction are read too.
_SECONDS = re.compile(r"([+-]?)0*([0-9]+)(?:\.[0-9]*)?")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``retry-after`` header: delta-seconds or an HTTP date.

    None when absent or unusable; else within 0..``MAX_RETRY_AFTER_SECONDS`` (a date in the past
    is 0). Never raises, whatever the provider sends: nothing is converted before it is bounded.
    """
    if value is None:
        return None
    value = value.strip()
    seconds: float
    number = _SECONDS.fullmatch(value)
    if number is not None:
        sign, digits = number.groups()
        if len(digits) > 9:  # far beyond the cap either way
            return 0.0 if sign == "-" else MAX_RETRY_AFTER_SECONDS
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return bounded_retry_after(seconds)


class ResendProvider:
    """Sends through Resend's ``POST /emails``; the ``httpx.Client`` is made on first send and reused."""

    name: str = "resend"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.resend.com",
        timeout_seconds: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("resend needs an API key")
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout_seconds)
        self._client = client
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResendProvider(base_url={self._base_url!r})"

    @property
    def client(self) -> httpx.Client:
        # The consumer sends from several threads: create the shared client once.
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout)
            return self._client

    def send(self, email: OutgoingEmail) -> str:
        """Send once per dedupe key; return Resend's email id."""
        response = self._post(email)
        if isinstance(response, ProviderError):
            # Raised outside the ``except`` block so nothing of httpx's error is chained.
            raise response
        return self._outcome(response)

    def _post(self, email: OutgoingEmail) -> httpx.Response | ProviderError:
        payload = {
            "from": email.sender,
            "to": [display_address(email.to_name, email.to_email)],
            "subject": email.subject,
            "html": email.html,
            "text": email.text,
            "headers": {"Message-ID": email.message_id, **email.headers},
        }
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": email.dedupe_key,
            "User-Agent": f"booking-durability/{booking_durability.__version__}",
        }
        try:
            response = self.client.post(f"{self._base_url}/emails", json=payload, headers=headers)
        except httpx.TimeoutException:
            return TransientProviderError(self.name, None, "timed out")
        except (httpx.TransportError, httpx.DecodingError):
            return TransientProviderError(self.name, None, "connection failed")
        return response

    def _outcome(self, response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            body = _json_object(response)
            return str(body.get("id", ""))
        if status == 429:
            raise ProviderThrottled(
                self.name, status, retry_after=parse_retry_after(response.headers.get("retry-after"))
            )
        if status == 409:
            kind = _json_object(response).get("name")
            if kind == "invalid_idempotent_request":
                raise AlreadyDelivered(self.name, status, "idempotency key already used")
            if kind == "concurrent_idempotent_requests":
                raise TransientProviderError(self.name, status, "same idempotency key in flight")
            raise PermanentProviderError(self.name, status, "conflict")
        if status in (401, 403):
            raise TransientProviderError(self.name, status, "credentials refused")
        if status >= 500:
            raise TransientProviderError(self.name, status, "server error")
        if 400 <= status < 500:
            raise PermanentProviderError(self.name, status, "refused")
        # 1xx/3xx are not answers Resend gives: retry rather than lose the email.
        raise TransientProviderError(self.name, status, "unexpected status")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
