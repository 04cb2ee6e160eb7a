"""The bench's reference consumer: an SQS email consumer written the way the Powertools docs show.

``make bench`` sends the same batches through this module and through the service's own
consumer, against the same moto server, provider double and deliveries table, and compares their
CPU per email, batch time and DynamoDB requests. It follows the Powertools examples
(``getting_started_sqs``, ``getting_started_async`` and
``integrate_idempotency_with_batch_processor``): a module-level processor, logger and DynamoDB
persistence layer, a record handler that parses the body, and an ``@idempotent_function`` keyed
on ``[booking_id, email_type, revision]`` that renders the email and posts it to Resend's
``POST /emails``.

It does the same work for each email as the service's consumer, the way a Powertools user would
write it: the body is validated by the same model (``EMAIL_JOB``), the email rendered by the
same renderer and templates (``render_email``), posted with the payload and headers the
service's Resend provider sends, and its idempotency records kept in the same deliveries table
(Powertools' composite-key layout: partition ``idempotency#<function>``, the key's hash as sort
key, retention in the table's TTL attribute). What it leaves out is what the service's consumer
does on top: a lease, retention rules, metrics, and the re-queue, throttle and dead-letter paths.

Two handlers, one per processor (the bench runs each in a process of its own):

- ``handler``: ``BatchProcessor`` + ``process_partial_response``; records one after another.
- ``async_handler``: ``AsyncBatchProcessor`` + ``async_process_partial_response``. Powertools'
  ``idempotent_function`` wraps synchronous functions only, so the async record handler runs the
  idempotent send on a thread pool. The pool has ``SEND_CONCURRENCY`` threads, as the service's
  consumer does, rather than ``asyncio.to_thread``'s default pool (``min(32, cpus + 4)``: 6 on a
  2-core machine), so both send a batch of 10 at once and their batch times compare like for like.

Environment: ``DELIVERIES_TABLE`` (the email consumer function's own), ``PROVIDER_SECRET_ARN``
(a JSON secret with ``api_key``), ``RESEND_BASE_URL``,
``EMAIL_SENDER``, ``SEND_CONCURRENCY``; plus what every function has (``POWERTOOLS_*``, region,
``AWS_ENDPOINT_URL`` locally). Like the docs, it builds its clients at import time.
"""

from __future__ import annotations

import asyncio
import functools
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

from booking_durability.emails.models import EMAIL_JOB, AdminDriftEmailJob, GuestEmailJob, message_id_for
from booking_durability.emails.providers.resend import display_address
from booking_durability.emails.rendering import render_email

Job = GuestEmailJob | AdminDriftEmailJob
SECRET_MAX_AGE_SECONDS = 300  # as the service caches its provider secret

processor = BatchProcessor(event_type=EventType.SQS)
async_processor = AsyncBatchProcessor(event_type=EventType.SQS)
logger = Logger()

persistence_layer = DynamoDBPersistenceLayer(
    table_name=os.getenv("DELIVERIES_TABLE", ""),
    key_attr="booking_id",
    sort_key_attr="email_key",
    expiry_attr="expires_at",
)
config = IdempotencyConfig(event_key_jmespath="[booking_id, email_type, revision]")

provider = httpx.Client(base_url=os.getenv("RESEND_BASE_URL", "https://api.resend.com"), timeout=10.0)
send_pool = ThreadPoolExecutor(max_workers=int(os.getenv("SEND_CONCURRENCY", "10")))


@idempotent_function(data_keyword_argument="job", config=config, persistence_store=persistence_layer)
def send_email(job: Job) -> dict[str, Any]:
    """Render and send ``job``'s email once: the same JSON body and headers as the service's
    Resend provider."""
    secret = parameters.get_secret(
        os.environ["PROVIDER_SECRET_ARN"], transform="json", max_age=SECRET_MAX_AGE_SECONDS
    )
    rendered = render_email(job)
    key = job.dedupe_key
    payload = {
        "from": os.environ["EMAIL_SENDER"],
        "to": [display_address(job.recipient.name, str(job.recipient.email))],
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "headers": {"Message-ID": message_id_for(key), "X-Dedupe-Key": key, "X-Job-Id": str(job.job_id)},
    }
    response = provider.post(
        "/emails",
        json=payload,
        headers={"Authorization": f"Bearer {secret['api_key']}", "Idempotency-Key": key},
    )
    response.raise_for_status()
    return {"id": response.json()["id"]}


def record_handler(record: SQSRecord) -> dict[str, Any]:
    job: Job = EMAIL_JOB.validate_json(record.body)
    sent = send_email(job=job)
    logger.info("email sent", extra={"dedupe_key": job.dedupe_key})
    return sent


async def async_record_handler(record: SQSRecord) -> dict[str, Any]:
    job: Job = EMAIL_JOB.validate_json(record.body)
    loop = asyncio.get_running_loop()
    sent: dict[str, Any] = await loop.run_in_executor(send_pool, functools.partial(send_email, job=job))
    logger.info("email sent", extra={"dedupe_key": job.dedupe_key})
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
