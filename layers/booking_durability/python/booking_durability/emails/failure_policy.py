"""What the consumer does after a provider failure (docs/reference/queue-message.md#failure-handling), decided
without any I/O.

Transient failures are retried with a backoff doubling with each receive, and dead-lettered
at the last receive (a provider without its credentials likewise, with its own reason);
throttles are waited out inside the invocation when that fits, else deferred as a fresh delayed
copy (never pushing the original toward the DLQ), until the deferral budget runs out; permanent
refusals are dead-lettered at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_durability.emails.models import FailureReason
from booking_durability.emails.providers.base import (
    AlreadyDelivered,
    PermanentProviderError,
    ProviderError,
    ProviderNotConfigured,
    ProviderThrottled,
    bounded_retry_after,
)

# Longest backoff between transient retries: five receives at most 15 min apart keep a failing
# email within about an hour of its time.
MAX_BACKOFF_SECONDS = 900
# Room kept in the invocation after a throttled wait: one more provider call and the bookkeeping.
INVOCATION_MARGIN_MS = 2_000


@dataclass(frozen=True)
class CountAsSent:
    """The provider saw this idempotency key go out before: the email was delivered."""


@dataclass(frozen=True)
class WaitHere:
    seconds: float


@dataclass(frozen=True)
class Defer:
    """Acknowledge the original and re-queue a fresh copy ``seconds`` out."""

    seconds: float


@dataclass(frozen=True)
class Retry:
    """Leave the message on the queue; it comes back after ``backoff_seconds``."""

    backoff_seconds: int


@dataclass(frozen=True)
class Expire:
    """Waiting would deliver it after ``not_after``."""


@dataclass(frozen=True)
class DeadLetter:
    reason: FailureReason


Decision = CountAsSent | WaitHere | Defer | Retry | Expire | DeadLetter


@dataclass(frozen=True)
class Attempt:
    """Where one delivery stands when the provider fails."""

    now: datetime
    receive_count: int
    throttle_deferrals: int  # copies already deferred for this key (from the ledger)
    waited_here: int  # throttles already waited out in this invocation
    remaining_ms: int
    not_after: datetime | None = None


@dataclass(frozen=True)
class FailurePolicy:
    backoff_base_seconds: int
    max_receives: int
    throttle_backoff_seconds: int
    max_throttle_deferrals: int
    provider_timeout_seconds: float

    def decide(self, failure: ProviderError, attempt: Attempt) -> Decision:
        if isinstance(failure, AlreadyDelivered):
            return CountAsSent()
        if isinstance(failure, ProviderThrottled):
            return self._after_throttle(failure.retry_after, attempt)
        if isinstance(failure, PermanentProviderError):
            return DeadLetter(FailureReason.PROVIDER_REJECTED)
        # Transient (5xx, timeouts, connection errors, 401/403), or no credentials to send with.
        if self.last_receive(attempt.receive_count):
            if isinstance(failure, ProviderNotConfigured):
                return DeadLetter(FailureReason.PROVIDER_NOT_CONFIGURED)
            return DeadLetter(FailureReason.TRANSIENT_EXHAUSTED)
        return Retry(self.backoff_seconds(attempt.receive_count))

    def last_receive(self, receive_count: int) -> bool:
        """Whether SQS would dead-letter the message itself if this receive failed: the consumer
        then does it, with the reason SQS's redrive could not give."""
        return receive_count >= self.max_receives

    def backoff_seconds(self, receive_count: int) -> int:
        """Visibility delay before the next attempt: doubles with each receive, at most 15 min."""
        doublings = min(max(0, receive_count - 1), 16)  # 2**16 base seconds is far past the cap
        return int(min(self.backoff_base_seconds * 2**doublings, MAX_BACKOFF_SECONDS))

    def _after_throttle(self, retry_after: float | None, attempt: Attempt) -> Decision:
        # Bounded (an hour) before any arithmetic, whoever made the failure.
        wait = bounded_retry_after(retry_after) or self.throttle_backoff_seconds
        if attempt.not_after is not None and attempt.now + timedelta(seconds=wait) > attempt.not_after:
            return Expire()
        needed_ms = (wait + self.provider_timeout_seconds) * 1000 + INVOCATION_MARGIN_MS
        if attempt.waited_here < self.max_throttle_deferrals and needed_ms < attempt.remaining_ms:
            return WaitHere(wait)
        if attempt.throttle_deferrals >= self.max_throttle_deferrals:
            return DeadLetter(FailureReason.THROTTLE_EXHAUSTED)
        return Defer(wait)
