"""One provider interface, three implementations (Resend, SES, SMTP).

Providers translate their own failures into the four outcomes the consumer acts on
(docs/reference/queue-message.md#failure-handling). Messages of these errors are ours and never carry provider
text, which can echo the guest's address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from booking_durability.emails.models import message_id_for

#: The longest a provider may ask us to wait before trying again. A ``retry-after`` beyond it is
#: taken as this: anything longer is a provider outage, which retries and alarms handle, and a
#: bounded wait keeps every instant computed from it within range.
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class OutgoingEmail:
    """A rendered email ready for a provider. ``repr`` hides the recipient."""

    dedupe_key: str
    job_id: str
    sender: str
    to_email: str = field(repr=False)
    to_name: str | None = field(repr=False)
    subject: str = field(repr=False)
    html: str = field(repr=False)
    text: str = field(repr=False)

    @property
    def message_id(self) -> str:
        return message_id_for(self.dedupe_key)

    @property
    def headers(self) -> dict[str, str]:
        """Headers every delivered message carries (docs/reference/queue-message.md#message-headers)."""
        return {"X-Dedupe-Key": self.dedupe_key, "X-Job-Id": self.job_id}


class ProviderError(Exception):
    """A send that did not go out. ``status`` is the provider's numeric code, when it had one."""

    def __init__(self, provider: str, status: int | None = None, detail: str = "") -> None:
        self.provider = provider
        self.status = status
        super().__init__(f"{provider} {type(self).__name__} status={status} {detail}".strip())


class TransientProviderError(ProviderError):
    """5xx, timeout, connection error, 401/403 (which hit all traffic): retry with backoff."""


class ProviderNotConfigured(TransientProviderError):
    """The provider's credentials are missing, still the deploy-time placeholder, or unreadable.

    Retried like a transient failure (an operator puts the secret, and the next receive sends),
    counted and alarmed apart from provider outages, and dead-lettered with
    ``provider_not_configured`` when the retries run out. ``cause`` says which, in our words.
    """

    def __init__(self, provider: str, cause: str) -> None:
        super().__init__(provider, None, cause)
        self.cause = cause


class ProviderThrottled(ProviderError):
    """429 / SMTP 421: retry after ``retry_after`` seconds (None: the stage's throttle backoff)."""

    def __init__(self, provider: str, status: int | None = None, retry_after: float | None = None) -> None:
        retry_after = bounded_retry_after(retry_after)
        super().__init__(provider, status, f"retry_after={retry_after}")
        self.retry_after = retry_after


def bounded_retry_after(seconds: float | None) -> float | None:
    """A provider's wait as one we act on: None when unusable (NaN), else within
    0..``MAX_RETRY_AFTER_SECONDS``, so that no arithmetic on it can overflow."""
    if seconds is None or seconds != seconds:
        return None
    # Compared before any conversion: an int beyond float's range must not overflow.
    if seconds >= MAX_RETRY_AFTER_SECONDS:
        return MAX_RETRY_AFTER_SECONDS
    return float(seconds) if seconds > 0 else 0.0


class PermanentProviderError(ProviderError):
    """Any other refusal (4xx, SMTP 5xx): the email is failed and dead-lettered at once."""


class AlreadyDelivered(ProviderError):
    """The provider saw this idempotency key go out before (Resend 409 invalid_idempotent_request)."""


class EmailProvider(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> str:
        """Send once, idempotent on ``email.dedupe_key`` where the provider allows; return its id."""
        ...
