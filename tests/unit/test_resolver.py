"""The resolver's body checks (CONTRACT §0): each route's size limit, and one answer for bodies
that are not JSON, whichever check refuses them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from booking_durability.api.resolver import answer, build_resolver, json_response
from tests.builders import LambdaContext, api_event

KIB = 1024

router = Router()


@router.put("/v1/venues/<venue_id>")
def put_venue(venue_id: str, body: Annotated[dict[str, Any], Body()]) -> Response[str]:
    return json_response(200, {"venue_id": venue_id})


@router.post("/v1/holds")
def post_hold(body: Annotated[dict[str, Any], Body()]) -> Response[str]:
    return json_response(201, {})


APP = build_resolver([router])


def call(method: str, path: str, text: str, content_type: str = "application/json") -> tuple[int, Any]:
    event = api_event(method, path, raw_body=text, headers={"Content-Type": content_type})
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


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/vnd.api+json", "Application/JSON", "application/json-seq"]
)
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


def test_json_with_a_charset_is_json() -> None:
    assert call("POST", "/v1/holds", "{}", "application/json; charset=utf-8")[0] == 201
