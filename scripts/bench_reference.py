"""The bench's reference consumer: an SQS email consumer written the way the Powertools docs show.

``make bench`` sends the same batches through this module and through the service's own
consumer, against the same moto server and provider double, and compares their CPU per email,
batch time and DynamoDB requests. It follows the Powertools examples (``getting_started_sqs``,
``getting_started_async`` and ``integrate_idempotency_with_batch_processor``): a module-level
processor, logger and DynamoDB persistence layer, a record handler that parses the body, and an
``@idempotent_function`` keyed on ``[booking_id, email_type, revision]`` that posts the email to
Resend's ``POST /emails`` with the payload the service's Resend provider sends. It does only
that: a fixed subject and body (no rendering), no lease, no metrics, no re-queue or dead-letter
path. Those are what the service's consumer does on top, and what the comparison prices.

Two handlers, one per processor (the bench runs each in a process of its own):

- ``handler``: ``BatchProcessor`` + ``process_partial_response``; records one after another.
- ``async_handler``: ``AsyncBatchProcessor`` + ``async_process_partial_response``. Powertools'
  ``idempotent_function`` wraps synchronous functions only, so the async record handler runs the
  idempotent send on a thread pool. The pool has ``SEND_CONCURRENCY`` threads, as the service's
  consumer does, rather than ``asyncio.to_thread``'s default pool (``min(32, cpus + 4)``: 6 on a
  2-core machine), so both send a batch of 10 at once and their batch times compare like for like.

Environment: ``IDEMPOTENCY_TABLE`` (partition key ``id``, TTL ``expiration``: the Powertools
schema), ``PROVIDER_SECRET_ARN`` (a JSON secret with ``api_key``), ``RESEND_BASE_URL``,
``EMAIL_SENDER``, ``SEND_CONCURRENCY``; plus what every function has (``POWERTOOLS_*``, region,
``AWS_ENDPOINT_URL`` locally). Like the docs, it builds its clients at import time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    async_process_partial_response,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

SUBJECT = "Your booking is confirmed"
HTML = "<p>Your booking is confirmed. See you soon!</p>"
TEXT = "Your booking is confirmed. See you soon!"
SECRET_MAX_AGE_SECONDS = 300  # as the service caches its provider secret

processor = BatchProcessor(event_type=EventType.SQS)
async_processor = AsyncBatchProcessor(event_type=EventType.SQS)
logger = Logger()

persistence_layer = DynamoDBPersistenceLayer(table_name=os.getenv("IDEMPOTENCY_TABLE", ""))
config = IdempotencyConfig(event_key_jmespath="[booking_id, email_type, revision]")

provider = httpx.Client(base_url=os.getenv("RESEND_BASE_URL", "https://api.resend.com"), timeout=10.0)
send_pool = ThreadPoolExecutor(max_workers=int(os.getenv("SEND_CONCURRENCY", "10")))


def dedupe_key(job: dict[str, Any]) -> str:
    return f"{job['booking_id']}#{job['email_type']}#{job.get('revision', 0)}"


@idempotent_function(data_keyword_argument="job", config=config, persistence_store=persistence_layer)
def send_email(job: dict[str, Any]) -> dict[str, Any]:
    """Send ``job``'s email once: the same JSON body and headers as the service's Resend provider."""
    secret = parameters.get_secret(
        os.environ["PROVIDER_SECRET_ARN"], transform="json", max_age=SECRET_MAX_AGE_SECONDS
    )
    key = dedupe_key(job)
    recipient = job["recipient"]
    to = f"{recipient['name']} <{recipient['email']}>" if recipient.get("name") else recipient["email"]
    payload = {
        "from": os.environ["EMAIL_SENDER"],
        "to": [to],
        "subject": SUBJECT,
        "html": HTML,
        "text": TEXT,
        "headers": {
            "Message-ID": f"<{hashlib.sha256(key.encode()).hexdigest()}@booking.local>",
            "X-Dedupe-Key": key,
            "X-Job-Id": str(job["job_id"]),
        },
    }
    response = provider.post(
        "/emails",
        json=payload,
        headers={"Authorization": f"Bearer {secret['api_key']}", "Idempotency-Key": key},
    )
    response.raise_for_status()
    return {"id": response.json()["id"]}


def record_handler(record: SQSRecord) -> dict[str, Any]:
    job: dict[str, Any] = record.json_body
    sent = send_email(job=job)
    logger.info("email sent", extra={"dedupe_key": dedupe_key(job)})
    return sent


async def async_record_handler(record: SQSRecord) -> dict[str, Any]:
    job: dict[str, Any] = record.json_body
    loop = asyncio.get_running_loop()
    sent: dict[str, Any] = await loop.run_in_executor(send_pool, functools.partial(send_email, job=job))
    logger.info("email sent", extra={"dedupe_key": dedupe_key(job)})
    return sent


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config.register_lambda_context(context)  # in-progress records expire with the invocation
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )


@logger.inject_lambda_context
def async_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config.register_lambda_context(context)
    return dict(
        async_process_partial_response(
            event=event, record_handler=async_record_handler, processor=async_processor, context=context
        )
    )
