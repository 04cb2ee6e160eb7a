"""Publishing email jobs to the email queue (docs/reference/queue-message.md#message-body).

The API, the drift notifier and the scripts all publish through here: the message body is the
validated job, the SQS delay covers as much of the wait as one hop may (the consumer
re-enqueues the rest), and only the ``email_type`` and ``schema`` attributes are set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from booking_durability.emails.guest import SCHEMA_ID, EmailRequest, GuestEmailJob
from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.times import utc_now

if TYPE_CHECKING:
    from booking_durability.emails.models import AdminDriftEmailJob, AdminDriftEmailRequest

    Request = EmailRequest | AdminDriftEmailRequest


@dataclass(frozen=True)
class PublishedEmail:
    job_id: str
    dedupe_key: str
    deliver_at: datetime


def hop_delay(deliver_at: datetime, now: datetime, max_hop_seconds: int) -> int:
    """The SQS delay for the next hop toward ``deliver_at``: never early, never above one hop."""
    remaining = (deliver_at - now).total_seconds()
    return max(0, min(math.ceil(remaining), max_hop_seconds))


def email_message(
    job: GuestEmailJob | AdminDriftEmailJob, *, now: datetime, max_hop_seconds: int
) -> OutgoingMessage:
    """The SQS message carrying ``job``: its body, its allowed attributes, its next-hop delay."""
    return OutgoingMessage(
        body=job.to_message_body(),
        attributes={"email_type": job.email_type, "schema": SCHEMA_ID},
        delay_seconds=hop_delay(job.deliver_at, now, max_hop_seconds),
    )


def as_request(request: Request | Mapping[str, Any]) -> Request:
    """Validate a request body (raises pydantic's ``ValidationError``, input hidden)."""
    if not isinstance(request, Mapping):
        return request
    if request.get("email_type") == "admin_policy_drift":
        # Only the notifier publishes this one: the email routes never load the drift models.
        from booking_durability.emails.models import AdminDriftEmailRequest

        return AdminDriftEmailRequest.model_validate(request)
    return EmailRequest.model_validate(request)


def publish_job(
    job: GuestEmailJob | AdminDriftEmailJob, *, queue: MessageQueue, max_hop_seconds: int, now: datetime
) -> PublishedEmail:
    queue.send(email_message(job, now=now, max_hop_seconds=max_hop_seconds))
    return PublishedEmail(job_id=str(job.job_id), dedupe_key=job.dedupe_key, deliver_at=job.deliver_at)


def publish_email(
    request: Request | Mapping[str, Any],
    *,
    queue: MessageQueue,
    max_hop_seconds: int,
    now: datetime | None = None,
) -> PublishedEmail:
    """Validate ``request``, build its job and send it. Raises ``ValidationError`` (input hidden)
    or ``QueueSendFailed``."""
    now = now or utc_now()
    job = as_request(request).to_job(now)
    return publish_job(job, queue=queue, max_hop_seconds=max_hop_seconds, now=now)
