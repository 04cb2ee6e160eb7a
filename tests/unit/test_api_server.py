"""The local API's gateway: routes read from the template, the proxy event, the proxy response."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from devstack.api_gateway import (
    HTTP_METHODS,
    INTEGRATION_FAILURE,
    REQUEST_TOO_LARGE,
    RESOURCE_NOT_FOUND,
    ApiRoute,
    ApiSpec,
    HttpRequest,
    MalformedProxyResponse,
    MethodNotAllowed,
    RouteMatch,
    RouteTable,
    api_spec,
    gateway_answer,
    method_not_allowed,
    proxy_answer,
    proxy_event,
)
from devstack.local_resources import FUNCTION, LocalQueue, LocalResources, TemplateError, resources_of_type
from devstack.worker import LambdaContext

REGION = "eu-west-1"
API = "RestApi"
ROOT = {"Fn::GetAtt": [API, "RootResourceId"]}
RECEIVED_AT = datetime(2026, 12, 1, 12, 30, 15, 250000, tzinfo=UTC)


# --- Builders: a template the way the CDK writes one -------------------------------------------


def resource(parent: Any, part: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::Resource",
        "Properties": {"ParentId": parent, "PathPart": part, "RestApiId": {"Ref": API}},
    }


def method(resource_id: Any, verb: str, function: str, integration: str = "AWS_PROXY") -> dict[str, Any]:
    uri = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":apigateway:",
                {"Ref": "AWS::Region"},
                ":lambda:path/2015-03-31/functions/",
                {"Fn::GetAtt": [function, "Arn"]},
                "/invocations",
            ],
        ]
    }
    return {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "AuthorizationType": "AWS_IAM",
            "HttpMethod": verb,
            "Integration": {"IntegrationHttpMethod": "POST", "Type": integration, "Uri": uri},
            "ResourceId": resource_id,
            "RestApiId": {"Ref": API},
        },
    }


def function(code_dir: str, variables: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "handler.handler",
            "Runtime": "python3.13",
            "Timeout": 10,
            "MemorySize": 512,
            "Environment": {"Variables": variables},
        },
        "Metadata": {"aws:asset:path": code_dir},
    }


def gateway_response(kind: str, status: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::GatewayResponse",
        "Properties": {
            "ResponseType": kind,
            "RestApiId": {"Ref": API},
            "StatusCode": status,
            "ResponseParameters": {"gatewayresponse.header.Content-Type": "'application/problem+json'"},
            "ResponseTemplates": {"application/json": json.dumps(body)},
        },
    }


def booking_template() -> dict[str, Any]:
    """Two functions behind a small resource tree, a MOCK method, a stage, gateway responses."""
    return {
        "Resources": {
            API: {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "test-api"}},
            "V1": resource(ROOT, "v1"),
            "Health": resource({"Ref": "V1"}, "health"),
            "Holds": resource({"Ref": "V1"}, "holds"),
            "Hold": resource({"Ref": "Holds"}, "{hold_id}"),
            "HoldConfirm": resource({"Ref": "Hold"}, "confirm"),
            "Emails": resource({"Ref": "V1"}, "emails"),
            "HealthGet": method({"Ref": "Health"}, "GET", "ReservationsFn"),
            "HoldGet": method({"Ref": "Hold"}, "GET", "ReservationsFn"),
            "HoldDelete": method({"Ref": "Hold"}, "DELETE", "ReservationsFn"),
            "HoldConfirmPost": method({"Ref": "HoldConfirm"}, "POST", "ReservationsFn"),
            "EmailsPost": method({"Ref": "Emails"}, "POST", "EmailFn"),
            "EmailsOptions": method({"Ref": "Emails"}, "OPTIONS", "EmailFn", integration="MOCK"),
            "ReservationsFn": function(
                "/code/reservations_api", {"POWERTOOLS_SERVICE_NAME": "reservations-api"}
            ),
            "EmailFn": function("/code/email_api", {"EMAIL_QUEUE_URL": {"Ref": "EmailQueue"}}),
            "Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {
                    "RestApiId": {"Ref": API},
                    "StageName": "local",
                    "DeploymentId": {"Ref": "Dep"},
                },
            },
            "NotFound": gateway_response(
                RESOURCE_NOT_FOUND, "404", {"type": "about:blank", "title": "Not Found", "code": "NOT_FOUND"}
            ),
            "Default5xx": gateway_response(
                "DEFAULT_5XX", "502", {"title": "Bad Gateway", "code": "UPSTREAM_FAILED"}
            ),
        }
    }


def local_resources(template: dict[str, Any]) -> LocalResources:
    """What the local stack knows after creating the template's resources in moto."""
    resources = LocalResources(region=REGION, stack_name="BookingDurability-local")
    resources.function_names = {
        logical_id: logical_id for logical_id in resources_of_type(template, FUNCTION)
    }
    resources.queues["EmailQueue"] = LocalQueue(
        "EmailQueue",
        "EmailQueue",
        "http://127.0.0.1:4566/123456789012/EmailQueue",
        "arn:aws:sqs:::EmailQueue",
    )
    return resources


