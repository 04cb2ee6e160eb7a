"""The drift notifier's batch loop: records are notified one after another.

Drift events are few, so Powertools' synchronous ``BatchProcessor`` suffices; it builds the
partial batch response, so one failing record never makes the others redeliver. The function's
entry point hands the loop its ``Notifier``, built once per execution environment.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from booking_durability.notifications.delivery import IncomingNotification, Notifier
from booking_durability.notifications.failure_policy import NotificationFailureReason
from booking_durability.queue_attributes import receive_count_of, received_attributes
from booking_durability.retry import unexpected_failures_retried


def incoming(record: SQSRecord) -> IncomingNotification:
    # Validated before anything logs or re-sends them: a redriven event keeps what it was sent with.
    attributes = received_attributes(
        record.raw_event.get("messageAttributes") or {}, reasons=set(NotificationFailureReason)
    )
    return IncomingNotification(
        message_id=record.message_id,
        body=record.body or "",
        receive_count=receive_count_of(record.attributes.approximate_receive_count),
        first_dead_lettered_at=attributes.first_dead_lettered_at,
    )


def notify_batch(event: dict[str, Any], context: Any, notifier: Notifier) -> dict[str, Any]:
    """Notify the admin of every drift event of an SQS batch; returns the partial batch response."""

    def record_handler(record: SQSRecord) -> str:
        with unexpected_failures_retried("unexpected failure notifying the admin"):
            return notifier.notify(incoming(record)).value

    # Entire-batch failures are reported, not raised: raising would redeliver successes too.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
