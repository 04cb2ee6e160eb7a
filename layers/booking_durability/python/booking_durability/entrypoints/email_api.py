"""The email routes' function: API Gateway proxy event in, proxy response out.

It serves the email routes only (the email queue and the deliveries table are all it may touch).
The resolver is made at import, like every Powertools resolver; the outbox on first use.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from booking_durability.api import emails
from booking_durability.api.resolver import answer, build_resolver
from booking_durability.observability import instrumented
from booking_durability.wiring import email_api

app = build_resolver([emails.router])
SUPPLIED = emails.outbox.supplied(email_api.outbox)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer(app, event, context, SUPPLIED)