def spec_of(template: dict[str, Any], warnings: list[str] | None = None) -> ApiSpec:
    spec = api_spec(
        template,
        local_resources(template),
        assembly_dir=Path("/assembly"),
        local_environment={"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
        warn=(warnings if warnings is not None else []).append,
    )
    assert spec is not None
    return spec


def request(
    method: str = "GET", path: str = "/v1/health", *, query: str = "", body: bytes = b"", headers: Any = ()
) -> HttpRequest:
    return HttpRequest(
        method=method,
        path=path,
        query=query,
        headers=[("Host", "127.0.0.1:3000"), ("User-Agent", "booking-app/1.0"), *headers],
        body=body,
        source_ip="127.0.0.1",
        received_at=RECEIVED_AT,
        request_id="8a1c3a0e-8a8d-4a55-9a9c-3f3c2f2d1e10",
    )


def event_for(spec: ApiSpec, req: HttpRequest) -> dict[str, Any]:
    match = RouteTable(spec.routes).resolve(req.method, req.path)
    assert isinstance(match, RouteMatch)
    return proxy_event(spec, match, req)


# --- Routes from the template -----------------------------------------------------------------


def test_routes_are_the_templates_methods_on_the_paths_their_resources_spell() -> None:
    # Given a template whose resources chain PathParts below the API's root
    warnings: list[str] = []

    # When the local gateway reads it
    spec = spec_of(booking_template(), warnings)

    # Then every proxy method is a route on its full path, served by the function its URI names
    assert {(r.method, r.resource_path, r.function) for r in spec.routes} == {
        ("GET", "/v1/health", "ReservationsFn"),
        ("GET", "/v1/holds/{hold_id}", "ReservationsFn"),
        ("DELETE", "/v1/holds/{hold_id}", "ReservationsFn"),
        ("POST", "/v1/holds/{hold_id}/confirm", "ReservationsFn"),
        ("POST", "/v1/emails", "EmailFn"),
    }
    # And a method that is not a Lambda proxy is left out, saying so
    assert len(warnings) == 1
    assert "EmailsOptions" in warnings[0]
    assert "MOCK" in warnings[0]
    # And the stage is the template's
    assert spec.stage == "local"


def test_each_function_keeps_its_template_environment_with_references_resolved() -> None:
    spec = spec_of(booking_template())

    email = spec.functions["EmailFn"]
    assert email.environment["EMAIL_QUEUE_URL"] == "http://127.0.0.1:4566/123456789012/EmailQueue"
    assert email.environment["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"  # the local override
    assert email.code_dir == "/code/email_api"
    assert email.handler == "handler.handler"
    assert (email.timeout_seconds, email.memory_mb) == (10, 512)
    assert spec.functions["ReservationsFn"].environment["POWERTOOLS_SERVICE_NAME"] == "reservations-api"


def test_the_spec_survives_its_json_file() -> None:
    spec = spec_of(booking_template())

    assert ApiSpec.from_json(spec.to_json()) == spec


def test_a_method_on_the_root_and_one_through_an_alias_are_routed() -> None:
    template = booking_template()
    template["Resources"]["RootGet"] = method(ROOT, "GET", "ReservationsFn")
    template["Resources"]["Live"] = {
        "Type": "AWS::Lambda::Alias",
        "Properties": {"FunctionName": {"Ref": "EmailFn"}, "Name": "live"},
    }
    aliased = method({"Ref": "Emails"}, "PUT", "EmailFn")
    aliased["Properties"]["Integration"]["Uri"] = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        "${Live}/invocations"
    }
    template["Resources"]["EmailsPut"] = aliased

    routes = {(r.method, r.resource_path): r.function for r in spec_of(template).routes}

    assert routes[("GET", "/")] == "ReservationsFn"
    assert routes[("PUT", "/v1/emails")] == "EmailFn"


def test_a_template_without_a_rest_api_has_no_api() -> None:
    template = {"Resources": {"Fn": function("/code", {})}}

    assert (
        api_spec(
            template,
            local_resources(template),
            assembly_dir=Path("/"),
            local_environment={},
            warn=print,
        )
        is None
    )


def test_a_resource_outside_the_tree_is_a_template_error() -> None:
    template = booking_template()
    template["Resources"]["Orphan"] = resource({"Ref": "Nowhere"}, "lost")

    with pytest.raises(TemplateError, match="Nowhere"):
        spec_of(template)


# --- Routing ----------------------------------------------------------------------------------


def routes(*pairs: tuple[str, str]) -> RouteTable:
    return RouteTable(ApiRoute(m, p, "r1", "fn") for m, p in pairs)


def test_a_path_finds_its_route_with_its_parameters_decoded() -> None:
    table = routes(("POST", "/v1/holds/{hold_id}/confirm"))

    match = table.resolve("POST", "/v1/holds/h%201%2F2/confirm")

    assert isinstance(match, RouteMatch)
    assert match.route.resource_path == "/v1/holds/{hold_id}/confirm"
    assert match.path_parameters == {"hold_id": "h 1/2"}


def test_a_literal_path_part_wins_over_a_variable_and_a_variable_over_a_greedy_one() -> None:
    table = routes(
        ("GET", "/v1/venues/{venue_id}"), ("GET", "/v1/venues/featured"), ("GET", "/files/{path+}")
    )

    literal = table.resolve("GET", "/v1/venues/featured")
    variable = table.resolve("GET", "/v1/venues/v-9")
    greedy = table.resolve("GET", "/files/a/b/c.txt")

    assert isinstance(literal, RouteMatch)
    assert literal.route.resource_path == "/v1/venues/featured"
    assert isinstance(variable, RouteMatch)
    assert variable.path_parameters == {"venue_id": "v-9"}
    assert isinstance(greedy, RouteMatch)
    assert greedy.path_parameters == {"path": "a/b/c.txt"}


@pytest.mark.parametrize(
    "path", ["/v1/nothing", "/v1", "/", "/v1/health/", "//v1/health", "/v1/health/extra"]
)
def test_a_path_no_method_is_on_has_no_route(path: str) -> None:
    assert routes(("GET", "/v1/health")).resolve("GET", path) is None


def test_a_known_path_with_another_method_says_which_methods_it_takes() -> None:
    table = routes(("GET", "/v1/holds/{hold_id}"), ("DELETE", "/v1/holds/{hold_id}"))

    assert table.resolve("PUT", "/v1/holds/h1") == MethodNotAllowed(("DELETE", "GET"))


def test_any_takes_every_method() -> None:
    match = routes(("ANY", "/v1/things")).resolve("PATCH", "/v1/things")

    assert isinstance(match, RouteMatch)
    assert match.route.method == "ANY"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "BREW"])
