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
from typing import NoReturn

from booking_durability.emails.dispatch import Dispatch, IncomingMessage, Letter, RetryLater
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
    ProviderNotConfigured,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.errors import StoreUnavailable
from booking_durability.metric_names import Metric
from booking_durability.observability import count, logger
from booking_durability.times import utc_now

Job = GuestEmailJob | AdminDriftEmailJob


class EmailOutcome(StrEnum):
    """What became of one message (the batch processor reports it per record)."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    DEFERRED = "deferred"
    THROTTLED = "throttled"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class ClaimedKey:
    """A dedupe key we claimed: the lease token proves it, the counts travel with it.

    ``settled`` turns true once a write ended our hold on the key (or found it taken over):
    until then, whatever happens, the key is handed back before the message is let go.
    """

    job: Job
    message: IncomingMessage
    token: str
    attempts: int
    throttle_deferrals: int
    settled: bool = False

    def letter(self, reason: FailureReason) -> Letter:
        return Letter(reason, self.attempts, self.job.email_type, self.job.dedupe_key)

    def attempt(self, now: datetime, waited_here: int, remaining_ms: int) -> Attempt:
        """This try at sending, as the failure policy weighs it."""
        return Attempt(
            now=now,
            receive_count=self.message.receive_count,
            throttle_deferrals=self.throttle_deferrals,
            waited_here=waited_here,
            remaining_ms=remaining_ms,
            not_after=self.job.not_after,
        )

    def settle(self, write: Callable[[], StatusWrite]) -> bool:
        """Make a write that ends our hold on the key (tried twice); whether it was made.

        Refused counts as made: the lease ran out and the key is someone else's now.
        """
        written: list[StatusWrite] = []
        if not _twice(lambda: written.append(write())):
            return False
        self.settled = True
        unless_refused(written[-1])
        return True


@dataclass
class Sending:
    ledger: Ledger
    dispatch: Dispatch
    provider: Callable[[], EmailProvider]
    policy: FailurePolicy
    sender: str
    clock: Callable[[], datetime] = field(default=utc_now)
    sleep: Callable[[float], None] = time.sleep

    def while_held(self, held: ClaimedKey, work: Callable[[], EmailOutcome]) -> EmailOutcome:
        """``work`` on a key we claimed, never leaving the claim hanging whatever it raises.

        Whatever way the message leaves, the key is handed back unless a write ended our hold.
        An exception ``work`` did not map (our own bug, a provider raising outside its error
        types, a ledger write that failed twice) is a transient failure: retried with backoff,
        and on the last receive recorded ``failed`` and dead-lettered by us with
        ``transient_exhausted``, rather than left to SQS's redrive, which gives no reason.
        """
        try:
            try:
                return work()
            except RetryLater:
                raise
            except Exception as exc:
                # Its type only: its text may quote a response or the guest's data.
                logger.error("unexpected failure sending email", extra={"error_type": type(exc).__name__})
                count(Metric.EMAIL_UNEXPECTED_FAILURE)
                if self.policy.last_receive(held.message.receive_count):
                    return self.fail(held, FailureReason.TRANSIENT_EXHAUSTED)
                backoff = self.policy.backoff_seconds(held.message.receive_count)
                self._retry_transient(held, backoff, "unexpected failure; retrying")
        finally:
            self._let_go(held)

    def send(self, held: ClaimedKey, email: OutgoingEmail, remaining_ms: Callable[[], int]) -> EmailOutcome:
        waited_here = 0
        while True:
            try:
                self.provider().send(email)
            except ProviderError as failure:
                _note_failure(failure)
                decision = self.policy.decide(
                    failure, held.attempt(self.clock(), waited_here, remaining_ms())
                )
                if isinstance(decision, WaitHere):
                    waited_here += 1
                    self.sleep(decision.seconds)
                    continue
                if not isinstance(decision, CountAsSent):
                    return self._act_on(decision, held, failure)
                # A worker that lost its lease sent this very email before us (same idempotency key).
                logger.info("provider reports the email already delivered")
            return self._sent(held)

    def fail(self, held: ClaimedKey, reason: FailureReason) -> EmailOutcome:
        """The email will not go out unless redriven: record ``failed`` and dead-letter it.

        The dead letter goes out even when the ledger cannot be written: the message's fate
        matters more, and the lease hands the key on once it runs out.
        """
        ref, token = held.job.ref, held.token
        held.settle(lambda: self.ledger.finish(ref, token, Change.FAIL, self.clock(), reason))
        self.dispatch.dead_letter(held.message, held.letter(reason))
        return EmailOutcome.DEAD_LETTERED

    def finish(self, held: ClaimedKey, change: Change) -> None:
        """End our hold with ``change`` (``SUPPRESS``, ``EXPIRE``); raises when it cannot be written."""
        if not held.settle(lambda: self.ledger.finish(held.job.ref, held.token, change, self.clock())):
            raise StoreUnavailable(f"could not record {change.value}")

    def _act_on(self, decision: Decision, held: ClaimedKey, failure: ProviderError) -> EmailOutcome:
        match decision:
            case Expire():
                # Waiting would deliver it after the instant the booking app gave as too late.
                self.finish(held, Change.EXPIRE)
                return expired()
            case Defer(seconds=seconds):
                return self._defer_throttled(held, seconds)
            case Retry(backoff_seconds=backoff) if isinstance(failure, ProviderNotConfigured):
                # Its cause in our words (never the secret's value): what the operator must fix.
                self._retry_transient(
                    held, backoff, "email provider not configured; retrying", cause=failure.cause
                )
            case Retry(backoff_seconds=backoff):
                self._retry_transient(
                    held, backoff, "transient provider failure; retrying", provider_status=failure.status
                )
            case DeadLetter(reason=reason):
                if isinstance(failure, PermanentProviderError):
                    logger.warning("provider refused the email", extra={"provider_status": failure.status})
                if isinstance(failure, ProviderNotConfigured):
                    logger.error("email provider not configured", extra={"cause": failure.cause})
                return self.fail(held, reason)
        raise AssertionError(f"unhandled decision {decision!r}")

    def _sent(self, held: ClaimedKey) -> EmailOutcome:
        now = self.clock()
        # The provider took it: from here the key is never handed back (another worker would
        # send it again), whether or not the ledger can be told.
        held.settled = True
        if not _twice(lambda: self.ledger.mark_sent(held.job.ref, now)):
            # The lease keeps the key from other workers until it runs out; acknowledging the
            # message leaves no copy of it to send the email again.
            logger.error("email sent but not recorded as sent; its lease holds the key until it runs out")
            count(Metric.EMAIL_SENT_UNRECORDED)
        lag_ms = max(0.0, (now - held.job.deliver_at).total_seconds() * 1000)
        count(Metric.EMAIL_SENT)
        count(Metric.EMAIL_DELIVERY_LAG_MS, lag_ms, "Milliseconds")
        logger.info("email sent", extra={"outcome": "sent", "attempts": held.attempts})
        return EmailOutcome.SENT

    def _retry_transient(
        self, held: ClaimedKey, backoff: int, message: str, **details: str | int | None
    ) -> NoReturn:
        self._let_go(held)
        self.dispatch.back_off(held.message, backoff)
        logger.warning(
            message,
            extra={"receive_count": held.message.receive_count, "backoff_seconds": backoff, **details},
        )
        raise RetryLater(f"transient failure, retry in {backoff}s") from None

    def _defer_throttled(self, held: ClaimedKey, wait: float) -> EmailOutcome:
        now = self.clock()
        # A fresh copy, so throttling never pushes the original toward the DLQ (if SQS refuses
        # it, the original comes back instead). The ledger keeps the key from being claimed
        # before retry-after, even when a hop brings the copy sooner.
        job = held.job
        self.dispatch.requeue(held.message, job.email_type, delay=math.ceil(wait), attempts=held.attempts)
        until = now + timedelta(seconds=wait)
        # The copy is on its way: the original is acknowledged even if the key cannot be
        # handed back now (the copy then waits for the lease), so there is never a second copy.
        ref, token = job.ref, held.token
        if not held.settle(lambda: self.ledger.release(ref, token, now, throttled_until=until)):
            logger.error("could not hand the throttled key back; its lease holds it until it runs out")
        logger.info(
            "provider throttled; re-queued",
            extra={"outcome": "throttled", "deferrals": held.throttle_deferrals + 1},
        )
        return EmailOutcome.THROTTLED

    def _let_go(self, held: ClaimedKey) -> None:
        """Hand the key back to ``queued`` unless a write already ended our hold; never raises."""
        if held.settled:
            return
        if not held.settle(lambda: self.ledger.release(held.job.ref, held.token, self.clock())):
            logger.error("could not hand the key back; its lease holds it until it runs out")


def expired() -> EmailOutcome:
    count(Metric.EMAIL_EXPIRED_SKIPPED)
    logger.info("email expired before it could be sent", extra={"outcome": "expired"})
    return EmailOutcome.EXPIRED


def unless_refused(written: StatusWrite) -> None:
    """A lease holder's write was refused: our lease ran out and another worker took the key
    over (or it expired meanwhile). Its record stands; say so rather than pass over it."""
    if not written.done:
        count(Metric.EMAIL_LEASE_LOST)
        logger.warning(
            "lease lost before our write; the current record stands",
            extra={"current_status": written.record.status.value},
        )


def _twice(write: Callable[[], object]) -> bool:
    """Make ``write``, once more if it fails; whether it was made. A ledger write that ends a
    hold is worth a second try: without it the key waits for its lease to run out."""
    for attempt in (1, 2):
        try:
            write()
            return True
        except Exception as exc:
            logger.warning("ledger write failed", extra={"error_type": type(exc).__name__, "try": attempt})
    return False


def _note_failure(failure: ProviderError) -> None:
    if isinstance(failure, ProviderNotConfigured):
        # Apart from provider outages: nothing will send until an operator sets the secret.
        count(Metric.EMAIL_PROVIDER_NOT_CONFIGURED)
    elif isinstance(failure, ProviderThrottled):
        count(Metric.EMAIL_THROTTLED)
    elif isinstance(failure, PermanentProviderError):
        count(Metric.EMAIL_PERMANENT_FAILURE)
    elif isinstance(failure, TransientProviderError):
        count(Metric.EMAIL_TRANSIENT_FAILURE)
