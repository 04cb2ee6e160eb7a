"""Delivering one email job exactly once, whatever fails (README.md, "How delivery stays exactly-once").

``EmailDelivery.deliver`` takes one SQS message through: parse and validate, wait for its
time, claim its dedupe key, render, then hand it to ``Sending``. It returns what happened, or
raises ``RetryLater`` when SQS should redeliver the message, and nothing else: a failure nothing
anticipated is retried like a transient one, a claimed key is always handed back or settled,
and on the message's last receive the consumer dead-letters it itself, with a reason (SQS's
own redrive would move it without one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from booking_durability.emails.dispatch import (
    DeadLetterRefused,
    Dispatch,
    IncomingMessage,
    Letter,
    RetryLater,
)
from booking_durability.emails.ledger import Change, DeliveryRecord
from booking_durability.emails.models import EMAIL_JOB, SCHEMA_ID, EmailStatus, FailureReason
from booking_durability.emails.ports import Ledger
from booking_durability.emails.producer import hop_delay
from booking_durability.emails.providers.base import OutgoingEmail
from booking_durability.emails.rendering import RenderedEmail, RenderFailed, render_email
from booking_durability.emails.sending import ClaimedKey, EmailOutcome, Job, Sending, expired
from booking_durability.errors import StoreUnavailable
from booking_durability.metric_names import Metric
from booking_durability.observability import count, logger
from booking_durability.times import utc_now
from booking_durability.validation import error_locations

__all__ = ["EmailDelivery", "EmailOutcome", "IncomingMessage", "RetryLater", "outgoing_email"]


@dataclass
class EmailDelivery:
    """The consumer's logic, with every dependency handed in (tests hand in their own)."""

    ledger: Ledger
    dispatch: Dispatch
    sending: Sending
    lease_seconds: int
    render: Callable[[Job], RenderedEmail] = render_email
    clock: Callable[[], datetime] = field(default=utc_now)

    def deliver(
        self, message: IncomingMessage, remaining_ms: Callable[[], int] = lambda: 900_000
    ) -> EmailOutcome:
        try:
            job = self._parse(message)
            if job is None:
                return EmailOutcome.DEAD_LETTERED
            with _job_log_context(job):
                return self._deliver_job(job, message, remaining_ms)
        except DeadLetterRefused as refused:
            if not self._last_receive(message):
                raise
            # SQS would move it to the DLQ on the next receive, without its reason.
            self.dispatch.send_back(message, refused.letter)
            return EmailOutcome.DEFERRED

    def _parse(self, message: IncomingMessage) -> Job | None:
        """The job, or None once a message that does not parse or validate is dead-lettered.

        Whatever parsing or validation raises is the body's doing: the same body fails the same
        way every time, so it is dead-lettered at once rather than retried.
        """
        try:
            payload = json.loads(message.body)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to read
            letter = Letter(FailureReason.INVALID_JSON, message.attempts, schema=None)
            self.dispatch.dead_letter(message, letter)
            return None
        try:
            return EMAIL_JOB.validate_python(payload)
        except Exception as exc:
            # Only where validation failed, never what was there: it may be an address. A
            # validator may also raise outside pydantic's errors (an OS error for a time zone
            # that names a folder of zones): then its type only.
            where = (
                {"error_locations": error_locations(exc, EMAIL_JOB)}
                if isinstance(exc, ValidationError)
                else {"error_type": type(exc).__name__}
            )
            logger.warning(
                "email message failed validation", extra={"message_id": message.message_id, **where}
            )
            claimed = payload.get("schema") if isinstance(payload, dict) else None
            schema = SCHEMA_ID if claimed == SCHEMA_ID else None
            letter = Letter(FailureReason.SCHEMA_INVALID, message.attempts, schema=schema)
            self.dispatch.dead_letter(message, letter)
            return None

    def _deliver_job(
        self, job: Job, message: IncomingMessage, remaining_ms: Callable[[], int]
    ) -> EmailOutcome:
        """``_deliver``, with every failure it did not map retried, or on the last receive
        dead-lettered with ``transient_exhausted``."""
        try:
            return self._deliver(job, message, remaining_ms)
        except DeadLetterRefused:
            raise
        except RetryLater:
            if not self._last_receive(message):
                raise
        except Exception as exc:
            if isinstance(exc, StoreUnavailable):
                logger.warning("deliveries table unavailable; message will be redelivered")
            else:
                # Its type only: its text may quote the guest's data.
                logger.error("unexpected failure delivering email", extra={"error_type": type(exc).__name__})
                count(Metric.EMAIL_UNEXPECTED_FAILURE)
            if not self._last_receive(message):
                self.dispatch.back_off(message, self.sending.policy.backoff_seconds(message.receive_count))
                raise RetryLater(type(exc).__name__) from None
        letter = Letter(FailureReason.TRANSIENT_EXHAUSTED, message.attempts, job.email_type, job.dedupe_key)
        self.dispatch.dead_letter(message, letter)
        return EmailOutcome.DEAD_LETTERED

    def _last_receive(self, message: IncomingMessage) -> bool:
        return self.sending.policy.last_receive(message.receive_count)

    def _deliver(self, job: Job, message: IncomingMessage, remaining_ms: Callable[[], int]) -> EmailOutcome:
        now = self.clock()
        if job.deliver_at > now:
            # Each hop keeps the key's record (a cancel's tombstone, say) for as long as this
            # copy can still arrive: nothing else tells the ledger of a job sent straight to SQS.
            self.ledger.retain(job.ref, now, job.deliver_at)
            delay = hop_delay(job.deliver_at, now, self.dispatch.max_hop_seconds)
            self.dispatch.requeue(message, job.email_type, delay=delay)
            count(Metric.EMAIL_DEFERRED)
            return EmailOutcome.DEFERRED

        if job.not_after is not None and job.not_after < now:
            written = self.ledger.expire_unsent(job.ref, now, job.deliver_at)
            return expired() if written.done else _not_ours(self.dispatch, job, message, written.record, now)

        claim = self.ledger.claim(job.ref, str(job.job_id), now, job.deliver_at, self.lease_seconds)
        if not claim.done or claim.record.lease_token is None:
            return _not_ours(self.dispatch, job, message, claim.record, now)
        held = ClaimedKey(
            job, message, claim.record.lease_token, claim.record.attempts, claim.record.throttle_deferrals
        )
        return self.sending.while_held(held, lambda: self._send(held, remaining_ms))

    def _send(self, held: ClaimedKey, remaining_ms: Callable[[], int]) -> EmailOutcome:
        job = held.job
        if job.suppress_if_sent and self.ledger.sent_or_sending(
            job.booking_id, job.suppress_if_sent, self.clock(), exclude=job.dedupe_key
        ):
            self.sending.finish(held, Change.SUPPRESS)
            count(Metric.EMAIL_SUPPRESSED_SKIPPED)
            logger.info("email suppressed by one already sent", extra={"outcome": "suppressed"})
            return EmailOutcome.SUPPRESSED

        try:
            rendered = self.render(job)
        except Exception as exc:
            # Rendering is pure: whatever it raises (an instant beyond the calendar in the
            # guest's zone, say), the same job fails the same way every time.
            # RenderFailed's text is ours (type, locale, error kind); any other, its type only.
            error = str(exc) if isinstance(exc, RenderFailed) else type(exc).__name__
            logger.warning("email could not be rendered", extra={"error": error})
            return self.sending.fail(held, FailureReason.RENDER_FAILED)
        return self.sending.send(held, outgoing_email(job, rendered, self.sending.sender), remaining_ms)


