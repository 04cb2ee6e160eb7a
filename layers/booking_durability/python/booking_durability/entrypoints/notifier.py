"""The drift notifier's function: SQS batch of drift events in, partial batch response out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.notifications.consumer import notify_batch
from booking_durability.observability import instrumented
from booking_durability.wiring import notifier


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return notify_batch(event, context, notifier.notifier())
