"""The one place HTTP answers are made: the resolver, its request guards and every error mapping.

Handlers never build error responses: domain errors carry their ``code`` and status, and are
answered here as ``application/problem+json`` (RFC 9457); infrastructure failures are 503;
request validation is 422 ``VALIDATION_FAILED`` with ``errors`` that never echo a submitted
value, and a query parameter the route does not take is one of those errors. Before routing,
the body is checked: too large → 413, not JSON → 415 (media types compared without regard to
letter case), malformed → 400 ``INVALID_JSON``. Nothing a client sends yields a 5xx.

The last line: any other exception, wherever it is raised, is a 500 ``INTERNAL_ERROR`` with an
``error_id`` that the log line written for it carries too, and counts ``UnhandledErrors``
(which pages). Neither the answer nor the log line holds the exception's message, which may
quote a submitted value; the log line has its type and the code locations it passed through.
Nothing reaches Lambda as an error, which API Gateway would answer with a bare 502.

Routers never build what their routes call: each declares it (``Needed``), and the function's
entry point supplies it to ``answer``, which hands it to the routes for that request.
"""

from __future__ import annotations

import base64
import binascii
import json
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from http import HTTPStatus
from pathlib import PurePath
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
    OpenAPIResponseHeader,
)
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from booking_durability.errors import DomainError, InfrastructureError
from booking_durability.metric_names import Metric
from booking_durability.observability import count, logger
from booking_durability.validation import ValidationFailed, safe_errors, safe_name

PROBLEM = "application/problem+json"
JSON = "application/json"
BODY_LIMIT = 64 * 1024
VENUE_BODY_LIMIT = 256 * 1024  # PUT /v1/venues/{venue_id}
#: What a 503 asks a client to wait before it tries again: a dependency's hiccup, mostly brief.
RETRY_AFTER_SECONDS = 1


class ValidationIssue(BaseModel):
    """Where a request breaks a rule (``loc``: body, query, path or header, then field names and
    positions) and which rule; never the value."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An error answer (RFC 9457) as this API writes it, with the fields some codes add. API
    Gateway's own answers (403, 429, 502, 504...) carry no detail."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    code: str = Field(description="Stable UPPER_SNAKE code: act on it (docs/booking-app.md, Errors)")
    # Optional, never null: a field a code does not use is absent.
    detail: str | SkipJsonSchema[None] = None
    errors: list[ValidationIssue] | SkipJsonSchema[None] = None  # VALIDATION_FAILED
    missing: list[str] | SkipJsonSchema[None] = None  # HOLD_METADATA_INCOMPLETE
    reason: str | SkipJsonSchema[None] = None  # NO_AVAILABILITY, POLICY_CHANGED, HOLD_INVALID
    attempts: int | SkipJsonSchema[None] = None  # POLICY_CHANGED
    error_id: str | SkipJsonSchema[None] = Field(
        None, description="INTERNAL_ERROR: the service's log line for the failure carries the same id"
    )


# RFC 9110's names where Python's differ before 3.13 (which adopted them): the answers and the
# OpenAPI document read the same on the runtime's Python as on the one that tests them.
_RFC9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _phrase(status: int) -> str:
    """The status's reason phrase as RFC 9110 writes it."""
    return _RFC9110_PHRASES.get(status) or HTTPStatus(status).phrase


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Response[str]:
    """An error answer, made by the model the OpenAPI document declares for every problem."""
    body = Problem(title=title or _phrase(status), status=status, detail=detail, code=code, **fields)
    # A field a code does not use is absent, never null.
    document = body.model_dump(mode="json", exclude_none=True)
    return Response(status_code=status, content_type=PROBLEM, body=json.dumps(document), headers=headers)


def json_response(status: int, body: BaseModel, headers: dict[str, str] | None = None) -> Response[str]:
    """A JSON answer, made by the model the route's OpenAPI answer declares: never a dict built
    beside it, which could drift from the document."""
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body.model_dump(mode="json"), ensure_ascii=False),
        headers=headers,
    )


def json_text_response(status: int, text: str) -> Response[str]:
    """A JSON body already serialized, sent as it is."""
    return Response(status_code=status, content_type="application/json", body=text)


