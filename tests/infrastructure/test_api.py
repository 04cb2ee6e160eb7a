"""The HTTP API as synthesized: its routes, IAM on every method, the stage, its refusals, its grants."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"

# docs/reference/http-api.md#routes, split by the function that serves each route.
EMAIL_ROUTES = {
    ("POST", "/v1/emails"),
    ("GET", "/v1/emails/{booking_id}/{email_type}"),
    ("DELETE", "/v1/emails/{booking_id}/{email_type}"),
    ("DELETE", "/v1/emails/{booking_id}"),
}
RESERVATIONS_ROUTES = {
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("PUT", "/v1/venues/{venue_id}"),
    ("GET", "/v1/venues/{venue_id}"),
    ("GET", "/v1/venues/{venue_id}/versions/{n}"),
    ("POST", "/v1/holds"),
    ("GET", "/v1/holds/{hold_id}"),
    ("DELETE", "/v1/holds/{hold_id}"),
    ("POST", "/v1/holds/{hold_id}/confirm"),
    ("GET", "/v1/bookings/{booking_id}"),
    ("DELETE", "/v1/bookings/{booking_id}"),
}
# What API Gateway may answer by itself: each must reach the client as a problem.
REFUSALS = {
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "MISSING_AUTHENTICATION_TOKEN",
    "ACCESS_DENIED",
    "INVALID_SIGNATURE",
    "EXPIRED_TOKEN",
    "UNAUTHORIZED",
    "THROTTLED",
    "REQUEST_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "INTEGRATION_TIMEOUT",
    "INTEGRATION_FAILURE",
}
XRAY = {"xray:PutTelemetryRecords", "xray:PutTraceSegments"}


# --- routes ---------------------------------------------------------------------------------


def test_each_contract_route_is_its_own_method_on_the_function_that_serves_it(
    stage: SynthesizedStage,
) -> None:
    email_api, _ = stage.email_api
    reservations_api, _ = stage.reservations_api
    expected = dict.fromkeys(EMAIL_ROUTES, email_api) | dict.fromkeys(RESERVATIONS_ROUTES, reservations_api)
    assert stage.api_routes == expected
    # No greedy proxy and no ANY: an execute-api ARN names one method on one path
    assert not [path for _, path in stage.api_routes if "+}" in path]
    assert "ANY" not in {method for method, _ in stage.api_routes}


def test_every_method_requires_a_sigv4_signed_request(stage: SynthesizedStage) -> None:
    for route, method in stage.api_methods.items():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM", route
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY", route


def test_api_gateway_may_invoke_each_function_only_for_its_own_routes(stage: SynthesizedStage) -> None:
    # Given every permission the API holds on a function (the drift sweep's schedule holds the
    # only other one: test_drift_sweep.py)
    granted = set()
    for permission in stage.of_type("AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        if properties["Principal"] == "events.amazonaws.com":
            continue
        assert properties["Principal"] == "apigateway.amazonaws.com"
        source = properties["SourceArn"]["Fn::Join"][1]
        # Then each names the deployed stage, one method and one path: no wildcard method or stage
        assert source[-2] == {"Ref": stage.api_stage_id}, source
        method, _, path = source[-1].removeprefix("/").partition("/")
        granted.add((properties["FunctionName"]["Fn::GetAtt"][0], method, f"/{path}"))
    expected = {
        (function_id, method, re.sub(r"\{[^}]+\}", "*", path))
        for (method, path), function_id in stage.api_routes.items()
    }
    assert granted == expected


# --- stage ----------------------------------------------------------------------------------


def test_the_stage_throttles_and_logs_errors_but_never_request_data(stage: SynthesizedStage) -> None:
    api = stage.settings.api
    [every_method] = stage.api_stage["Properties"]["MethodSettings"]
    assert every_method == {
        "HttpMethod": "*",
        "ResourcePath": "/*",
        "ThrottlingRateLimit": api.throttling_rate_limit,
        "ThrottlingBurstLimit": api.throttling_burst_limit,
        "LoggingLevel": "ERROR",
        "DataTraceEnabled": False,
        "MetricsEnabled": True,
    }
    assert stage.api_stage["Properties"]["StageName"] == stage.name


def test_access_logs_are_json_lines_without_bodies_query_strings_or_callers(stage: SynthesizedStage) -> None:
    setting = stage.api_stage["Properties"]["AccessLogSetting"]
    fields = json.loads(setting["Format"])
    # One JSON object per request, every value a context variable API Gateway fills in
    assert {
        "requestId",
        "httpMethod",
        "resourcePath",
        "status",
        "responseLength",
        "integrationLatency",
        "responseLatency",
    } <= set(fields)
    assert all(re.fullmatch(r"\$context\.[A-Za-z.]+", value) for value in fields.values())
    # The route template, never the path with its values, nor the query string, a body, a header,
    # the caller's address or identity
    assert fields["resourcePath"] == "$context.resourcePath"
    for leak in ("$context.path", "$input", "$method", "$context.identity", "$context.requestOverride"):
        assert leak not in setting["Format"], leak
    # Kept as long as the stage keeps logs
    log_group_id = setting["DestinationArn"]["Fn::Join"][1][-1]["Ref"]
    retention = stage.resources[log_group_id]["Properties"]["RetentionInDays"]
    assert retention == stage.settings.observability.log_retention_days


def test_api_gateway_answers_its_own_refusals_as_problems(stage: SynthesizedStage) -> None:
    responses = {
        response["Properties"]["ResponseType"]: response["Properties"]
        for response in stage.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) >= REFUSALS
    for response_type, response in responses.items():
        assert response["RestApiId"] == {"Ref": stage.rest_api[0]}
        assert response["ResponseParameters"] == {
            "gatewayresponse.header.Content-Type": "'application/problem+json'"
        }, response_type
        [template] = response["ResponseTemplates"].values()
        problem = json.loads(template)
        # RFC 9457, with the stable code docs/reference/http-api.md#problem-documents asks for and the status
        # the client gets
        assert problem["type"] == "about:blank"
        assert problem["title"]
        assert problem["status"] == int(response["StatusCode"]), response_type
        assert re.fullmatch(r"[A-Z][A-Z_]+", problem["code"]), response_type
    assert json.loads(responses["MISSING_AUTHENTICATION_TOKEN"]["ResponseTemplates"]["application/json"]) == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "code": "FORBIDDEN",
    }
    assert responses["REQUEST_TOO_LARGE"]["StatusCode"] == "413"
    assert "PAYLOAD_TOO_LARGE" in responses["REQUEST_TOO_LARGE"]["ResponseTemplates"]["application/json"]


def test_the_api_is_regional_and_callers_find_its_url(stage: SynthesizedStage) -> None:
    _, rest_api = stage.rest_api
    assert rest_api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    url = json.dumps(stage.template_json["Outputs"]["ApiUrl"]["Value"])
    assert stage.rest_api[0] in url
    assert stage.api_stage_id in url


def test_aws_stages_trace_api_requests(aws_stage: SynthesizedStage) -> None:
    assert aws_stage.api_stage["Properties"]["TracingEnabled"] is True


def test_execution_logs_go_through_a_logging_role_kept_after_the_stack(aws_stage: SynthesizedStage) -> None:
    # API Gateway's logging role is per account and region: deleting a stage's stack must not
    # take it away from every other API there
    [account] = aws_stage.of_type("AWS::ApiGateway::Account").values()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert aws_stage.resources[role_id]["DeletionPolicy"] == "Retain"
    assert account["DeletionPolicy"] == "Retain"


# --- functions ------------------------------------------------------------------------------


def test_the_api_functions_run_their_own_handlers_sized_by_the_stage(stage: SynthesizedStage) -> None:
    for (_, function), folder, sizing in (
        (stage.email_api, "email_api", stage.settings.email_api),
        (stage.reservations_api, "reservations_api", stage.settings.reservations_api),
    ):
        properties = function["Properties"]
        assert properties["Handler"] == "handler.handler"
        assert (properties["Timeout"], properties["MemorySize"]) == (sizing.timeout_seconds, sizing.memory_mb)
        # Within API Gateway's 29 s: a longer run would only be cut off with a 504
        assert properties["Timeout"] <= 29
        staged = stage.staged_asset(properties["Code"])
        assert (staged / "handler.py").read_bytes() == (LAMBDAS_DIR / folder / "handler.py").read_bytes()


def test_the_email_api_is_pointed_at_the_email_queue_and_the_deliveries_table(
    stage: SynthesizedStage,
) -> None:
    environment = stage.email_api[1]["Properties"]["Environment"]["Variables"]
    assert environment["EMAIL_QUEUE_URL"] == {"Ref": stage.email_queue[0]}
    assert environment["DELIVERIES_TABLE"] == {"Ref": stage.deliveries_table[0]}
    assert environment["MAX_DELAY_HOP_SECONDS"] == str(stage.settings.delivery.max_delay_hop_seconds)
    assert environment["POWERTOOLS_SERVICE_NAME"] == "email-api"
    assert "RESERVATIONS_TABLE" not in environment


def test_the_reservations_api_is_pointed_at_the_reservations_table_only(stage: SynthesizedStage) -> None:
    environment = stage.reservations_api[1]["Properties"]["Environment"]["Variables"]
    assert environment["RESERVATIONS_TABLE"] == {"Ref": stage.reservations_table[0]}
    assert environment["POWERTOOLS_SERVICE_NAME"] == "reservations-api"
    assert not {name for name in environment if name.startswith(("EMAIL_", "DELIVERIES"))}


def test_the_api_functions_environments_are_what_their_runtime_settings_models_accept(
    stage: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from booking_durability.settings.email_api import EmailApiSettings
    from booking_durability.settings.reservations_api import ReservationsApiSettings

    # Given each function's environment, Refs resolved the way the local stack resolves them
    for _, function in (stage.email_api, stage.reservations_api):
        for name, value in function["Properties"]["Environment"]["Variables"].items():
            monkeypatch.setenv(name, value if isinstance(value, str) else f"resolved-{name.lower()}")
    # When each function validates its own at cold start
    email_api, reservations_api = EmailApiSettings(), ReservationsApiSettings()
    # Then it reads the stage's values and its own resources, not its defaults
    assert email_api.max_delay_hop_seconds == stage.settings.delivery.max_delay_hop_seconds
    assert email_api.deliveries_table == "resolved-deliveries_table"
    assert reservations_api.reservations_table == "resolved-reservations_table"


def test_the_email_api_may_queue_emails_and_use_the_deliveries_table_and_nothing_else(
    stage: SynthesizedStage,
) -> None:
    function_id, _ = stage.email_api
    touched = stage.touched(function_id)
    queue = stage.arn_key(stage.email_queue[0])
    table = stage.arn_key(stage.deliveries_table[0])
    assert set(touched) - {"*"} == {queue, table, stage.own_log_group_key(function_id)}
    # It publishes; only the consumer receives
    assert touched[queue] == {"sqs:SendMessage"}
    # It reads a record, a booking's records, and writes each by a conditional update
    assert touched[table] == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"}
    assert touched.get("*", XRAY) == XRAY


def test_the_reservations_api_may_use_the_reservations_table_and_nothing_else(
    stage: SynthesizedStage,
) -> None:
    function_id, _ = stage.reservations_api
    touched = stage.touched(function_id)
    table = stage.arn_key(stage.reservations_table[0])
    assert set(touched) - {"*"} == {table, stage.own_log_group_key(function_id)}
    # Reads, conditional writes and transactions; never a scan or a stream read, and deletes
    # only of the booking ids drift flows claimed (test_functions_and_layers.py holds the grant
    # to booking items)
    assert touched[table] == {
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    }
    assert touched.get("*", XRAY) == XRAY


def test_no_function_may_touch_another_functions_table(stage: SynthesizedStage) -> None:
    reservations = stage.arn_key(stage.reservations_table[0])
    deliveries = stage.arn_key(stage.deliveries_table[0])
    assert reservations not in stage.touched(stage.email_api[0])
    assert reservations not in stage.touched(stage.consumer[0])
    assert deliveries not in stage.touched(stage.reservations_api[0])
    assert not {reservations, deliveries} & set(stage.touched(stage.notifier[0]))
