"""Email consumer Lambda: SQS batch in, partial batch response out (wiring only)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.emails.consumer import consume_batch
from booking_durability.observability import instrumented


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consume_batch(event, context)
