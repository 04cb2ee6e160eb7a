"""The email consumer's batch loop: a batch's records are delivered concurrently.

Powertools' ``AsyncBatchProcessor`` gathers the records and builds the partial batch response;
each record's delivery (blocking I/O: DynamoDB, SQS, the provider) runs on the consumer's thread
pool sized by ``SEND_CONCURRENCY``, which bounds in-batch concurrency. The function's entry point
hands the loop its ``Consumer``, built once per execution environment.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from booking_durability.emails.delivery import EmailDelivery, EmailOutcome, IncomingMessage
from booking_durability.emails.models import EmailType, FailureReason
from booking_durability.queue_attributes import receive_count_of, received_attributes
from booking_durability.retry import unexpected_failures_retried


class Consumer(NamedTuple):
    delivery: EmailDelivery
    pool: ThreadPoolExecutor


_REASONS = frozenset(FailureReason)
_EMAIL_TYPES = frozenset(EmailType)


def incoming(record: SQSRecord) -> IncomingMessage:
    # Read from the raw event: Powertools' attribute mapping wraps values in [] only, not .get().
    # Validated before anything logs or re-sends them: a producer may have set anything there.
    attributes = received_attributes(
        record.raw_event.get("messageAttributes") or {},
        reasons=_REASONS,
        email_types=_EMAIL_TYPES,
    )
    return IncomingMessage(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        body=record.body or "",
        receive_count=receive_count_of(record.attributes.approximate_receive_count),
        attempts=attributes.attempts or 0,
        first_dead_lettered_at=attributes.first_dead_lettered_at,
    )


def consume_batch(event: dict[str, Any], context: Any, consumer: Consumer) -> dict[str, Any]:
    """Deliver an SQS batch; returns the partial batch response (failed message ids only)."""
    delivery, pool = consumer

    def remaining_ms() -> int:
        return int(context.get_remaining_time_in_millis()) if context is not None else 900_000

    def deliver(record: SQSRecord) -> EmailOutcome:
        with unexpected_failures_retried("unexpected failure delivering email"):
            return delivery.deliver(incoming(record), remaining_ms)

    async def record_handler(record: SQSRecord) -> str:
        outcome = await asyncio.get_running_loop().run_in_executor(pool, deliver, record)
        return outcome.value

    # Entire-batch failures are reported, not raised: raising would redeliver successes too.
    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
