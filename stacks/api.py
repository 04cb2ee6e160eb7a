"""The HTTP API: API Gateway (REST) in front of two functions, every method behind IAM (SigV4)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.function import LAMBDAS_DIR, SEND_MESSAGE, ServiceFunction, service_log_group
from stacks.reservations_table import BOOKING_ITEMS_ONLY, FREE_CLAIMED_BOOKING_ID
from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.watched import WatchedFunction

# Powertools service names: the "service" of each function's logs and EMF metrics.
EMAIL_API_SERVICE = "email-api"
RESERVATIONS_API_SERVICE = "reservations-api"
#: What the email routes' code calls on the deliveries table: a record read, each record written
#: by one conditional UpdateItem (queued, cancelled, a tombstone), a booking's records queried.
EMAIL_API_RECORDS_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem")
#: What the reservation routes' code calls on the reservations table: items read one by one, in
#: batches and by partition, and written by conditional puts, updates and transactions (whose
#: operations are authorized as PutItem, UpdateItem and ConditionCheckItem). Released holds and
#: cancelled bookings are status changes, and TTL expires the rest: the one deletion is a drift
#: flow's claim on a booking id (``FREE_CLAIMED_BOOKING_ID``, booking items only).
RESERVATIONS_API_TABLE_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)

# docs/reference/http-api.md#routes, one method on one resource each (no greedy proxy): execute-api ARNs are
# per method and path, so a caller can be granted `PUT /v1/venues/*` apart from the rest.
#: Every route of the API, by what a caller is granted as a whole: one managed policy per group
#: (stacks/caller_policies.py), so the booking app's admin side can be given ``venues-admin`` and
#: its guest side not. A route in two groups fails the synth (a second method on one resource).
ROUTE_GROUPS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "emails": (
            ("POST", "/v1/emails"),
            ("GET", "/v1/emails/{booking_id}/{email_type}"),
            ("DELETE", "/v1/emails/{booking_id}/{email_type}"),
            ("DELETE", "/v1/emails/{booking_id}"),
        ),
        "venues-admin": (("PUT", "/v1/venues/{venue_id}"),),
        "venues-read": (("GET", "/v1/venues/{venue_id}"), ("GET", "/v1/venues/{venue_id}/versions/{n}")),
        "holds": (
            ("POST", "/v1/holds"),
            ("GET", "/v1/holds/{hold_id}"),
            ("DELETE", "/v1/holds/{hold_id}"),
            ("POST", "/v1/holds/{hold_id}/confirm"),
        ),
        "bookings": (("GET", "/v1/bookings/{booking_id}"), ("DELETE", "/v1/bookings/{booking_id}")),
        "service": (("GET", "/v1/health"), ("GET", "/v1/openapi.json")),
    }
)
#: Routes that change nothing although they are not GETs (a lookup that sends its key in the
#: body, where no access log records it): the booking app's read policy covers them beside every
#: GET, and its change policy every other route (stacks/caller_policies.py).
READ_ONLY_ROUTES: frozenset[tuple[str, str]] = frozenset()

#: The email API serves the emails group, the reservations API every other one. Its service
#: routes come first, as they always have: the order the methods are made in decides the
#: deployment's logical id and the order of the template's API resources.
EMAIL_ROUTES = ROUTE_GROUPS["emails"]
RESERVATIONS_ROUTES = (
    *ROUTE_GROUPS["service"],
    *(
        route
        for group, routes in ROUTE_GROUPS.items()
        if group not in {"emails", "service"}
        for route in routes
    ),
)

PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class GatewayProblem:
    """How API Gateway answers a request it refuses itself, before any function runs."""

    status: int
    title: str
    code: str

    def body(self) -> str:
        return json.dumps(
            {"type": "about:blank", "title": self.title, "status": self.status, "code": self.code},
            separators=(",", ":"),
        )


# Every response type API Gateway can answer on its own, as an RFC 9457 problem with a stable
# code (docs/reference/http-api.md#problem-documents), so a client never meets a `{"message": ...}` body. An
# unknown route or method is MISSING_AUTHENTICATION_TOKEN for a REST API with IAM auth, hence FORBIDDEN.
GATEWAY_PROBLEMS = {
    "ACCESS_DENIED": GatewayProblem(403, "Forbidden", "FORBIDDEN"),
    "MISSING_AUTHENTICATION_TOKEN": GatewayProblem(403, "Forbidden", "FORBIDDEN"),
    "INVALID_SIGNATURE": GatewayProblem(403, "Forbidden", "INVALID_SIGNATURE"),
    "EXPIRED_TOKEN": GatewayProblem(403, "Forbidden", "EXPIRED_CREDENTIALS"),
    "INVALID_API_KEY": GatewayProblem(403, "Forbidden", "FORBIDDEN"),
    "WAF_FILTERED": GatewayProblem(403, "Forbidden", "FORBIDDEN"),
    "UNAUTHORIZED": GatewayProblem(401, "Unauthorized", "UNAUTHORIZED"),
    "RESOURCE_NOT_FOUND": GatewayProblem(404, "Not Found", "NOT_FOUND"),
    "REQUEST_TOO_LARGE": GatewayProblem(413, "Content Too Large", "PAYLOAD_TOO_LARGE"),
    "UNSUPPORTED_MEDIA_TYPE": GatewayProblem(415, "Unsupported Media Type", "UNSUPPORTED_MEDIA_TYPE"),
    "BAD_REQUEST_PARAMETERS": GatewayProblem(400, "Bad Request", "BAD_REQUEST"),
    "BAD_REQUEST_BODY": GatewayProblem(400, "Bad Request", "BAD_REQUEST"),
    "THROTTLED": GatewayProblem(429, "Too Many Requests", "THROTTLED"),
    "QUOTA_EXCEEDED": GatewayProblem(429, "Too Many Requests", "THROTTLED"),
    "INTEGRATION_TIMEOUT": GatewayProblem(504, "Gateway Timeout", "UPSTREAM_TIMEOUT"),
    "INTEGRATION_FAILURE": GatewayProblem(502, "Bad Gateway", "UPSTREAM_FAILED"),
    "API_CONFIGURATION_ERROR": GatewayProblem(500, "Internal Server Error", "INTERNAL_ERROR"),
    "AUTHORIZER_CONFIGURATION_ERROR": GatewayProblem(500, "Internal Server Error", "INTERNAL_ERROR"),
    "AUTHORIZER_FAILURE": GatewayProblem(500, "Internal Server Error", "INTERNAL_ERROR"),
    # Whatever has no type above; a function that crashes or answers malformed JSON is a 502.
    "DEFAULT_4XX": GatewayProblem(400, "Bad Request", "BAD_REQUEST"),
    "DEFAULT_5XX": GatewayProblem(502, "Bad Gateway", "UPSTREAM_FAILED"),
}

# One JSON line per request. Ids, route template, status, sizes and timings only: never a body,
# a query string ($context.resourcePath is the template, not the path with its values), a
# header, the caller's IP or identity (an assumed-role session name can be a person's address).
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
}


class BookingApi(Construct):
    """docs/reference/http-api.md#routes over API Gateway: the email routes and the reservation routes.

    Two functions, split by what they may touch: ``email_api`` sends to the email queue and
    reads and writes the deliveries table; ``reservations_api`` reads and writes the
    reservations table. Every method needs a SigV4-signed request (IAM authorization). The
    stage throttles, writes JSON access logs and ERROR-level execution logs (never request or
    response data), and publishes per-stage metrics.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        layers: Sequence[lambda_.ILayerVersion],
        email_queue: sqs.IQueue,
        deliveries_table: dynamodb.ITable,
        reservations_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.email_api = _email_api(self, settings, layers, email_queue, deliveries_table)
        self.reservations_api = _reservations_api(self, settings, layers, reservations_table)
        self.access_logs = service_log_group(self, "AccessLogs", settings)
        self.rest_api = self._rest_api(settings)
        self._route(self.email_api.function, EMAIL_ROUTES)
        self._route(self.reservations_api.function, RESERVATIONS_ROUTES)
        self._answer_refusals_as_problems()
        _acknowledge_iam_only_design(self.rest_api)
        self.watched_functions = [
            WatchedFunction(
                name="Email API",
                function=self.email_api,
                on_errors=Page(
                    AlarmKey.EMAIL_API_ERRORS,
                    "The email API function failed whole invocations: callers got 502 answers and "
                    "their emails were not queued; they may retry, dedupe keys make retries safe.",
                ),
                on_throttles=Page(
                    AlarmKey.EMAIL_API_THROTTLES,
                    "Lambda throttled the email API function: callers got 5xx answers and their "
                    "emails were not queued.",
                ),
            ),
            WatchedFunction(
                name="Reservations API",
                function=self.reservations_api,
                on_errors=Page(
                    AlarmKey.RESERVATIONS_API_ERRORS,
                    "The reservations API function failed whole invocations: callers got 502 "
                    "answers for holds, confirmations, venues or bookings.",
                ),
                on_throttles=Page(
                    AlarmKey.RESERVATIONS_API_THROTTLES,
                    "Lambda throttled the reservations API function: callers got 5xx answers for "
                    "holds, confirmations, venues or bookings.",
                ),
            ),
        ]

    def _rest_api(self, settings: StageSettings) -> apigateway.RestApi:
        return apigateway.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{settings.stack_name}-api",
            description=f"Booking durability service API ({settings.name}); SigV4 on every method",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            default_method_options=apigateway.MethodOptions(
                authorization_type=apigateway.AuthorizationType.IAM
            ),
            # Execution logs need the account's API Gateway logging role; kept when a stack
            # goes, since every REST API of the account and region logs through it.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name=settings.name,
                throttling_rate_limit=settings.api.throttling_rate_limit,
                throttling_burst_limit=settings.api.throttling_burst_limit,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=apigateway.AccessLogFormat.custom(
                    json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
                ),
                # Errors only, and never request or response data in the execution logs.
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=settings.observability.tracing,
            ),
        )

    def _route(self, function: lambda_.IFunction, routes: Sequence[tuple[str, str]]) -> None:
        # The Lambda permission each method adds is scoped to that method and path; the console's
        # test-invoke gets none.
        integration = apigateway.LambdaIntegration(function, allow_test_invoke=False)
        for method, path in routes:
            # IAM authorization: the REST API's default method options.
            self.rest_api.root.resource_for_path(path).add_method(method, integration)

    def _answer_refusals_as_problems(self) -> None:
        for response_type, problem in GATEWAY_PROBLEMS.items():
            self.rest_api.add_gateway_response(
                f"{response_type.title().replace('_', '')}Problem",
                type=apigateway.ResponseType.of(response_type),
                status_code=str(problem.status),
                response_headers={"Content-Type": f"'{PROBLEM_CONTENT_TYPE}'"},
                templates={"application/json": problem.body()},
            )


