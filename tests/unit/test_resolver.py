"""The resolver's request checks: each route's size limit, one answer for bodies that are not
JSON (media types compared without regard to case), strict parameters, and errors that name
what was wrong without echoing it."""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from pydantic import BaseModel, ConfigDict

from booking_durability.api.resolver import Needed, answer, build_resolver, json_response
from booking_durability.errors import StoreUnavailable
from booking_durability.validation import DecimalInteger, JsonInteger
from tests.builders import GUEST_EMAIL, LambdaContext, api_event

KIB = 1024

router = Router()


class Saved(BaseModel):
    venue_id: str | None = None


class Revised(BaseModel):
    revision: int


@router.put("/v1/venues/<venue_id>")
def put_venue(venue_id: str, body: Annotated[dict[str, Any], Body()]) -> Response[str]:
    return json_response(200, Saved(venue_id=venue_id))


@router.post("/v1/holds")
def post_hold(body: Annotated[dict[str, Any], Body()]) -> Response[str]:
    return json_response(201, Saved())


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    party_size: Annotated[int, JsonInteger(ge=1)] = 1


@router.post("/v1/strict")
def post_strict(
    body: Annotated[Strict, Body()],
    revision: Annotated[int, DecimalInteger(ge=0, le=10), Query()] = 0,
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=5)] = None,
) -> Response[str]:
    return json_response(200, Revised(revision=revision))


APP = build_resolver([router])


def call(
    method: str,
    path: str,
    text: str,
    content_type: str = "application/json",
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    event = api_event(
        method, path, raw_body=text, headers={"Content-Type": content_type, **(headers or {})}, query=query
    )
    response = answer(APP, event, LambdaContext())
    headers = {name.lower(): values[-1] for name, values in response.get("multiValueHeaders", {}).items()}
    headers.update({name.lower(): value for name, value in (response.get("headers") or {}).items()})
    if response["statusCode"] >= 400:
        assert headers["content-type"] == "application/problem+json"
    return response["statusCode"], json.loads(response["body"])


def body_of(size: int) -> str:
    """A JSON object of exactly ``size`` bytes."""
    frame = '{"pad": ""}'
    return '{"pad": "' + "x" * (size - len(frame)) + '"}'


@pytest.mark.parametrize(
    ("method", "path", "size", "status"),
    [
        ("PUT", "/v1/venues/v1", 100 * KIB, 200),
        ("PUT", "/v1/venues/v1", 256 * KIB, 200),
        ("PUT", "/v1/venues/v1", 256 * KIB + 1, 413),
        ("POST", "/v1/holds", 64 * KIB, 201),
        ("POST", "/v1/holds", 64 * KIB + 1, 413),
    ],
)
def test_venues_take_bodies_up_to_256_kib_and_every_other_route_64(
    method: str, path: str, size: int, status: int
) -> None:
    text = body_of(size)
    assert len(text.encode()) == size
    answered, body = call(method, path, text)
    assert answered == status, body
    if status == 413:
        assert body["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("content_type", ["text/plain", "application/vnd.api+json", "application/json-seq"])
def test_a_body_that_is_not_sent_as_json_gets_the_one_415_problem(content_type: str) -> None:
    answered, body = call("POST", "/v1/holds", "{}", content_type)
    assert answered == 415
    assert body == {
        "type": "about:blank",
        "title": "Unsupported Media Type",
        "status": 415,
        "detail": "Send the body as application/json.",
        "code": "UNSUPPORTED_MEDIA_TYPE",
    }


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/JSON; charset=UTF-8",
        "APPLICATION/json ",
    ],
)
def test_json_in_any_letter_case_and_with_a_charset_is_json(content_type: str) -> None:
    # Media types are case-insensitive (RFC 9110): the route reads the body
    assert call("POST", "/v1/holds", "{}", content_type)[0] == 201
    assert call("POST", "/v1/strict", '{"party_size": 2}', content_type)[0] == 200


@pytest.mark.parametrize("query", [{"Revision": "5"}, {"revision": "1", "extra": "x"}, {"limit": "10"}])
def test_an_unknown_query_parameter_is_refused_by_name(query: dict[str, str]) -> None:
    status, body = call("POST", "/v1/strict", "{}", query=query)
    assert status == 422
    assert body["code"] == "VALIDATION_FAILED"
    unknown = sorted(set(query) - {"revision"})
    assert [error["loc"] for error in body["errors"]] == [["query", name] for name in unknown]


def test_an_unknown_query_parameter_is_reported_beside_other_errors() -> None:
    status, body = call("POST", "/v1/strict", '{"party_size": "2"}', query={"Revision": "5"})
    assert status == 422
    assert [error["loc"] for error in body["errors"]] == [["body", "party_size"], ["query", "Revision"]]


def test_an_unknown_query_parameter_is_found_in_either_form_of_the_event() -> None:
    # An event may carry only the single-valued map (or only the multi-valued one)
    event = api_event("POST", "/v1/strict", raw_body="{}", headers={"Content-Type": "application/json"})
    event["queryStringParameters"] = {"Revision": "5"}
    event["multiValueQueryStringParameters"] = None
    response = answer(APP, event, LambdaContext())
    assert response["statusCode"] == 422
    assert [error["loc"] for error in json.loads(response["body"])["errors"]] == [["query", "Revision"]]