def test_a_method_api_gateway_does_not_route_reaches_no_function(method: str) -> None:
    # ANY stands for API Gateway's seven methods, not for whatever a client sends
    assert routes(("ANY", "/v1/things")).resolve(method, "/v1/things") == MethodNotAllowed(HTTP_METHODS)
    assert routes(("GET", "/v1/things")).resolve(method, "/v1/things") == MethodNotAllowed(("GET",))


# --- The proxy event --------------------------------------------------------------------------


def test_the_event_is_a_rest_api_proxy_event_powertools_accepts() -> None:
    spec = spec_of(booking_template())
    req = request(
        "POST",
        "/v1/holds/h-1/confirm",
        query="revision=1&tag=a&tag=b%20c&flag",
        body=b'{"booking_id":"b-1"}',
        headers=[("Content-Type", "application/json"), ("X-Dup", "1"), ("X-Dup", "2")],
    )

    event = event_for(spec, req)

    # Then it parses as API Gateway's REST proxy event (payload format 1.0)
    model = APIGatewayProxyEventModel.model_validate(event)
    assert model.resource == "/v1/holds/{hold_id}/confirm"
    assert model.path == "/v1/holds/h-1/confirm"
    assert model.httpMethod == "POST"
    assert model.pathParameters == {"hold_id": "h-1"}
    assert model.body == '{"booking_id":"b-1"}'
    assert model.isBase64Encoded is False
    # And single-value maps hold the last value, multi-value maps all of them, decoded
    assert event["queryStringParameters"] == {"revision": "1", "tag": "b c", "flag": ""}
    assert event["multiValueQueryStringParameters"] == {"revision": ["1"], "tag": ["a", "b c"], "flag": [""]}
    assert event["headers"]["X-Dup"] == "2"
    assert event["multiValueHeaders"]["X-Dup"] == ["1", "2"]
    # And API Gateway's own headers are added
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["stageVariables"] is None


