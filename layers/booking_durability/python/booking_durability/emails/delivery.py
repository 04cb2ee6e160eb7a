"""Delivering one email job exactly once, whatever fails (CONTRACT §2).

``EmailDelivery.deliver`` takes one SQS message through: parse and validate, wait for its
time, claim its dedupe key, render, send, record. It returns what happened, or raises
``RetryLater`` when SQS should redeliver the message (the batch's partial response). A message
is acknowledged only after its own re-queue or dead-letter send succeeded.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from booking_durability.adapters.deliveries_table import (
    DeliveryLedger,
    DeliveryRecord,
    EmailRef,
    LedgerUnavailable,
)
from booking_durability.adapters.email_queue import EmailQueue, OutgoingMessage
from booking_durability.emails.models import (
    EMAIL_JOB,
    SCHEMA_ID,
    AdminDriftEmailJob,
    EmailStatus,
    FailureReason,
    GuestEmailJob,
    safe_errors,
)
from booking_durability.emails.producer import hop_delay
from booking_durability.emails.providers.base import (
    AlreadyDelivered,
    EmailProvider,
    OutgoingEmail,
    PermanentProviderError,
    ProviderThrottled,
    TransientProviderError,
)
from booking_durability.emails.rendering import RenderedEmail, RenderFailed, render_email
from booking_durability.errors import DomainError, QueueSendFailed
from booking_durability.observability import count, count_with_dimension, logger
from booking_durability.settings import ConsumerSettings

Job = GuestEmailJob | AdminDriftEmailJob

# Longest backoff between transient retries (a visibility change may be up to 12 h; five
# receives at most 15 min apart keep a failing email within about an hour of its time).
_MAX_BACKOFF_SECONDS = 900
# Room kept in the invocation after a throttled wait: one more provider call and the bookkeeping.
_INVOCATION_MARGIN_MS = 2_000


class Outcome(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    DEFERRED = "deferred"
    THROTTLED = "throttled"
    DEAD_LETTERED = "dead_lettered"


class RetryLater(DomainError):
    """SQS should deliver this message again (after the visibility timeout we set)."""

    code = "RETRY_LATER"


@dataclass(frozen=True)
class IncomingMessage:
    """The parts of an SQS record the consumer uses."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    attempts: int = 0


@dataclass(frozen=True)
class Held:
    """A dedupe key we claimed: the lease token proves it, the counts travel with it."""

    ref: EmailRef
    token: str
    attempts: int
    throttle_deferrals: int


