"""What the email routes of the API do (docs/reference/http-api.md#emails): record, publish, read, cancel.

``POST`` records ``queued`` in the deliveries ledger before publishing, and never overwrites an
email that is sent, cancelled, suppressed, expired or being sent: it answers with that status
and publishes nothing. ``DELETE`` of an unknown key leaves a tombstone, so a later publish of
that key is never delivered. Answers carry ids and statuses only, never recipient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from booking_durability.emails.guest import EmailRef, EmailRequest, EmailStatus
from booking_durability.emails.ports import EmailRecords, MessageQueue
from booking_durability.emails.producer import publish_job
from booking_durability.errors import DomainError
from booking_durability.times import iso


class EmailNotFound(DomainError):
    code = "NOT_FOUND"
    status = 404
    title = "Email not found"


class AlreadySent(DomainError):
    code = "ALREADY_SENT"
    status = 409
    title = "Email already sent"


class SendInProgress(DomainError):
    code = "SEND_IN_PROGRESS"
    status = 409
    title = "Email being sent"


@dataclass(frozen=True)
class EmailOutbox:
    """The ledger and the queue the email routes write to."""

    records: EmailRecords
    queue: MessageQueue
    max_hop_seconds: int


# The routes' answers (their OpenAPI schemas are generated from these).
class EmailAccepted(BaseModel):
    job_id: str
    dedupe_key: str
    deliver_at: str
    status: EmailStatus


class EmailState(BaseModel):
    dedupe_key: str
    status: EmailStatus
    attempts: int
    updated_at: str | None


class EmailCancelled(BaseModel):
    dedupe_key: str
    status: Literal[EmailStatus.CANCELLED]


class BookingEmailsCancelled(BaseModel):
    cancelled: list[str]


def request_email(outbox: EmailOutbox, request: EmailRequest, now: datetime) -> EmailAccepted:
    """Record and publish ``request``; the ``POST /v1/emails`` answer (202)."""
    job = request.to_job(now)
    recorded = outbox.records.queue(job.ref, str(job.job_id), now, job.deliver_at)
    if not recorded.done:
        # Sent, finished or being sent: nothing is published, the answer says what became of it.
        return EmailAccepted(
            job_id=recorded.record.job_id or str(job.job_id),
            dedupe_key=job.dedupe_key,
            deliver_at=iso(job.deliver_at),
            status=recorded.record.status,
        )
    published = publish_job(job, queue=outbox.queue, max_hop_seconds=outbox.max_hop_seconds, now=now)
    return EmailAccepted(
        job_id=published.job_id,
        dedupe_key=published.dedupe_key,
        deliver_at=iso(published.deliver_at),
        status=EmailStatus.QUEUED,
    )


def email_status(outbox: EmailOutbox, ref: EmailRef, now: datetime) -> EmailState:
    record = outbox.records.record(ref, now)
    if record is None:
        raise EmailNotFound("the service has no record of this email")
    return EmailState(
        dedupe_key=ref.dedupe_key,
        status=record.status,
        attempts=record.attempts,
        updated_at=record.updated_at,
    )


def cancel_email(outbox: EmailOutbox, ref: EmailRef, now: datetime) -> EmailCancelled:
    cancelled = outbox.records.cancel(ref, now)
    if not cancelled.done:
        if cancelled.record.status is EmailStatus.SENT:
            raise AlreadySent("the email was already sent")
        raise SendInProgress("the email is being sent right now")
    return EmailCancelled(dedupe_key=ref.dedupe_key, status=EmailStatus.CANCELLED)


def cancel_booking_emails(outbox: EmailOutbox, booking_id: str, now: datetime) -> BookingEmailsCancelled:
    """Cancel every email of the booking the service recorded and has not sent (or is sending)."""
    cancelled = []
    for record in outbox.records.records_of_booking(booking_id, now):
        if record.status is EmailStatus.SENT or record.live(now):
            continue
        if outbox.records.cancel(EmailRef.from_dedupe_key(record.dedupe_key), now).done:
            cancelled.append(record.dedupe_key)
    return BookingEmailsCancelled(cancelled=sorted(cancelled))