def _email_api(
    scope: Construct,
    settings: StageSettings,
    layers: Sequence[lambda_.ILayerVersion],
    email_queue: sqs.IQueue,
    deliveries_table: dynamodb.ITable,
) -> ServiceFunction:
    email_api = ServiceFunction(
        scope,
        "EmailApi",
        settings=settings,
        service=EMAIL_API_SERVICE,
        description="Publishes, reads and cancels booking emails",
        code_dir=LAMBDAS_DIR / "email_api",
        layers=layers,
        environment={
            "EMAIL_QUEUE_URL": email_queue.queue_url,
            "MAX_DELAY_HOP_SECONDS": str(settings.delivery.max_delay_hop_seconds),
            "DELIVERIES_TABLE": deliveries_table.table_name,
        },
        timeout_seconds=settings.email_api.timeout_seconds,
        memory_mb=settings.email_api.memory_mb,
        reserved_concurrency=settings.email_api.reserved_concurrency,
    )
    email_api.allow(SEND_MESSAGE, email_queue.queue_arn)
    email_api.allow(EMAIL_API_RECORDS_ACTIONS, deliveries_table.table_arn)
    return email_api


def _reservations_api(
    scope: Construct,
    settings: StageSettings,
    layers: Sequence[lambda_.ILayerVersion],
    reservations_table: dynamodb.ITable,
) -> ServiceFunction:
    reservations_api = ServiceFunction(
        scope,
        "ReservationsApi",
        settings=settings,
        service=RESERVATIONS_API_SERVICE,
        description="Venues, holds, confirmations and bookings",
        code_dir=LAMBDAS_DIR / "reservations_api",
        layers=layers,
        environment={"RESERVATIONS_TABLE": reservations_table.table_name},
        timeout_seconds=settings.reservations_api.timeout_seconds,
        memory_mb=settings.reservations_api.memory_mb,
        reserved_concurrency=settings.reservations_api.reserved_concurrency,
    )
    reservations_api.allow(RESERVATIONS_API_TABLE_ACTIONS, reservations_table.table_arn)
    # A confirm that ends a drift flow unrecovered frees the booking id the flow claimed.
    reservations_api.allow(
        FREE_CLAIMED_BOOKING_ID, reservations_table.table_arn, conditions=BOOKING_ITEMS_ONLY
    )
    return reservations_api


