"""What the email routes of the API do (CONTRACT §1, emails): record, publish, read, cancel.

``POST`` records ``queued`` in the deliveries ledger before publishing, and never overwrites an
email that is sent, cancelled, suppressed, expired or being sent: it answers with that status
and publishes nothing. ``DELETE`` of an unknown key leaves a tombstone, so a later publish of
that key is never delivered. Answers carry ids and statuses only, never recipient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from booking_durability.emails.models import EmailRef, EmailRequest, EmailStatus
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


def request_email(outbox: EmailOutbox, request: EmailRequest, now: datetime) -> dict[str, Any]:
    """Record and publish ``request``; the ``POST /v1/emails`` answer (202)."""
    job = request.to_job(now)
    recorded = outbox.records.queue(job.ref, str(job.job_id), now, job.deliver_at)
    answer = {"job_id": str(job.job_id), "dedupe_key": job.dedupe_key, "deliver_at": iso(job.deliver_at)}
    if not recorded.done:
        # Sent, finished or being sent: nothing is published, the answer says what became of it.
        return {
            **answer,
            "job_id": recorded.record.job_id or answer["job_id"],
            "status": recorded.record.status.value,
        }
    publish_job(job, queue=outbox.queue, max_hop_seconds=outbox.max_hop_seconds, now=now)
    return {**answer, "status": EmailStatus.QUEUED.value}


def email_status(outbox: EmailOutbox, ref: EmailRef, now: datetime) -> dict[str, Any]:
    record = outbox.records.record(ref, now)
    if record is None:
        raise EmailNotFound("the service has no record of this email")
    return {
        "dedupe_key": ref.dedupe_key,
        "status": record.status.value,
        "attempts": record.attempts,
        "updated_at": record.updated_at,
    }


def cancel_email(outbox: EmailOutbox, ref: EmailRef, now: datetime) -> dict[str, Any]:
    cancelled = outbox.records.cancel(ref, now)
    if not cancelled.done:
        if cancelled.record.status is EmailStatus.SENT:
            raise AlreadySent("the email was already sent")
        raise SendInProgress("the email is being sent right now")
    return {"dedupe_key": ref.dedupe_key, "status": EmailStatus.CANCELLED.value}


def cancel_booking_emails(outbox: EmailOutbox, booking_id: str, now: datetime) -> dict[str, Any]:
    """Cancel every email of the booking the service recorded and has not sent (or is sending)."""
    cancelled = []
    for record in outbox.records.records_of_booking(booking_id, now):
        if record.status is EmailStatus.SENT or record.live(now):
            continue
        if outbox.records.cancel(EmailRef.from_dedupe_key(record.dedupe_key), now).done:
            cancelled.append(record.dedupe_key)
    return {"cancelled": sorted(cancelled)}
