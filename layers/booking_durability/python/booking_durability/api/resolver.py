"""The one place HTTP answers are made: the resolver, its request guards and every error mapping.

Handlers never build error responses: domain errors carry their ``code`` and status, and are
answered here as ``application/problem+json`` (RFC 9457); infrastructure failures are 503;
request validation is 422 ``VALIDATION_FAILED`` with ``errors`` that never echo a submitted
value. Before routing, the body is checked as CONTRACT §0 asks: too large → 413, not JSON →
415, malformed → 400 ``INVALID_JSON``. Nothing a client sends yields a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict

from booking_durability.errors import DomainError, InfrastructureError
from booking_durability.observability import logger
from booking_durability.validation import ValidationFailed, safe_errors

PROBLEM = "application/problem+json"
BODY_LIMIT = 64 * 1024
VENUE_BODY_LIMIT = 256 * 1024  # PUT /v1/venues/{venue_id}


class Problem(BaseModel):
    """An error answer (RFC 9457) as this API writes it, with the fields some codes add."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None  # VALIDATION_FAILED
    missing: list[str] | None = None  # HOLD_METADATA_INCOMPLETE
    reason: str | None = None  # NO_AVAILABILITY, POLICY_CHANGED
    attempts: int | None = None  # POLICY_CHANGED


# RFC 9110's names where Python's differ before 3.13 (which adopted them): the answers and the
# OpenAPI document read the same on the runtime's Python as on the one that tests them.
_RFC9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _phrase(status: int) -> str:
    """The status's reason phrase as RFC 9110 writes it."""
    return _RFC9110_PHRASES.get(status) or HTTPStatus(status).phrase


def problem(status: int, code: str, detail: str, *, title: str | None = None, **fields: Any) -> Response[str]:
    body = {
        "type": "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "code": code,
        **fields,
    }
    return Response(status_code=status, content_type=PROBLEM, body=json.dumps(body))


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers,
    )


def responses(ok: type[BaseModel], ok_status: int, *problems: int) -> dict[int, OpenAPIResponse]:
    """A route's documented answers: its success, and the problems it may give (with every
    route's 400, 413 and 415 from the body checks)."""
    documented: dict[int, OpenAPIResponse] = {
        ok_status: {
            "description": _phrase(ok_status),
            "content": {"application/json": {"model": ok}},
        }
    }
    for status in sorted({400, 413, 415, *problems}):
        documented[status] = {
            "description": _phrase(status),
            "content": {PROBLEM: {"model": Problem}},
        }
    return documented


def build_resolver(routers: Iterable[Router]) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(DomainError)
    def _refused(error: DomainError) -> Response[str]:
        return problem(error.status, error.code, error.detail, title=error.title, **error.problem_fields())

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        # Never a body that is not JSON: ``answer`` refused those already.
        return _refused(ValidationFailed(safe_errors(error.errors())))

    @app.exception_handler(RequestUnsupportedContentType)
    def _not_json(_error: RequestUnsupportedContentType) -> Response[str]:
        # The resolver reads a body only when its content-type starts "application/json"
        # letter for letter; a body the check above let through in another letter case
        # ("Application/JSON") is refused here, with the same answer.
        return _unsupported_media_type()

    @app.exception_handler(InfrastructureError)
    def _unavailable(error: InfrastructureError) -> Response[str]:
        logger.warning("dependency unavailable", extra={"error_code": error.code})
        return problem(503, error.code, "The service could not complete the request; try again.")

    @app.not_found
    def _no_route(_error: Exception) -> Response[str]:
        return problem(404, "NOT_FOUND", "No route for this method and path.")

    return app


def answer(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Check the body as CONTRACT §0 asks, then route the request."""
    refused = _refuse_body(event)
    if refused is not None:
        return _proxy(refused)
    return app.resolve(event, context)


def _refuse_body(event: dict[str, Any]) -> Response[str] | None:
    raw = event.get("body")
    if raw in (None, ""):
        return None
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else str(raw).encode()
    except (binascii.Error, ValueError):
        return _invalid_json()
    method = str(event.get("httpMethod", "")).upper()
    resource = str(event.get("resource") or event.get("path") or "")
    limit = VENUE_BODY_LIMIT if method == "PUT" and resource.startswith("/v1/venues/") else BODY_LIMIT
    if len(body) > limit:
        return problem(413, "PAYLOAD_TOO_LARGE", f"The body is larger than {limit // 1024} KiB.")
    content_type = _header(event, "content-type")
    if content_type is not None and not _is_json(content_type):
        return _unsupported_media_type()
    try:
        # Read as the resolver reads it (UTF-8 text, then ``json.loads``), so a body passed
        # here always parses there: a byte-order mark or UTF-16 is refused here, as not JSON.
        json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return _invalid_json()
    return None


def _invalid_json() -> Response[str]:
    return problem(400, "INVALID_JSON", "The body is not valid JSON.")


def _unsupported_media_type() -> Response[str]:
    return problem(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.")


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and value is not None:
            return str(value)
    return None


def _is_json(content_type: str) -> bool:
    """Whether the body is sent as ``application/json``, the one media type the resolver
    reads (it refuses ``application/*+json`` too)."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _proxy(response: Response[str]) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": PROBLEM},
        "body": response.body,
        "isBase64Encoded": False,
    }
