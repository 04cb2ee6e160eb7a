"""The email consumer's function: SQS batch in, partial batch response out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.emails.consumer import consume_batch
from booking_durability.observability import instrumented
from booking_durability.wiring import email_consumer


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consume_batch(event, context, email_consumer.consumer())