@dataclass
class EmailDelivery:
    """The consumer's logic, with every dependency handed in (tests hand in their own)."""

    settings: ConsumerSettings
    ledger: DeliveryLedger
    queue: EmailQueue
    dlq: EmailQueue
    provider: Callable[[], EmailProvider]
    render: Callable[[Job], RenderedEmail] = render_email
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep

    def deliver(self, message: IncomingMessage, remaining_ms: Callable[[], int] = lambda: 900_000) -> Outcome:
        job = self._parse(message)
        if job is None:
            return Outcome.DEAD_LETTERED
        with _job_log_context(job):
            try:
                return self._deliver(job, message, remaining_ms)
            except LedgerUnavailable:
                logger.warning("deliveries table unavailable; message will be redelivered")
                raise RetryLater("ledger unavailable") from None

    # -- steps ---------------------------------------------------------------------------------

    def _parse(self, message: IncomingMessage) -> Job | None:
        try:
            payload = json.loads(message.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._dead_letter(message, FailureReason.INVALID_JSON, message.attempts, schema=None)
            return None
        try:
            return EMAIL_JOB.validate_python(payload)
        except ValidationError as exc:
            # Only where validation failed, never what was there: it may be an address.
            logger.warning(
                "email message failed validation",
                extra={"message_id": message.message_id, "error_locations": _locations(exc)},
            )
            claimed = payload.get("schema") if isinstance(payload, dict) else None
            self._dead_letter(
                message,
                FailureReason.SCHEMA_INVALID,
                message.attempts,
                schema=SCHEMA_ID if claimed == SCHEMA_ID else None,
            )
            return None

    def _deliver(self, job: Job, message: IncomingMessage, remaining_ms: Callable[[], int]) -> Outcome:
        now = self.clock()
        if job.deliver_at > now:
            self._requeue(
                job, message, delay=hop_delay(job.deliver_at, now, self.settings.max_delay_hop_seconds)
            )
            count("EmailDeferred")
            return Outcome.DEFERRED

        ref = EmailRef(job.booking_id, job.email_type, job.revision)
        if job.not_after is not None and job.not_after < now:
            holder = self.ledger.settle(ref, EmailStatus.EXPIRED, now, job.deliver_at)
            if holder is None:
                return self._expired()
            return self._not_ours(job, message, holder, now)

        claim = self.ledger.claim(ref, str(job.job_id), now, job.deliver_at, self.settings.lease_seconds)
        if claim.token is None:
            assert claim.current is not None
            return self._not_ours(job, message, claim.current, now)
        held = Held(ref, claim.token, claim.attempts, claim.throttle_deferrals)

        if job.suppress_if_sent and self.ledger.sent_or_sending(
            job.booking_id, job.suppress_if_sent, now, exclude=job.dedupe_key
        ):
            self.ledger.finish(ref, held.token, EmailStatus.SUPPRESSED, now)
            count("EmailSuppressedSkipped")
            logger.info("email suppressed by one already sent", extra={"outcome": "suppressed"})
            return Outcome.SUPPRESSED

        try:
            rendered = self.render(job)
        except RenderFailed:
            return self._fail(job, message, held, FailureReason.RENDER_FAILED)
        return self._send(job, message, held, rendered, remaining_ms)

    def _send(
        self,
        job: Job,
        message: IncomingMessage,
        held: Held,
        rendered: RenderedEmail,
        remaining_ms: Callable[[], int],
    ) -> Outcome:
        email = outgoing_email(job, rendered, self.settings.sender)
        throttled_here = 0
        while True:
            try:
                self.provider().send(email)
            except AlreadyDelivered:
                # A worker that lost its lease sent this very email before us (same idempotency key).
                logger.info("provider reports the email already delivered")
            except ProviderThrottled as throttle:
                count("EmailThrottled")
                wait = throttle.retry_after or self.settings.throttle_backoff_seconds
                if job.not_after is not None and self.clock() + timedelta(seconds=wait) > job.not_after:
                    # Waiting would deliver it after the instant the booking app gave as too late.
                    self.ledger.finish(held.ref, held.token, EmailStatus.EXPIRED, self.clock())
                    return self._expired()
                fits = wait * 1000 + self.settings.provider_timeout_seconds * 1000 + _INVOCATION_MARGIN_MS
                if throttled_here < self.settings.max_throttle_deferrals and fits < remaining_ms():
                    throttled_here += 1
                    self.sleep(wait)
                    continue
                return self._defer_throttled(job, message, held, wait)
            except PermanentProviderError as refusal:
                count("EmailPermanentFailure")
                logger.warning("provider refused the email", extra={"provider_status": refusal.status})
                return self._fail(job, message, held, FailureReason.PROVIDER_REJECTED)
            except TransientProviderError as failure:
                count("EmailTransientFailure")
                return self._retry_transient(job, message, held, failure.status)
            now = self.clock()
            self.ledger.mark_sent(held.ref, now)
            count("EmailSent")
            count(
                "EmailDeliveryLagMs", max(0.0, (now - job.deliver_at).total_seconds() * 1000), "Milliseconds"
            )
            logger.info("email sent", extra={"outcome": "sent", "attempts": held.attempts})
            return Outcome.SENT

    # -- outcomes ------------------------------------------------------------------------------

    def _not_ours(self, job: Job, message: IncomingMessage, holder: DeliveryRecord, now: datetime) -> Outcome:
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
            return self._expired()
        # Another worker holds a live lease (never send twice), or a throttle asked us to hold
        # off: come back when that has run out.
        leased = status is EmailStatus.SENDING
        until = (holder.lease_until if leased else holder.not_before) or now.timestamp()
        delay = _seconds_until(datetime.fromtimestamp(until, UTC), now) + (1 if leased else 0)
        self._requeue(job, message, delay=delay)
        count("EmailDeferred")
        logger.info(
            "email held off; re-queued",
            extra={"outcome": "leased_elsewhere" if leased else "throttle_wait", "delay_seconds": delay},
        )
        return Outcome.DEFERRED

    def _expired(self) -> Outcome:
        count("EmailExpiredSkipped")
        logger.info("email expired before it could be sent", extra={"outcome": "expired"})
        return Outcome.EXPIRED

    def _fail(self, job: Job, message: IncomingMessage, held: Held, reason: FailureReason) -> Outcome:
        """The email will not go out unless redriven: record ``failed`` and dead-letter it."""
        self.ledger.finish(held.ref, held.token, EmailStatus.FAILED, self.clock(), reason)
        return self._dead_letter(message, reason, held.attempts, job.email_type)

    def _retry_transient(self, job: Job, message: IncomingMessage, held: Held, status: int | None) -> Outcome:
        if message.receive_count >= self.settings.max_receives:
            return self._fail(job, message, held, FailureReason.TRANSIENT_EXHAUSTED)
        self.ledger.release(held.ref, held.token, self.clock())
        backoff = self.backoff_seconds(message.receive_count)
        try:
            self.queue.change_visibility(message.receipt_handle, backoff)
        except QueueSendFailed:
            # SQS brings the message back after the queue's own visibility timeout instead.
            logger.warning("could not set the retry backoff; the queue's visibility timeout applies")
        logger.warning(
            "transient provider failure; retrying",
            extra={
                "provider_status": status,
                "receive_count": message.receive_count,
                "backoff_seconds": backoff,
            },
        )
        raise RetryLater(f"transient provider failure, retry in {backoff}s")

    def _defer_throttled(self, job: Job, message: IncomingMessage, held: Held, wait: float) -> Outcome:
        if held.throttle_deferrals >= self.settings.max_throttle_deferrals:
            return self._fail(job, message, held, FailureReason.THROTTLE_EXHAUSTED)
        now = self.clock()
        # A fresh copy, so throttling never pushes the original toward the DLQ. The ledger keeps
        # the key from being claimed before retry-after, even when a hop brings the copy sooner.
        try:
            self._requeue(job, message, delay=math.ceil(wait), attempts=held.attempts)
        except RetryLater:
            self.ledger.release(held.ref, held.token, now)  # the original comes back instead
            raise
        self.ledger.release(held.ref, held.token, now, throttled_until=now + timedelta(seconds=wait))
        logger.info(
            "provider throttled; re-queued",
            extra={"outcome": "throttled", "deferrals": held.throttle_deferrals + 1},
        )
        return Outcome.THROTTLED

    def backoff_seconds(self, receive_count: int) -> int:
        """Visibility delay before the next attempt: doubles with each receive, at most 15 min."""
        return int(
            min(self.settings.backoff_base_seconds * 2 ** max(0, receive_count - 1), _MAX_BACKOFF_SECONDS)
        )

    # -- queue sends ---------------------------------------------------------------------------

    def _requeue(
        self, job: Job, message: IncomingMessage, *, delay: int, attempts: int | None = None
    ) -> None:
        """Send the message again, unchanged, ``delay`` seconds out (at most one hop)."""
        attributes: dict[str, str | int] = {
            "email_type": job.email_type,
            "schema": SCHEMA_ID,
            "attempts": message.attempts if attempts is None else attempts,
        }
        hop = min(delay, self.settings.max_delay_hop_seconds)
        self._send_or_retry(self.queue, OutgoingMessage(message.body, attributes, hop))

    def _dead_letter(
        self,
        message: IncomingMessage,
        reason: FailureReason,
        attempts: int,
        email_type: str | None = None,
        *,
        schema: str | None = SCHEMA_ID,
    ) -> Outcome:
        """Send the message, unchanged, to the DLQ with why; ``email_type`` when it parsed.

        Attributes come only from values we know, never from the body (it may not even parse).
        """
        attributes: dict[str, str | int] = {"failure_reason": reason, "attempts": attempts}
        if schema is not None:
            attributes["schema"] = schema
        if email_type is not None:
            attributes["email_type"] = email_type
        self._send_or_retry(self.dlq, OutgoingMessage(message.body, attributes))
        count_with_dimension("EmailDeadLettered", "failure_reason", reason)
        logger.warning(
            "email dead-lettered",
            extra={"failure_reason": reason, "attempts": attempts, "message_id": message.message_id},
        )
        return Outcome.DEAD_LETTERED

    @staticmethod
    def _send_or_retry(queue: EmailQueue, outgoing: OutgoingMessage) -> None:
        try:
            queue.send(outgoing)
        except QueueSendFailed as exc:
            logger.error("queue send failed; message will be redelivered", extra={"error": str(exc)})
            raise RetryLater("queue send failed") from None


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


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _locations(exc: ValidationError) -> list[str]:
    return sorted({".".join(str(part) for part in error["loc"]) for error in safe_errors(exc)})


@contextmanager
def _job_log_context(job: Job) -> Iterator[None]:
    """Adds the job's correlation id and email identity to every log line of this thread."""
    keys = {"correlation_id": str(job.job_id), "dedupe_key": job.dedupe_key, "email_type": job.email_type}
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(keys))