#: What every operation may answer besides its own outcomes, and with which codes: the body
#: checks, request validation and the last line here; API Gateway's own answers in AWS (its IAM
#: refusal, throttling, an integration that failed or timed out); the local server's 405.
COMMON_PROBLEMS: dict[int, str] = {
    400: "INVALID_JSON: the body is not JSON; or BAD_REQUEST: API Gateway refused the request",
    403: (
        "FORBIDDEN, INVALID_SIGNATURE or EXPIRED_CREDENTIALS: API Gateway's IAM refusal, in AWS; "
        "also its answer to a method or route the API does not have"
    ),
    405: "METHOD_NOT_ALLOWED: locally, a method this path does not take (API Gateway answers 403)",
    413: (
        f"PAYLOAD_TOO_LARGE: the body is above {BODY_LIMIT // 1024} KiB "
        f"({VENUE_BODY_LIMIT // 1024} KiB for PUT /v1/venues/{{venue_id}})"
    ),
    415: "UNSUPPORTED_MEDIA_TYPE: a body whose Content-Type is not application/json",
    422: "VALIDATION_FAILED: errors say where the request breaks a rule, never what it held",
    429: "THROTTLED: above the stage's request rate (API Gateway)",
    500: "INTERNAL_ERROR: a failure nothing anticipated; error_id names the service's log line for it",
    502: "UPSTREAM_FAILED: API Gateway could not get an answer from the service's function",
    503: (
        "STORE_UNAVAILABLE, QUEUE_SEND_FAILED or BUSY: a dependency failed, or too many writers "
        "raced for the same records; try again after Retry-After"
    ),
    504: "UPSTREAM_TIMEOUT: no answer in time from the function; the request may have taken effect",
}
_RETRY_AFTER: dict[str, OpenAPIResponseHeader] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,  # type: ignore[typeddict-unknown-key]  # OpenAPI's, not in the TypedDict
        "schema": {"type": "integer"},
    }
}


