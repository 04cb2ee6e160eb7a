"""Delivering one email job exactly once, whatever fails (CONTRACT §2).

``EmailDelivery.deliver`` takes one SQS message through: parse and validate, wait for its
time, claim its dedupe key, render, then hand it to ``Sending``. It returns what happened, or
raises ``RetryLater`` when SQS should redeliver the message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from booking_durability.emails.dispatch import Dispatch, IncomingMessage, RetryLater
from booking_durability.emails.ledger import Change, DeliveryRecord
from booking_durability.emails.models import EMAIL_JOB, SCHEMA_ID, EmailStatus, FailureReason
from booking_durability.emails.ports import Ledger
from booking_durability.emails.producer import hop_delay
from booking_durability.emails.providers.base import OutgoingEmail
from booking_durability.emails.rendering import RenderedEmail, RenderFailed, render_email
from booking_durability.emails.sending import Held, Job, Outcome, Sending, expired, unless_refused
from booking_durability.errors import StoreUnavailable
from booking_durability.observability import count, logger
from booking_durability.times import utc_now
from booking_durability.validation import error_locations

__all__ = ["EmailDelivery", "IncomingMessage", "Outcome", "RetryLater", "outgoing_email"]


@dataclass
class EmailDelivery:
    """The consumer's logic, with every dependency handed in (tests hand in their own)."""

    ledger: Ledger
    dispatch: Dispatch
    sending: Sending
    lease_seconds: int
    render: Callable[[Job], RenderedEmail] = render_email
    clock: Callable[[], datetime] = field(default=utc_now)

    def deliver(self, message: IncomingMessage, remaining_ms: Callable[[], int] = lambda: 900_000) -> Outcome:
        job = self._parse(message)
        if job is None:
            return Outcome.DEAD_LETTERED
        with _job_log_context(job):
            try:
                return self._deliver(job, message, remaining_ms)
            except StoreUnavailable:
                logger.warning("deliveries table unavailable; message will be redelivered")
                raise RetryLater("ledger unavailable") from None

    def _parse(self, message: IncomingMessage) -> Job | None:
        """The job, or None once a message that does not parse or validate is dead-lettered."""
        try:
            payload = json.loads(message.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.dispatch.dead_letter(message, FailureReason.INVALID_JSON, message.attempts, schema=None)
            return None
        try:
            return EMAIL_JOB.validate_python(payload)
        except ValidationError as exc:
            # Only where validation failed, never what was there: it may be an address.
            logger.warning(
                "email message failed validation",
                extra={"message_id": message.message_id, "error_locations": error_locations(exc)},
            )
            claimed = payload.get("schema") if isinstance(payload, dict) else None
            schema = SCHEMA_ID if claimed == SCHEMA_ID else None
            self.dispatch.dead_letter(message, FailureReason.SCHEMA_INVALID, message.attempts, schema=schema)
            return None

    def _deliver(self, job: Job, message: IncomingMessage, remaining_ms: Callable[[], int]) -> Outcome:
        now = self.clock()
        if job.deliver_at > now:
            delay = hop_delay(job.deliver_at, now, self.dispatch.max_hop_seconds)
            self.dispatch.requeue(message, job.email_type, delay=delay)
            count("EmailDeferred")
            return Outcome.DEFERRED

        if job.not_after is not None and job.not_after < now:
            written = self.ledger.expire_unsent(job.ref, now, job.deliver_at)
            return expired() if written.done else self._not_ours(job, message, written.record, now)

        claim = self.ledger.claim(job.ref, str(job.job_id), now, job.deliver_at, self.lease_seconds)
        if not claim.done or claim.record.lease_token is None:
            return self._not_ours(job, message, claim.record, now)
        held = Held(
            job, message, claim.record.lease_token, claim.record.attempts, claim.record.throttle_deferrals
        )

        if job.suppress_if_sent and self.ledger.sent_or_sending(
            job.booking_id, job.suppress_if_sent, now, exclude=job.dedupe_key
        ):
            unless_refused(self.ledger.finish(job.ref, held.token, Change.SUPPRESS, now))
            count("EmailSuppressedSkipped")
            logger.info("email suppressed by one already sent", extra={"outcome": "suppressed"})
            return Outcome.SUPPRESSED

        try:
            rendered = self.render(job)
        except RenderFailed:
            return self.sending.fail(held, FailureReason.RENDER_FAILED)
        return self.sending.send(held, outgoing_email(job, rendered, self.sending.sender), remaining_ms)

    def _not_ours(self, job: Job, message: IncomingMessage, holder: DeliveryRecord, now: datetime) -> Outcome:
        """Someone else holds the key, or it is finished: skip it, or come back later."""
        status = holder.status
        if status is EmailStatus.SENT:
            count("EmailDuplicateSkipped")
            logger.info("email already sent; duplicate acknowledged", extra={"outcome": "duplicate"})
            return Outcome.DUPLICATE
        if status is EmailStatus.CANCELLED:
            count("EmailCancelledSkipped")
            logger.info("email cancelled; skipped", extra={"outcome": "cancelled"})
            return Outcome.CANCELLED
        if status is EmailStatus.SUPPRESSED:
            count("EmailSuppressedSkipped")
            return Outcome.SUPPRESSED
        if status is EmailStatus.EXPIRED:
            return expired()
        # Another worker holds a live lease (never send twice), or a throttle asked us to hold
        # off: come back when that has run out.
        leased = status is EmailStatus.SENDING
        until = (holder.lease_until if leased else holder.not_before) or now.timestamp()
        delay = max(1, math.ceil(until - now.timestamp())) + (1 if leased else 0)
        self.dispatch.requeue(message, job.email_type, delay=delay)
        count("EmailDeferred")
        logger.info(
            "email held off; re-queued",
            extra={"outcome": "leased_elsewhere" if leased else "throttle_wait", "delay_seconds": delay},
        )
        return Outcome.DEFERRED


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