def _acknowledge_iam_only_design(rest_api: apigateway.RestApi) -> None:
    findings = {
        "AwsSolutions-APIG2": (
            "Requests are validated once, by the functions (pydantic), which answer the "
            "API's 422 VALIDATION_FAILED problem with per-field errors; an API Gateway "
            "request validator would answer its own 400 shape first and split validation in two."
        ),
        "AwsSolutions-APIG3": (
            "Every method requires a SigV4-signed request from an IAM principal of ours, so API "
            "Gateway refuses anything else before a function runs, and the stage throttles signed "
            "traffic; a WAF web ACL would add cost with no rule that protects this "
            "machine-to-machine API further."
        ),
        "AwsSolutions-COG4": (
            "Callers are services (the booking app, operators' tools) that sign with IAM "
            "credentials: every method uses IAM (SigV4) authorization, so there are no end users "
            "and no Cognito user pool to authorize them against."
        ),
    }
    for rule, reason in findings.items():
        Validations.of(rest_api).acknowledge(Acknowledgment(id=rule, reason=reason))
    Validations.of(rest_api.node.find_child("CloudWatchRole")).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            reason=(
                "API Gateway's account-level logging role, as AWS documents it: the "
                "AmazonAPIGatewayPushToCloudWatchLogs managed policy is the one the service "
                "expects, and AWS keeps it current with what execution logging needs."
            ),
        )
    )
