"""The service's own routes (health, the OpenAPI document) and the API as a whole.

``api_routers`` lists every router, so the OpenAPI document covers every route whichever
function serves it; each function's handler includes only the routers it may serve.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from booking_durability.api.resolver import build_resolver, json_response, responses

router = Router()

TITLE = "Booking durability service"
VERSION = "2.3"


class Health(BaseModel):
    status: Literal["ok"]


@router.get(
    "/v1/health",
    summary="Liveness",
    responses=responses(Health, 200),
)
def health() -> Response[str]:
    return json_response(200, Health(status="ok"))


@router.get(
    "/v1/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    responses=responses({"type": "object"}, 200),
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


#: Where the API is served: the local stack, and a stage in AWS (the stack's ``ApiUrl`` export).
SERVERS: list[dict[str, Any]] = [
    {"url": "http://127.0.0.1:3000", "description": "The local stack (make run): no auth"},
    {
        "url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
        "description": "A stage in AWS, as its ApiUrl export names it: every request signed with SigV4",
        "variables": {
            "api_id": {"default": "api-id", "description": "The REST API's id, from the ApiUrl export"},
            "region": {"default": "eu-west-1", "description": "The stack's region"},
            "stage": {"default": "dev", "enum": ["dev", "prod"]},
        },
    },
]


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
    document["servers"] = SERVERS
    _defaults_described(document)
    _unreferenced_schemas_dropped(document)
    return document


def _defaults_described(document: dict[str, Any]) -> None:
    """A request schema's defaults as words, not the ``default`` keyword: code generators (such
    as openapi-typescript) read a property with a default as always present, which holds for an
    answer, never for a request. Each answer's schema is its own (``-Output``) where they differ."""
    schemas = document["components"]["schemas"]
    requested = _referenced(document["paths"], schemas, answers=False)
    for name in requested:
        for field in schemas[name].get("properties", {}).values():
            if "default" in field:
                default = json.dumps(field.pop("default"), ensure_ascii=False)
                field["description"] = " ".join(
                    filter(None, [field.get("description"), f"Default: {default}."])
                )


def _unreferenced_schemas_dropped(document: dict[str, Any]) -> None:
    """Only the schemas some operation uses (the resolver adds its own validation error schemas,
    which no answer of this API has)."""
    schemas = document["components"]["schemas"]
    used = _referenced(document["paths"], schemas)
    for name in set(schemas) - used:
        del schemas[name]


def _referenced(part: Any, schemas: dict[str, Any], *, answers: bool = True) -> set[str]:
    """The component schemas ``part`` refers to, through other schemas too; with ``answers``
    false, only those of requests (bodies and parameters, not ``responses``)."""
    found: set[str] = set()
    pending = [part]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    pending.append(schemas[name])
            pending.extend(value for key, value in current.items() if answers or key != "responses")
        elif isinstance(current, list):
            pending.extend(current)
    return found