def _not_ours(
    dispatch: Dispatch, job: Job, message: IncomingMessage, holder: DeliveryRecord, now: datetime
) -> EmailOutcome:
    """Someone else holds the key, or it is finished: skip it, or come back later."""
    status = holder.status
    if status is EmailStatus.SENT:
        count(Metric.EMAIL_DUPLICATE_SKIPPED)
        logger.info("email already sent; duplicate acknowledged", extra={"outcome": "duplicate"})
        return EmailOutcome.DUPLICATE
    if status is EmailStatus.CANCELLED:
        count(Metric.EMAIL_CANCELLED_SKIPPED)
        logger.info("email cancelled; skipped", extra={"outcome": "cancelled"})
        return EmailOutcome.CANCELLED
    if status is EmailStatus.SUPPRESSED:
        count(Metric.EMAIL_SUPPRESSED_SKIPPED)
        return EmailOutcome.SUPPRESSED
    if status is EmailStatus.EXPIRED:
        return expired()
    # Another worker holds a live lease (never send twice), or a throttle asked us to hold
    # off: come back when that has run out.
    leased = status is EmailStatus.SENDING
    until = (holder.lease_until if leased else holder.not_before) or now.timestamp()
    delay = max(1, math.ceil(until - now.timestamp())) + (1 if leased else 0)
    delay = min(delay, dispatch.max_hop_seconds)
    dispatch.requeue(message, job.email_type, delay=delay)
    count(Metric.EMAIL_DEFERRED)
    logger.info(
        "email held off; re-queued",
        extra={"outcome": "leased_elsewhere" if leased else "throttle_wait", "delay_seconds": delay},
    )
    return EmailOutcome.DEFERRED


def outgoing_email(job: Job, rendered: RenderedEmail, sender: str) -> OutgoingEmail:
    """What the provider sends for ``job``: the same job always gives the same email."""
    return OutgoingEmail(
        dedupe_key=job.dedupe_key,
        job_id=str(job.job_id),
        sender=sender,
        to_email=str(job.recipient.email),
        to_name=job.recipient.name,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
    )


@contextmanager
def _job_log_context(job: Job) -> Iterator[None]:
    """Adds the job's correlation id and email identity to every log line of this thread."""
    keys = {"correlation_id": str(job.job_id), "dedupe_key": job.dedupe_key, "email_type": job.email_type}
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(keys))
