"""The drift sweep's function, run on a schedule: ends the drift flows nobody repeated once their
replacement expired."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.observability import instrumented
from booking_durability.reservations.drift import finish_interrupted_flows
from booking_durability.times import utc_now
from booking_durability.wiring import drift_sweep


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return finish_interrupted_flows(drift_sweep.store(), utc_now)
