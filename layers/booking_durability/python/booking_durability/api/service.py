"""The service's own routes (health, the OpenAPI document) and the API as a whole.

``api_routers`` lists every router, so the OpenAPI document covers every route whichever
function serves it; each function's handler includes only the routers it may serve.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from booking_durability.api.resolver import build_resolver, json_response, responses

router = Router()

TITLE = "Booking durability service"
VERSION = "2.3"


class Health(BaseModel):
    status: str


@router.get(
    "/v1/health",
    summary="Liveness",
    responses=responses(Health, 200),
)
def health() -> Response[str]:
    return json_response(200, {"status": "ok"})


@router.get(
    "/v1/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    responses={200: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}},
)
def openapi() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_document_text())


def api_routers() -> list[Router]:
    """Every route of the API (the email routes only for the document: another function serves them)."""
    from booking_durability.api import emails, reservations

    return [router, emails.router, reservations.router]


@functools.cache
def openapi_document_text() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def openapi_document() -> dict[str, Any]:
    """The document committed as ``openapi.json`` (a test fails when the copy is stale)."""
    app = build_resolver(api_routers())
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            summary="Durable guest emails and policy-safe table holds for the booking platform",
        )
    )
    document.pop("servers", None)
    return document
