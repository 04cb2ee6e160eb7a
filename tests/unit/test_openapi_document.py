"""The OpenAPI document says what an integrator meets: every answer an operation can give, from
the service or from API Gateway in front of it, typed; statuses as enums; no schema nothing uses;
where the API is served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from booking_durability.api.service import openapi_document
from booking_durability.emails.models import EmailStatus
from booking_durability.reservations.holds import HoldStatus

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
#: What any operation may answer: the body checks and validation, API Gateway's IAM refusal (also
#: for an unknown method or route in AWS), the local server's 405, throttling, the last line's 500,
#: and a failed or late function (502, 504) or dependency (503).
EVERY_OPERATION = {400, 403, 405, 413, 415, 422, 429, 500, 502, 503, 504}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, route, operation)
        for route, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_every_operation_declares_every_problem_it_can_meet_as_problem_json(document: dict[str, Any]) -> None:
    for method, route, operation in operations(document):
        answers = operation["responses"]
        assert {int(status) for status in answers} >= EVERY_OPERATION, (method, route)
        for status, answer in answers.items():
            if int(status) >= 400:
                assert answer["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, (
                    route,
                    status,
                )
        assert "Retry-After" in answers["503"]["headers"]


def test_each_common_problem_names_its_codes(document: dict[str, Any]) -> None:
    answers = document["paths"]["/v1/holds"]["post"]["responses"]
    for status, code in {
        "403": "FORBIDDEN",
        "405": "METHOD_NOT_ALLOWED",
        "429": "THROTTLED",
        "500": "INTERNAL_ERROR",
        "502": "UPSTREAM_FAILED",
        "503": "STORE_UNAVAILABLE",
        "504": "UPSTREAM_TIMEOUT",
    }.items():
        assert code in answers[status]["description"]


def test_the_document_routes_422_is_a_problem(document: dict[str, Any]) -> None:
    answer = document["paths"]["/v1/openapi.json"]["get"]["responses"]["422"]
    assert answer["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}


def test_no_schema_is_left_that_no_operation_uses(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for leftover in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        assert leftover not in schemas
    # Every schema is named by an operation, or by a schema an operation names, and so on
    used: set[str] = set()
    reached = [document["paths"]]
    while reached:
        text = json.dumps(reached.pop())
        for name in set(schemas) - used:
            if f'"#/components/schemas/{name}"' in text:
                used.add(name)
                reached.append(schemas[name])
    assert used == set(schemas)


def test_a_problem_needs_no_detail_and_types_its_validation_errors(document: dict[str, Any]) -> None:
    problem = schema(document, "Problem")
    assert set(problem["required"]) == {"title", "status", "code"}  # API Gateway's own have no detail
    assert problem["properties"]["detail"]["type"] == "string"  # never null when present
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ValidationIssue"}
    issue = schema(document, "ValidationIssue")
    assert set(issue["required"]) == {"loc", "msg"}
    assert issue["properties"]["loc"]["items"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert issue["properties"]["msg"]["type"] == "string"


def test_statuses_are_enums(document: dict[str, Any]) -> None:
    assert schema(document, "HoldStatus")["enum"] == [status.value for status in HoldStatus]
    assert schema(document, "EmailStatus")["enum"] == [status.value for status in EmailStatus]
    for view in ("HoldView",):
        assert schema(document, view)["properties"]["status"] == {"$ref": "#/components/schemas/HoldStatus"}
    for view in ("EmailState", "EmailAccepted"):
        assert schema(document, view)["properties"]["status"] == {"$ref": "#/components/schemas/EmailStatus"}
    assert schema(document, "BookingView")["properties"]["status"]["enum"] == ["confirmed", "cancelled"]
    assert schema(document, "ConfirmationView")["properties"]["status"]["const"] == "confirmed"
    assert schema(document, "EmailCancelled")["properties"]["status"]["const"] == "cancelled"
    assert schema(document, "Health")["properties"]["status"]["const"] == "ok"


def test_a_venue_and_a_holds_snapshot_are_typed_in_answers(document: dict[str, Any]) -> None:
    venue = schema(document, "VenueView")["properties"]
    assert venue["tables"]["items"] == {"$ref": "#/components/schemas/Table-Output"}
    assert venue["policy"] == {"$ref": "#/components/schemas/SeatingPolicy"}
    # As answered, a table has its defaults filled in
    assert {"min_party", "combinable_with"} <= set(schema(document, "Table-Output")["required"])
    snapshot = schema(document, "HoldView")["properties"]["selection_snapshot"]
    assert {"$ref": "#/components/schemas/SelectionSnapshot"} in snapshot["anyOf"]
    assert set(schema(document, "SelectionSnapshot")["properties"]) == {
        "party_size",
        "starts_at",
        "ends_at",
        "zone",
        "tables",
        "quoted_at",
    }


def test_a_request_schema_states_its_defaults_in_words(document: dict[str, Any]) -> None:
    # A generator reads a property with a default as always present: true of answers only
    text = json.dumps({name: schema(document, name) for name in ("EmailRequest", "Table-Input", "Recipient")})
    assert '"default"' not in text
    revision = schema(document, "EmailRequest")["properties"]["revision"]
    assert "Default: 0." in revision["description"]
    assert "revision" not in schema(document, "EmailRequest")["required"]


@pytest.mark.parametrize(
    ("route", "method"),
    [
        ("/v1/venues/{venue_id}", "get"),
        ("/v1/venues/{venue_id}/versions/{n}", "get"),
        ("/v1/venues/{venue_id}", "put"),
    ],
)
def test_the_venue_answers_carry_their_etag(document: dict[str, Any], route: str, method: str) -> None:
    etag = document["paths"][route][method]["responses"]["200"]["headers"]["ETag"]
    assert etag["required"] is True


def test_the_document_names_where_the_api_is_served(document: dict[str, Any]) -> None:
    local, aws = document["servers"]
    assert local["url"] == "http://127.0.0.1:3000"
    assert aws["url"] == "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"
    assert set(aws["variables"]) == {"api_id", "region", "stage"}
    assert all("default" in variable for variable in aws["variables"].values())
