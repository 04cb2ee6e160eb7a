"""The reservation routes' function: venues, holds and bookings, with health and the OpenAPI
document. It may touch the reservations table only.

The resolver is made at import, like every Powertools resolver; the store on first use.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.api import reservations, service
from booking_durability.api.resolver import answer, build_resolver
from booking_durability.observability import instrumented
from booking_durability.wiring import reservations_api

app = build_resolver([service.router, reservations.router])
SUPPLIED = reservations.store.supplied(reservations_api.store)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer(app, event, context, SUPPLIED)
