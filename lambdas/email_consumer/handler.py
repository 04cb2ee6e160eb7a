"""Email consumer Lambda: SQS batch in, partial batch response out (wiring only)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.emails.consumer import consume_batch
from booking_durability.observability import logger, metrics, traced


@metrics.log_metrics(raise_on_empty_metrics=False)
@traced
@logger.inject_lambda_context(log_event=False)  # events carry guest addresses: never log them
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consume_batch(event, context)
