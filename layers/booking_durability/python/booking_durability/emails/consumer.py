"""The email consumer's batch loop: a batch's records are delivered concurrently.

Powertools' ``AsyncBatchProcessor`` gathers the records and builds the partial batch response;
each record's delivery (blocking I/O: DynamoDB, SQS, the provider) runs on a thread pool sized
by ``SEND_CONCURRENCY``, which bounds in-batch concurrency.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from booking_durability.adapters.deliveries_table import DeliveryLedger
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.adapters.secrets import provider_credentials
from booking_durability.emails.delivery import EmailDelivery, IncomingMessage, Outcome, RetryLater
from booking_durability.emails.providers import build_provider
from booking_durability.emails.providers.base import EmailProvider
from booking_durability.observability import logger
from booking_durability.settings import ConsumerSettings, consumer_settings


def incoming(record: SQSRecord) -> IncomingMessage:
    # Read from the raw event: Powertools' attribute mapping wraps values in [] only, not .get().
    attempts = record.raw_event.get("messageAttributes", {}).get("attempts") or {}
    value = attempts.get("stringValue")
    return IncomingMessage(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        body=record.body or "",
        receive_count=int(record.attributes.approximate_receive_count or 1),
        attempts=int(value) if isinstance(value, str) and value.isdigit() else 0,
    )


class ProviderCache:
    """The provider, rebuilt only when its credentials change (a rotation reaches warm functions).

    Credentials come from Powertools' secret cache (refreshed every ``CACHE_SECONDS``), so asking
    on every send costs a dict lookup. When Secrets Manager cannot be reached, the provider
    already built keeps sending. A replaced provider is left to the garbage collector: other
    threads may still be sending through it.
    """

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._provider: EmailProvider | None = None
        self._credentials: dict[str, str] | None = None

    def __call__(self) -> EmailProvider:
        with self._lock:
            try:
                credentials = dict(provider_credentials(self.settings.provider_secret_arn))
            except Exception as exc:
                if self._provider is None:
                    raise
                logger.warning(
                    "provider secret unavailable; keeping the current credentials",
                    extra={"error_type": type(exc).__name__},
                )
                return self._provider
            if self._provider is None or credentials != self._credentials:
                self._provider = build_provider(self.settings, credentials)
                self._credentials = credentials
            return self._provider


@functools.cache
def default_delivery() -> EmailDelivery:
    """The delivery wired from the function's settings, built once per execution environment."""
    settings = consumer_settings()
    return EmailDelivery(
        settings=settings,
        ledger=DeliveryLedger(settings.deliveries_table),
        queue=EmailQueue(settings.email_queue_url),
        dlq=EmailQueue(settings.email_dlq_url),
        provider=ProviderCache(settings),
    )


@functools.cache
def _pool(size: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="email-send")


def consume_batch(
    event: dict[str, Any], context: Any, delivery: EmailDelivery | None = None
) -> dict[str, Any]:
    """Deliver an SQS batch; returns the partial batch response (failed message ids only)."""
    delivery = delivery or default_delivery()
    pool = _pool(delivery.settings.send_concurrency)

    def remaining_ms() -> int:
        return int(context.get_remaining_time_in_millis()) if context is not None else 900_000

    def deliver(record: SQSRecord) -> Outcome:
        try:
            return delivery.deliver(incoming(record), remaining_ms)
        except RetryLater:
            raise
        except Exception as exc:
            logger.error("unexpected failure delivering email", extra={"error_type": type(exc).__name__})
            raise RetryLater(f"unexpected {type(exc).__name__}") from None

    async def record_handler(record: SQSRecord) -> str:
        outcome = await asyncio.get_running_loop().run_in_executor(pool, deliver, record)
        return outcome.value

    # Entire-batch failures are reported, not raised: raising would redeliver successes too.
    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
