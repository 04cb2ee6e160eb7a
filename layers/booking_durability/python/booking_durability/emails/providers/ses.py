"""Amazon SES through the API v2 ``SendEmail`` (Simple content: subject, text, HTML, headers).

SES has no idempotency key. Deduplication relies on our DynamoDB claim of the dedupe key
alone: a crash (or a lost response) between SES accepting the email and our mark-sent can
send it twice, once the claim's lease has run out and another receive takes it over. The
lease window bounds how soon that can happen; nothing here can rule it out. For the same
reason the client makes exactly one attempt per send (botocore's own retries would resend
after a read timeout): retries belong to the consumer, which re-claims first.

SES sets its own ``Message-ID``; ours travels as ``X-Dedupe-Key`` and ``X-Job-Id``.
"""

from __future__ import annotations

import threading
from email.utils import formataddr
from typing import Any

from booking_durability.emails.providers.base import (
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    ProviderThrottled,
    TransientProviderError,
)

_THROTTLED = frozenset(
    {"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException"}
)
_PERMANENT = frozenset({"MessageRejected", "BadRequestException"})
# These stop all sending, not one email: keep retrying (and alarming) instead of dead-lettering.
# An unverified MAIL FROM domain or a missing configuration set (NotFound) is a setup fault too.
_ACCOUNT_WIDE = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
    }
)


def classify_ses_error(provider: str, code: str, status: int | None) -> ProviderError:
    """Map an SES error code and HTTP status to the consumer's outcome
    (docs/reference/queue-message.md#failure-handling)."""
    if code in _THROTTLED or status == 429:
        return ProviderThrottled(provider, status, retry_after=None)
    if code in _ACCOUNT_WIDE:
        return TransientProviderError(provider, status, code)
    if code in _PERMANENT:
        return PermanentProviderError(provider, status, code)
    if status is None or status >= 500 or status in (401, 403):
        # Server faults, and credential or permission errors that hit every email alike.
        return TransientProviderError(provider, status, "service or credentials error")
    if 400 <= status < 500:
        return PermanentProviderError(provider, status, "refused")
    return TransientProviderError(provider, status, "unexpected status")


class SesProvider:
    """Sends through SES v2; the boto3 client is passed in or created on first send."""

    name: str = "ses"

    def __init__(self, client: Any | None = None, *, timeout_seconds: float = 10.0) -> None:
        self._client = client
        self._timeout_seconds = timeout_seconds
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return "SesProvider()"

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "sesv2",
                    config=Config(
                        connect_timeout=self._timeout_seconds,
                        read_timeout=self._timeout_seconds,
                        retries={"mode": "standard", "total_max_attempts": 1},
                    ),
                )
            return self._client

    def send(self, email: OutgoingEmail) -> str:
        """Send once (no idempotency at SES: see the module docstring); return SES's message id."""
        response, failure = self._send_email(email)
        if failure is not None:
            # Raised outside the ``except`` block: botocore's messages can echo the address.
            raise failure
        return str(response.get("MessageId", ""))

    def _request(self, email: OutgoingEmail) -> dict[str, Any]:
        return {
            "FromEmailAddress": email.sender,
            # formataddr quotes specials and MIME-encodes non-ASCII names, as SES requires.
            "Destination": {"ToAddresses": [formataddr((email.to_name or "", email.to_email))]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                    "Headers": [{"Name": name, "Value": value} for name, value in email.headers.items()],
                }
            },
        }

    def _send_email(self, email: OutgoingEmail) -> tuple[dict[str, Any], ProviderError | None]:
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        try:
            return self.client.send_email(**self._request(email)), None
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return {}, classify_ses_error(self.name, code, status if isinstance(status, int) else None)
        except ParamValidationError:
            # The same email would fail the same way again.
            return {}, PermanentProviderError(self.name, None, "request failed validation")
        except BotoCoreError:
            # Endpoint, connection, timeout and credential-resolution errors.
            return {}, TransientProviderError(self.name, None, "connection or client error")
