"""Publishing email jobs to the email queue (CONTRACT §2).

The booking app, the API and the drift notifier all publish through here: the message body is
the validated job, the SQS delay covers as much of the wait as one hop may (the consumer
re-enqueues the rest), and only the ``email_type`` and ``schema`` attributes are set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from booking_durability.adapters.email_queue import EmailQueue, OutgoingMessage
from booking_durability.emails.models import (
    SCHEMA_ID,
    AdminDriftEmailJob,
    AdminDriftEmailRequest,
    EmailRequest,
    GuestEmailJob,
)
from booking_durability.settings import ProducerSettings, producer_settings


@dataclass(frozen=True)
class PublishedEmail:
    job_id: str
    dedupe_key: str
    deliver_at: datetime


@dataclass(frozen=True)
class PublishFailure:
    """One request of a batch that SQS did not take; ``index`` is its position in the input."""

    index: int
    dedupe_key: str
    code: str
    retryable: bool


@dataclass(frozen=True)
class BatchPublishResult:
    published: list[PublishedEmail]
    failed: list[PublishFailure]


def hop_delay(deliver_at: datetime, now: datetime, max_hop_seconds: int) -> int:
    """The SQS delay for the next hop toward ``deliver_at``: never early, never above one hop."""
    remaining = (deliver_at - now).total_seconds()
    return max(0, min(math.ceil(remaining), max_hop_seconds))


def email_message(
    job: GuestEmailJob | AdminDriftEmailJob,
    *,
    now: datetime,
    max_hop_seconds: int,
    entry_id: str = "0",
) -> OutgoingMessage:
    """The SQS message carrying ``job``: its body, its allowed attributes, its next-hop delay."""
    return OutgoingMessage(
        body=job.to_message_body(),
        attributes={"email_type": job.email_type, "schema": SCHEMA_ID},
        delay_seconds=hop_delay(job.deliver_at, now, max_hop_seconds),
        entry_id=entry_id,
    )


def _as_request(request: EmailRequest | AdminDriftEmailRequest | Mapping[str, Any]) -> Any:
    if isinstance(request, EmailRequest | AdminDriftEmailRequest):
        return request
    if request.get("email_type") == "admin_policy_drift":
        return AdminDriftEmailRequest.model_validate(request)
    return EmailRequest.model_validate(request)


def _wiring(queue: EmailQueue | None, settings: ProducerSettings | None) -> tuple[EmailQueue, int]:
    settings = settings or producer_settings()
    return queue or EmailQueue(settings.email_queue_url), settings.max_delay_hop_seconds


def publish_email(
    request: EmailRequest | AdminDriftEmailRequest | Mapping[str, Any],
    *,
    queue: EmailQueue | None = None,
    settings: ProducerSettings | None = None,
    now: datetime | None = None,
) -> PublishedEmail:
    """Validate ``request``, build its job and send it. Raises ``ValidationError`` (input hidden)
    or ``QueueSendFailed``."""
    queue, max_hop = _wiring(queue, settings)
    now = now or datetime.now(UTC)
    job = _as_request(request).to_job(now)
    queue.send(email_message(job, now=now, max_hop_seconds=max_hop))
    return PublishedEmail(job_id=str(job.job_id), dedupe_key=job.dedupe_key, deliver_at=job.deliver_at)


def publish_emails(
    requests: Sequence[EmailRequest | AdminDriftEmailRequest | Mapping[str, Any]],
    *,
    queue: EmailQueue | None = None,
    settings: ProducerSettings | None = None,
    now: datetime | None = None,
) -> BatchPublishResult:
    """Publish many jobs with ``SendMessageBatch``; entries SQS refused come back in ``failed``.

    Every request is validated before anything is sent, so an invalid one sends nothing.
    """
    queue, max_hop = _wiring(queue, settings)
    now = now or datetime.now(UTC)
    jobs = [_as_request(request).to_job(now) for request in requests]
    messages = [
        email_message(job, now=now, max_hop_seconds=max_hop, entry_id=str(index))
        for index, job in enumerate(jobs)
    ]
    failures = {int(f.entry_id): f for f in queue.send_batch(messages)}
    published = [
        PublishedEmail(job_id=str(job.job_id), dedupe_key=job.dedupe_key, deliver_at=job.deliver_at)
        for index, job in enumerate(jobs)
        if index not in failures
    ]
    failed = [
        PublishFailure(index=i, dedupe_key=jobs[i].dedupe_key, code=f.code, retryable=not f.sender_fault)
        for i, f in sorted(failures.items())
    ]
    return BatchPublishResult(published=published, failed=failed)
