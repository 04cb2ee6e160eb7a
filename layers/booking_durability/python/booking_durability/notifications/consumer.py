"""The drift notifier's batch loop: records are notified one after another.

Drift events are few, so Powertools' synchronous ``BatchProcessor`` suffices; it builds the
partial batch response, so one failing record never makes the others redeliver.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from booking_durability.notifications.notifier import IncomingNotification, Notifier
from booking_durability.observability import logger
from booking_durability.retry import RetryLater
from booking_durability.wiring.notifier import notifier as wired_notifier


def incoming(record: SQSRecord) -> IncomingNotification:
    return IncomingNotification(
        message_id=record.message_id,
        body=record.body or "",
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )


def notify_batch(event: dict[str, Any], context: Any, notifier: Notifier | None = None) -> dict[str, Any]:
    """Notify the admin of every drift event of an SQS batch; returns the partial batch response."""
    active = notifier or wired_notifier()

    def record_handler(record: SQSRecord) -> str:
        try:
            return active.notify(incoming(record)).value
        except RetryLater:
            raise
        except Exception as exc:
            # Only the type: an exception's text may quote a URL or a response.
            logger.error("unexpected failure notifying the admin", extra={"error_type": type(exc).__name__})
            raise RetryLater(f"unexpected {type(exc).__name__}") from None

    # Entire-batch failures are reported, not raised: raising would redeliver successes too.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