def test_a_query_parameter_named_like_an_address_is_not_echoed() -> None:
    status, body = call("POST", "/v1/strict", "{}", query={GUEST_EMAIL: "1"})
    assert status == 422
    assert body["errors"] == [{"loc": ["query", "(unknown)"], "msg": "unknown query parameter"}]
    assert GUEST_EMAIL not in json.dumps(body)


@pytest.mark.parametrize(
    "revision", ["+5", "05", "5.0", " 5", "5_0", "true", "-1", "11", "\u0665"]
)  # the last: ARABIC-INDIC DIGIT FIVE
def test_an_integer_query_parameter_is_decimal_digits(revision: str) -> None:
    status, body = call("POST", "/v1/strict", "{}", query={"revision": revision})
    assert status == 422
    assert [error["loc"] for error in body["errors"]] == [["query", "revision"]]


def test_a_bad_header_is_named() -> None:
    status, body = call("POST", "/v1/strict", "{}", headers={"Idempotency-Key": "toolong"})
    assert status == 422
    assert [error["loc"] for error in body["errors"]] == [["header", "idempotency-key"]]


@pytest.mark.parametrize(("party_size", "status"), [(2, 200), (2.0, 200), ("2", 422), (True, 422)])
def test_body_fields_are_strict(party_size: Any, status: int) -> None:
    assert call("POST", "/v1/strict", json.dumps({"party_size": party_size}))[0] == status


def test_an_unexpected_field_is_named_when_it_reads_as_a_name_and_hidden_when_not() -> None:
    status, body = call("POST", "/v1/strict", json.dumps({"guests": 3, GUEST_EMAIL: 1}))
    assert status == 422
    assert sorted(error["loc"][-1] for error in body["errors"]) == ["(unknown)", "guests"]
    assert {error["msg"] for error in body["errors"]} == {"unexpected field"}
    assert GUEST_EMAIL not in json.dumps(body)


class Counter:
    """A collaborator of a route: how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def next(self) -> int:
        self.asked += 1
        return self.asked


needing = Router()
counter: Needed[Counter] = Needed("counter")


class Count(BaseModel):
    count: int


@needing.get("/v1/count")
def get_count() -> Response[str]:
    return json_response(200, Count(count=counter().next()))


NEEDING_APP = build_resolver([needing])


def test_a_route_calls_the_collaborator_its_entry_point_supplies() -> None:
    # Given a collaborator built on first use, as a function's wiring builds one
    built: list[Counter] = []

    def build() -> Counter:
        if not built:
            built.append(Counter())
        return built[0]

    supplied = counter.supplied(build)
    # When two requests are answered with it supplied
    answers = [answer(NEEDING_APP, api_event("GET", "/v1/count"), LambdaContext(), supplied) for _ in "ab"]
    # Then the route used the one supplied, built once, for each request
    assert [json.loads(response["body"]) for response in answers] == [{"count": 1}, {"count": 2}]
    assert len(built) == 1


def test_a_collaborator_that_cannot_be_built_is_answered_inside_the_request() -> None:
    # Given a collaborator whose building fails on an unavailable dependency
    def build() -> Counter:
        raise StoreUnavailable("the table could not be described")

    # When a request needs it, Then the resolver answers 503 like any unavailable dependency
    response = answer(NEEDING_APP, api_event("GET", "/v1/count"), LambdaContext(), counter.supplied(build))
    assert response["statusCode"] == 503


def test_a_collaborator_no_entry_point_supplied_is_the_last_lines_500() -> None:
    # Given a request answered without the collaborator the route needs (a wiring mistake)
    response = answer(NEEDING_APP, api_event("GET", "/v1/count"), LambdaContext())
    # Then it is an internal error with an error_id, not a crash of the function
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["code"] == "INTERNAL_ERROR"


def test_a_route_keeps_its_collaborator_once_another_resolver_includes_its_router() -> None:
    # Given the router included in a second resolver too, as the OpenAPI document includes every one
    build_resolver([needing])
    # When the function's own resolver answers with its collaborator supplied
    response = answer(NEEDING_APP, api_event("GET", "/v1/count"), LambdaContext(), counter.supplied(Counter))
    # Then the route used it
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"count": 1}


def test_requests_answered_at_once_each_use_the_collaborator_supplied_for_them() -> None:
    # Given two requests in flight together, each supplied its own collaborator
    counters = [Counter(), Counter()]
    both_in_flight = threading.Barrier(2)
    answers: list[dict[str, Any]] = [{}, {}]

    def serve(index: int) -> None:
        def build() -> Counter:
            both_in_flight.wait()
            return counters[index]

        event = api_event("GET", "/v1/count")
        answers[index] = answer(NEEDING_APP, event, LambdaContext(), counter.supplied(build))

    threads = [threading.Thread(target=serve, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each request used its own, once
    assert [response["statusCode"] for response in answers] == [200, 200]
    assert [each.asked for each in counters] == [1, 1]