def responses(
    ok: type[BaseModel] | dict[str, Any],
    ok_status: int,
    *problems: int,
    headers: dict[str, Any] | None = None,
    notes: dict[int, str] | None = None,
) -> dict[int, OpenAPIResponse]:
    """A route's documented answers: its success (a model, or a JSON Schema; with ``headers``),
    the problems only it gives (``problems``, with ``notes`` saying when and with which codes),
    and every operation's ``COMMON_PROBLEMS``; each problem as ``application/problem+json``.

    A problem only the route gives must have a note naming its codes: a client acts on the code,
    so an answer the document leaves without one cannot be handled from the document alone."""
    unnamed = sorted(set(problems) - set(COMMON_PROBLEMS) - set(notes or {}))
    if unnamed:
        raise ValueError(f"say which codes the route answers with status {unnamed}")
    content: OpenAPIResponseContentSchema | OpenAPIResponseContentModel = (
        {"schema": ok} if isinstance(ok, dict) else {"model": ok}
    )
    documented: dict[int, OpenAPIResponse] = {
        ok_status: {"description": _phrase(ok_status), "content": {JSON: content}}
    }
    if headers:
        documented[ok_status]["headers"] = headers
    for status in sorted({*COMMON_PROBLEMS, *problems}):
        said = [text for text in ((notes or {}).get(status), COMMON_PROBLEMS.get(status)) if text]
        documented[status] = {
            "description": f"{_phrase(status)}: {'; '.join(said)}" if said else _phrase(status),
            "content": {PROBLEM: {"model": Problem}},
        }
        if status == 503:
            documented[status]["headers"] = _RETRY_AFTER
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
        return _refused(ValidationFailed(safe_errors(error.errors()) + _unknown_query_parameters(app)))

    @app.exception_handler(RequestUnsupportedContentType)
    def _not_json(_error: RequestUnsupportedContentType) -> Response[str]:
        # ``answer`` lets through only JSON bodies, with their media type in lower case, which
        # the resolver reads; anything else it would refuse is answered the same way.
        return _unsupported_media_type()

    @app.exception_handler(InfrastructureError)
    def _unavailable(error: InfrastructureError) -> Response[str]:
        logger.warning("dependency unavailable", extra={"error_code": error.code})
        return problem(
            503,
            error.code,
            "The service could not complete the request; try again.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.not_found
    def _no_route(_error: Exception) -> Response[str]:
        return problem(404, "NOT_FOUND", "No route for this method and path.")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        return internal_error(error, _route_label(app.current_event.raw_event))

    def _no_unknown_query_parameters(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Any:
        unknown = _unknown_query_parameters(app)
        if unknown:
            raise ValidationFailed(unknown)
        return next_middleware(app)

    app.use([_no_unknown_query_parameters])
    return app


def _unknown_query_parameters(app: APIGatewayRestResolver) -> list[dict[str, Any]]:
    """A 422 error for each query parameter the matched route does not declare."""
    route = app.context.get("_route")
    declared = {field.alias for field in route.dependant.query_params} if route is not None else set()
    event = app.current_event
    given = {**(event.query_string_parameters or {}), **(event.multi_value_query_string_parameters or {})}
    return [
        {"loc": ["query", safe_name(name)], "msg": "unknown query parameter"}
        for name in sorted(given)
        if name not in declared
    ]


def internal_error(error: BaseException, route: str) -> Response[str]:
    """The last line's answer to a failure nothing anticipated: 500 ``INTERNAL_ERROR`` with an
    ``error_id``, logged with that id, and counted."""
    error_id = str(uuid.uuid4())
    logger.error(
        "unhandled error",
        extra={
            "error_id": error_id,
            "error_type": type(error).__name__,
            "route": route,
            # Where it happened (innermost first), never what it said: the message may quote
            # a submitted value.
            "frames": [
                f"{PurePath(frame.filename).name}:{frame.lineno} {frame.name}"
                for frame in reversed(traceback.extract_tb(error.__traceback__))
            ],
        },
    )
    count(Metric.UNHANDLED_ERRORS)
    return problem(
        500,
        "INTERNAL_ERROR",
        "The service failed unexpectedly; quote error_id to its operators.",
        error_id=error_id,
    )


def _route_label(event: dict[str, Any]) -> str:
    """``METHOD /resource/{template}``: the route, never the path with its values."""
    return f"{event.get('httpMethod', '')} {event.get('resource', '')}"


T = TypeVar("T")

#: What an entry point supplies for its routers' ``Needed`` collaborators (``Needed.supplied``).
Supplied = Mapping[str, Callable[[], Any]]

# The collaborators of the request being answered. Not the resolver's context: a router shares the
# context of the resolver that included it last (the OpenAPI document's includes them all), and
# the context is one dict for every thread serving the resolver.
_supplied: ContextVar[Supplied] = ContextVar("supplied_collaborators")


class Needed(Generic[T]):
    """A collaborator a router's routes call (``needed()``), supplied by the function's entry point
    to ``answer`` for each request.

    The entry point supplies a builder (the function's wiring, which builds on first use), so
    a dependency that cannot be built fails inside the request, answered like any other failure.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def supplied(self, build: Callable[[], T]) -> Supplied:
        return {self._name: build}

    def __call__(self) -> T:
        build: Callable[[], T] | None = _supplied.get({}).get(self._name)
        if build is None:
            raise LookupError(f"the function's entry point supplies no {self._name}")
        return build()


def answer(
    app: APIGatewayRestResolver, event: dict[str, Any], context: Any, supplied: Supplied | None = None
) -> dict[str, Any]:
    """Check the body, then route the request with the collaborators ``supplied``; whatever fails
    on the way is the last line's 500."""
    try:
        refused = _refuse_body(event)
        if refused is not None:
            return _proxy(refused)
        token = _supplied.set(supplied or {})
        try:
            return app.resolve(_json_in_lower_case(event), context)
        finally:
            _supplied.reset(token)
    except Exception as error:  # the last line: nothing reaches Lambda as an error
        return _proxy(internal_error(error, _route_label(event)))


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
    if content_type is not None and _media_type(content_type) != JSON:
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


def _media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, in lower case: RFC 9110 compares types and
    subtypes without regard to case (``Application/JSON`` is JSON). ``application/json`` is the
    one type the routes read (``application/*+json`` is not)."""
    return content_type.split(";", 1)[0].strip().lower()


def _json_in_lower_case(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a JSON body's ``Content-Type`` spelled as the resolver reads it (it
    looks for ``application/json`` letter for letter); its parameters are kept."""

    def lowered(value: Any) -> Any:
        if not isinstance(value, str) or _media_type(value) != JSON:
            return value
        _type, separator, parameters = value.partition(";")
        return JSON + separator + parameters

    def in_headers(headers: dict[str, Any] | None, spell: Callable[[Any], Any]) -> dict[str, Any] | None:
        if not headers:
            return headers
        return {
            name: spell(value) if name.lower() == "content-type" else value for name, value in headers.items()
        }

    return {
        **event,
        "headers": in_headers(event.get("headers"), lowered),
        "multiValueHeaders": in_headers(
            event.get("multiValueHeaders"), lambda values: [lowered(value) for value in values or ()]
        ),
    }


def _proxy(response: Response[str]) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": PROBLEM},
        "body": response.body,
        "isBase64Encoded": False,
    }
