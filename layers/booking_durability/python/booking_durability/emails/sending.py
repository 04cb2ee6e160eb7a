"""Sending a claimed email through the provider, and acting on how that went.

``Sending.send`` calls the provider until it accepts, or until the pure ``FailurePolicy``
decides otherwise: wait a throttle out here, defer a fresh copy, retry after a backoff, expire,
or dead-letter. Every write it makes to the ledger is one only the lease holder may make; a
refused one (the lease ran out and another worker took over) is reported, never passed over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from booking_durability.emails.dispatch import Dispatch, IncomingMessage, RetryLater
from booking_durability.emails.failure_policy import (
    Attempt,
    CountAsSent,
    DeadLetter,
    Decision,
    Defer,
    Expire,
    FailurePolicy,
    Retry,
    WaitHere,
)
from booking_durability.emails.ledger import Change, StatusWrite
from booking_durability.emails.models import AdminDriftEmailJob, FailureReason, GuestEmailJob
from booking_durability.emails.ports import Ledger
from booking_durability.emails.providers.base import (
    EmailProvider,
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.observability import count, logger
from booking_durability.times import utc_now

Job = GuestEmailJob | AdminDriftEmailJob


class Outcome(StrEnum):
    """What became of one message (the batch processor reports it per record)."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    DEFERRED = "deferred"
    THROTTLED = "throttled"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Held:
    """A dedupe key we claimed: the lease token proves it, the counts travel with it."""

    job: Job
    message: IncomingMessage
    token: str
    attempts: int
    throttle_deferrals: int


@dataclass
class Sending:
    ledger: Ledger
    dispatch: Dispatch
    provider: Callable[[], EmailProvider]
    policy: FailurePolicy
    sender: str
    clock: Callable[[], datetime] = field(default=utc_now)
    sleep: Callable[[float], None] = time.sleep

    def send(self, held: Held, email: OutgoingEmail, remaining_ms: Callable[[], int]) -> Outcome:
        waited_here = 0
        while True:
            try:
                self.provider().send(email)
            except ProviderError as failure:
                _count_failure(failure)
                decision = self.policy.decide(failure, self._attempt(held, waited_here, remaining_ms()))
                if isinstance(decision, WaitHere):
                    waited_here += 1
                    self.sleep(decision.seconds)
                    continue
                if not isinstance(decision, CountAsSent):
                    return self._act_on(decision, held, failure)
                # A worker that lost its lease sent this very email before us (same idempotency key).
                logger.info("provider reports the email already delivered")
            return self._sent(held)

    def fail(self, held: Held, reason: FailureReason) -> Outcome:
        """The email will not go out unless redriven: record ``failed`` and dead-letter it."""
        unless_refused(self.ledger.finish(held.job.ref, held.token, Change.FAIL, self.clock(), reason))
        self.dispatch.dead_letter(held.message, reason, held.attempts, held.job.email_type)
        return Outcome.DEAD_LETTERED

    def _attempt(self, held: Held, waited_here: int, remaining_ms: int) -> Attempt:
        return Attempt(
            now=self.clock(),
            receive_count=held.message.receive_count,
            throttle_deferrals=held.throttle_deferrals,
            waited_here=waited_here,
            remaining_ms=remaining_ms,
            not_after=held.job.not_after,
        )

    def _act_on(self, decision: Decision, held: Held, failure: ProviderError) -> Outcome:
        match decision:
            case Expire():
                # Waiting would deliver it after the instant the booking app gave as too late.
                unless_refused(self.ledger.finish(held.job.ref, held.token, Change.EXPIRE, self.clock()))
                return expired()
            case Defer(seconds=seconds):
                return self._defer_throttled(held, seconds)
            case Retry(backoff_seconds=backoff):
                self._retry_transient(held, backoff, failure.status)
            case DeadLetter(reason=reason):
                if isinstance(failure, PermanentProviderError):
                    logger.warning("provider refused the email", extra={"provider_status": failure.status})
                return self.fail(held, reason)
        raise AssertionError(f"unhandled decision {decision!r}")

    def _sent(self, held: Held) -> Outcome:
        now = self.clock()
        self.ledger.mark_sent(held.job.ref, now)
        lag_ms = max(0.0, (now - held.job.deliver_at).total_seconds() * 1000)
        count("EmailSent")
        count("EmailDeliveryLagMs", lag_ms, "Milliseconds")
        logger.info("email sent", extra={"outcome": "sent", "attempts": held.attempts})
        return Outcome.SENT

    def _retry_transient(self, held: Held, backoff: int, status: int | None) -> None:
        unless_refused(self.ledger.release(held.job.ref, held.token, self.clock()))
        self.dispatch.back_off(held.message, backoff)
        logger.warning(
            "transient provider failure; retrying",
            extra={
                "provider_status": status,
                "receive_count": held.message.receive_count,
                "backoff_seconds": backoff,
            },
        )
        raise RetryLater(f"transient provider failure, retry in {backoff}s")

    def _defer_throttled(self, held: Held, wait: float) -> Outcome:
        now = self.clock()
        ref = held.job.ref
        # A fresh copy, so throttling never pushes the original toward the DLQ. The ledger keeps
        # the key from being claimed before retry-after, even when a hop brings the copy sooner.
        try:
            self.dispatch.requeue(
                held.message, held.job.email_type, delay=math.ceil(wait), attempts=held.attempts
            )
        except RetryLater:
            unless_refused(self.ledger.release(ref, held.token, now))  # the original comes back
            raise
        until = now + timedelta(seconds=wait)
        unless_refused(self.ledger.release(ref, held.token, now, throttled_until=until))
        logger.info(
            "provider throttled; re-queued",
            extra={"outcome": "throttled", "deferrals": held.throttle_deferrals + 1},
        )
        return Outcome.THROTTLED


def expired() -> Outcome:
    count("EmailExpiredSkipped")
    logger.info("email expired before it could be sent", extra={"outcome": "expired"})
    return Outcome.EXPIRED


def unless_refused(written: StatusWrite) -> None:
    """A lease holder's write was refused: our lease ran out and another worker took the key
    over (or it expired meanwhile). Its record stands; say so rather than pass over it."""
    if not written.done:
        count("EmailLeaseLost")
        logger.warning(
            "lease lost before our write; the current record stands",
            extra={"current_status": written.record.status.value},
        )


def _count_failure(failure: ProviderError) -> None:
    if isinstance(failure, ProviderThrottled):
        count("EmailThrottled")
    elif isinstance(failure, PermanentProviderError):
        count("EmailPermanentFailure")
    elif isinstance(failure, TransientProviderError):
        count("EmailTransientFailure")
