"""Venue, hold and booking routes of the HTTP API, with health and the OpenAPI document
(wiring only)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.api.reservations_app import app
from booking_durability.api.resolver import answer
from booking_durability.observability import instrumented


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer(app, event, context)