def test_the_request_context_says_which_route_stage_and_request() -> None:
    spec = spec_of(booking_template())

    context = event_for(spec, request("GET", "/v1/holds/h-1"))["requestContext"]

    assert context["resourcePath"] == "/v1/holds/{hold_id}"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/local/v1/holds/h-1"
    assert context["stage"] == "local"
    assert context["requestId"] == "8a1c3a0e-8a8d-4a55-9a9c-3f3c2f2d1e10"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "booking-app/1.0"
    assert context["identity"]["userArn"] is None  # no auth locally
    assert context["requestTimeEpoch"] == 1796128215250
    assert context["requestTime"] == "01/Dec/2026:12:30:15 +0000"
    assert context["apiId"] == spec.api_id
    assert context["domainName"] == "127.0.0.1:3000"


def test_a_request_without_body_or_query_has_nulls_there() -> None:
    event = event_for(spec_of(booking_template()), request())

    assert event["body"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None


def test_a_binary_media_type_body_is_base64_encoded() -> None:
    template = booking_template()
    template["Resources"][API]["Properties"]["BinaryMediaTypes"] = ["image/*"]
    spec = spec_of(template)
    png = b"\x89PNG\r\n\x1a\n\x00\xff"

    event = event_for(spec, request("POST", "/v1/emails", body=png, headers=[("Content-Type", "image/png")]))

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == png


def test_powertools_routes_the_event_to_the_handler_route() -> None:
    # Given a Powertools REST resolver, as the real handlers use
    app = APIGatewayRestResolver()

    @app.post("/v1/holds/<hold_id>/confirm")
    def confirm(hold_id: str) -> dict[str, Any]:
        return {"hold_id": hold_id, "booking_id": app.current_event.json_body["booking_id"]}

    spec = spec_of(booking_template())
    req = request("POST", "/v1/holds/h-7/confirm", body=b'{"booking_id":"b-1"}')
    context: Any = LambdaContext(spec.functions["ReservationsFn"], REGION)

    # When it resolves the event the local gateway builds
    response = app.resolve(event_for(spec, req), context)

    # Then its proxy response becomes the HTTP answer
    answer = proxy_answer(response)
    assert answer.status == 200
    assert json.loads(answer.body) == {"hold_id": "h-7", "booking_id": "b-1"}
    assert ("Content-Type", "application/json") in answer.headers


# --- The proxy response -----------------------------------------------------------------------


def test_headers_and_multi_value_headers_are_merged_a_pair_once() -> None:
    answer = proxy_answer(
        {
            "statusCode": 201,
            "headers": {"ETag": '"abc"', "X-One": "1", "X-Count": 3},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-One": ["1"]},
            "body": '{"ok":true}',
        }
    )

    assert answer.status == 201
    assert sorted(answer.headers) == sorted(
        [
            ("ETag", '"abc"'),
            ("X-One", "1"),
            ("X-Count", "3"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Type", "application/json"),  # API Gateway's default
        ]
    )
    assert answer.body == b'{"ok":true}'


def test_a_base64_body_is_sent_decoded() -> None:
    answer = proxy_answer(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
    )

    assert answer.body == b"\x00\x01"
    assert answer.headers == [("Content-Type", "image/png")]


@pytest.mark.parametrize(
    "response",
    [
        None,
        "200",
        {"body": "{}"},
        {"statusCode": "abc"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": {"X": ["list"]}},
        {"statusCode": 200, "multiValueHeaders": {"X": "not a list"}},
        {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
        {"statusCode": 200, "unexpected": 1},
    ],
)
def test_anything_but_a_proxy_response_is_malformed(response: Any) -> None:
    with pytest.raises(MalformedProxyResponse):
        proxy_answer(response)


# --- What the gateway answers by itself -------------------------------------------------------


def test_the_gateway_answers_with_the_templates_gateway_responses() -> None:
    spec = spec_of(booking_template())

    not_found = gateway_answer(spec, RESOURCE_NOT_FOUND, "req-1")
    failed = gateway_answer(spec, INTEGRATION_FAILURE, "req-1")  # none of its own: DEFAULT_5XX

    assert not_found.status == 404
    assert json.loads(not_found.body) == {"type": "about:blank", "title": "Not Found", "code": "NOT_FOUND"}
    assert ("Content-Type", "application/problem+json") in not_found.headers
    assert failed.status == 502
    assert json.loads(failed.body)["code"] == "UPSTREAM_FAILED"


def test_without_gateway_responses_the_gateway_answers_problem_documents() -> None:
    template = booking_template()
    del template["Resources"]["NotFound"], template["Resources"]["Default5xx"]
    spec = spec_of(template)

    not_found = gateway_answer(spec, RESOURCE_NOT_FOUND, "req-1")
    too_large = gateway_answer(spec, REQUEST_TOO_LARGE, "req-1")
    failed = gateway_answer(spec, INTEGRATION_FAILURE, "req-1")

    assert json.loads(not_found.body) == {
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "detail": "No route for this method and path.",
        "code": "NOT_FOUND",
    }
    assert (too_large.status, json.loads(too_large.body)["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert (failed.status, json.loads(failed.body)["code"]) == (502, "BAD_GATEWAY")
    assert all(
        ("Content-Type", "application/problem+json") in a.headers for a in (not_found, too_large, failed)
    )


def test_a_method_not_allowed_names_the_allowed_ones() -> None:
    answer = method_not_allowed(("DELETE", "GET"))

    assert answer.status == 405
    assert ("Allow", "DELETE, GET") in answer.headers
    assert json.loads(answer.body)["code"] == "METHOD_NOT_ALLOWED"
