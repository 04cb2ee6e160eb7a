"""Least privilege, derived from the code: each function's real handler is driven down its paths
against moto, with the environment its synthesized template gives it, while a botocore event
hook records every AWS call it makes (``aws_calls.py``). The IAM actions those calls need, on the
resources they name, must be exactly what the template grants the function's role, besides
what Lambda itself uses the role for (its log group, X-Ray, the event source mapping's polling).

Nothing granted that the code never calls; nothing called that is not granted. A new call in
an adapter fails here until the stack grants it; a grant nothing calls fails here until removed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base

from booking_durability import wiring
from devstack.http_provider import HttpProviderDouble
from devstack.local_resources import LocalResources, create_resources
from tests.builders import GUEST_EMAIL, LambdaContext, api_event, job, sqs_event, sqs_record, venue_config
from tests.integration.aws_calls import Call, CallRecorder
from tests.integration.conftest import REGION, import_handler
from tests.unit.notifications.builders import SECRET, as_body, drift_event, unrecovered_event

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "re_least_privilege_key"
#: What Lambda does with a function's role, whatever the code: write its logs, send its traces.
LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
XRAY = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
#: What the SQS event source mapping's poller does with the role (AWS's documented minimum).
POLLING = ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage")
#: prod's context in these synths: its sender, and for the webhook variant nothing else.
PROD_SENDER = {"email_sender": "Bookings <bookings@mail.bookings-platform.com>"}

Grant = tuple[str, str]  # (IAM action, the resource as canonical JSON of its template expression)


# --- the synthesized templates ---------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_templates() -> dict[str, dict[str, Any]]:
    """dev and prod with ``-c webhook=on``: the notifier reads its webhook's secret."""
    import os
    import tempfile

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from app import build_app

    outdir = Path(tempfile.mkdtemp(prefix="cdk-webhook-"))
    assembly = build_app(
        ["dev", "prod"], outdir=outdir, context={"webhook": "on"}, stage_context={"prod": PROD_SENDER}
    ).synth()
    return {
        name: assembly.get_stack_by_name(f"BookingDurability-{name}").template for name in ("dev", "prod")
    }


def _functions(template: Mapping[str, Any]) -> dict[str, str]:
    """``{Powertools service name: logical id}`` of every function of a template."""
    return {
        resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def _canonical(expression: Any) -> str:
    return json.dumps(expression, sort_keys=True)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(template: Mapping[str, Any], service: str) -> set[Grant]:
    """What the function's role is allowed, from every policy attached to it."""
    resources = template["Resources"]
    function = resources[_functions(template)[service]]["Properties"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    role = resources[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role, "a managed policy grants what this test cannot see"
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]:
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    grants = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            for target in _as_list(statement["Resource"]):
                for where in _held_to(statement):
                    grants.add((action, _canonical(target) + where))
    return grants


def _held_to(statement: Mapping[str, Any]) -> list[str]:
    """The kinds of item a statement is held to (as :class:`Call` ``where`` names them), or
    ``[""]`` for none: the one condition a statement of a function's role may carry."""
    if "Condition" not in statement:
        return [""]
    assert list(statement["Condition"]) == ["ForAllValues:StringLike"], statement
    [(key, patterns)] = statement["Condition"]["ForAllValues:StringLike"].items()
    assert key == "dynamodb:LeadingKeys", statement
    return [f" where LeadingKeys {pattern}" for pattern in _as_list(patterns)]


def lambdas_own(template: Mapping[str, Any], service: str) -> set[Grant]:
    """What Lambda uses the function's role for, whatever its code does."""
    resources = template["Resources"]
    function_id = _functions(template)[service]
    function = resources[function_id]["Properties"]
    log_group = _canonical({"Fn::GetAtt": [function["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]})
    own = {(action, log_group) for action in LOGS}
    if function.get("TracingConfig", {}).get("Mode") == "Active":
        own |= {(action, _canonical("*")) for action in XRAY}
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and properties["FunctionName"] == {
            "Ref": function_id
        }:
            own |= {(action, _canonical(properties["EventSourceArn"])) for action in POLLING}
    return own


# --- the functions, run against moto -------------------------------------------------------


@dataclass
class Deployed:
    """The stage's queues and tables in moto (named by logical id, as the template's are), and
    its secrets, with the values operators put."""

    resources: LocalResources
    secrets: dict[str, str]  # logical id -> ARN
    sqs: Any
    dynamodb: Any

    def resolve(self, value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.secrets:
            return self.secrets[value["Ref"]]
        return self.resources.resolve(value)

    def template_resource(self, call: Call) -> str:
        """The template expression of the resource a recorded call named."""
        if call.resource.startswith("table/"):
            name, _, index = call.resource.removeprefix("table/").partition("/index/")
            arn = {"Fn::GetAtt": [self._table(name), "Arn"]}
            return _canonical({"Fn::Join": ["", [arn, f"/index/{index}"]]} if index else arn)
        if call.action.startswith("sqs:"):
            [logical_id] = [lid for lid, queue in self.resources.queues.items() if queue.url == call.resource]
            return _canonical({"Fn::GetAtt": [logical_id, "Arn"]})
        if call.action.startswith("secretsmanager:"):
            [logical_id] = [lid for lid, arn in self.secrets.items() if arn == call.resource]
            return _canonical({"Ref": logical_id})
        raise AssertionError(f"a call this test cannot place in the template: {call}")

    def _table(self, name: str) -> str:
        [logical_id] = [lid for lid, table in self.resources.tables.items() if table.name == name]
        return logical_id


def needed(deployed: Deployed, calls: set[Call]) -> set[Grant]:
    return {
        (call.action, deployed.template_resource(call) + (f" where {call.where}" if call.where else ""))
        for call in calls
    }


def assert_least_privilege(
    template: Mapping[str, Any], service: str, deployed: Deployed, calls: set[Call]
) -> None:
    wanted = needed(deployed, calls) | lambdas_own(template, service)
    have = granted(template, service)
    problems = [f"granted, never called: {grant}" for grant in sorted(have - wanted)]
    problems += [f"called, not granted: {grant}" for grant in sorted(wanted - have)]
    assert problems == [], service


@pytest.fixture
def recorder(aws: None) -> Iterator[CallRecorder]:
    # Powertools keeps its secrets provider (and its client) between tests: made afresh here.
    parameters_base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()
    with CallRecorder().installed() as installed:
        yield installed
    parameters_base.DEFAULT_PROVIDERS.clear()


def deploy(template: Mapping[str, Any], webhook: Mapping[str, str] | None = None) -> Deployed:
    """The template's queues and tables in moto, and each secret a function's environment names,
    with the value operators put: the provider's API key, and ``webhook``'s URL and key."""
    secret_values = {"PROVIDER_SECRET_ARN": {"api_key": API_KEY}, "WEBHOOK_SECRET_ARN": webhook}
    sqs = boto3.client("sqs", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    resources = create_resources(template, sqs=sqs, dynamodb=dynamodb, region=REGION, stack_name="under-test")
    secrets: dict[str, str] = {}
    client = boto3.client("secretsmanager", region_name=REGION)
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        for variable, value in resource["Properties"]["Environment"]["Variables"].items():
            if isinstance(value, dict) and template["Resources"].get(value.get("Ref", ""), {}).get(
                "Type"
            ) == ("AWS::SecretsManager::Secret"):
                assert secret_values[variable] is not None, f"no value for the secret of {variable}"
                secrets[value["Ref"]] = client.create_secret(
                    Name=f"{value['Ref']}-{uuid.uuid4().hex[:6]}",
                    SecretString=json.dumps(secret_values[variable]),
                )["ARN"]
    return Deployed(resources=resources, secrets=secrets, sqs=sqs, dynamodb=dynamodb)


def load(
    template: Mapping[str, Any],
    service: str,
    deployed: Deployed,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: str,
) -> Any:
    """The function's handler, imported as a cold start does, in the environment its template
    gives it (resources resolved to moto's). ``overrides`` are what no template carries: where
    the provider double listens. Tracing is off: there is no X-Ray daemon here."""
    function = template["Resources"][_functions(template)[service]]["Properties"]
    for other in (r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"):
        for variable in other["Properties"]["Environment"]["Variables"]:
            monkeypatch.delenv(variable, raising=False)
    environment = {
        name: deployed.resolve(value) for name, value in function["Environment"]["Variables"].items()
    }
    for name, value in {**environment, "ENABLE_TRACING": "false", **overrides}.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    parameters.clear_caches()
    return import_handler(service.replace("-", "_"))


def _queue(deployed: Deployed, variable: str, template: Mapping[str, Any], service: str) -> str:
    function = template["Resources"][_functions(template)[service]]["Properties"]
    return deployed.resolve(function["Environment"]["Variables"][variable])


# --- the paths each function takes -----------------------------------------------------------


def _now_job(**overrides: Any) -> dict[str, Any]:
    return job(deliver_at=datetime.now(UTC), **overrides)


def _address(tag: str) -> str:
    local, domain = GUEST_EMAIL.split("@")
    return f"{local}{tag}@{domain}"


def drive_the_consumer(handler: Any, deployed: Deployed, table: str, recorder: CallRecorder) -> None:
    """Sent, duplicate, delayed, retried, throttled and deferred, refused, poison, exhausted,
    cancelled, and taken over from a dead worker."""
    for booking_id, status, extra in (
        ("bk_cancelled", "cancelled", {}),
        ("bk_taken_over", "sending", {"lease_token": {"S": "dead"}, "lease_until": {"N": "1"}}),
        ("bk_deferred_out", "queued", {"throttle_deferrals": {"N": "10"}}),
    ):
        deployed.dynamodb.put_item(
            TableName=table,
            Item={
                "booking_id": {"S": booking_id},
                "email_key": {"S": "booking_confirmed#0"},
                "dedupe_key": {"S": f"{booking_id}#booking_confirmed#0"},
                "status": {"S": status},
                **extra,
            },
        )
    sent = _now_job(booking_id="bk_sent")
    records = [
        sqs_record(sent),
        sqs_record(job(booking_id="bk_later", deliver_at=datetime.now(UTC) + timedelta(days=2))),
        sqs_record(_now_job(booking_id="bk_retried", email=_address("+transient1"))),
        sqs_record(_now_job(booking_id="bk_throttled", email=_address("+throttle1"))),
        sqs_record(_now_job(booking_id="bk_refused", email=_address("+permanent"))),
        sqs_record(_now_job(booking_id="bk_exhausted", email=_address("+transient9")), receive_count=5),
        sqs_record(_now_job(booking_id="bk_deferred_out", email=_address("+throttle1"))),
        sqs_record(_now_job(booking_id="bk_cancelled")),
        sqs_record(_now_job(booking_id="bk_taken_over")),
        sqs_record("{not json"),
    ]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    expired = sqs_record(_now_job(booking_id="bk_expired", not_after=past))
    # Suppressed by the confirmation already sent, and not (nothing of that type went out)
    superseded = sqs_record(
        _now_job(booking_id="bk_sent", email_type="booking_cancelled", suppress_if_sent=["booking_confirmed"])
    )
    not_superseded = sqs_record(
        _now_job(
            booking_id="bk_later", email_type="booking_cancelled", suppress_if_sent=["booking_confirmed"]
        )
    )
    with recorder.recording():
        handler(sqs_event(*records, expired), LambdaContext())
        handler(sqs_event(sqs_record(sent), superseded, not_superseded), LambdaContext())


@pytest.fixture
def provider_double() -> Iterator[HttpProviderDouble]:
    with HttpProviderDouble(api_key=API_KEY) as running:
        yield running


def test_the_email_consumer_is_granted_exactly_what_its_code_calls(
    recorder: CallRecorder,
    provider_double: HttpProviderDouble,
    templates: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the consumer of dev (prod's role is made the same way, and is compared below)
    template = templates["dev"]
    deployed = deploy(template)
    handler = load(template, "email-consumer", deployed, monkeypatch, RESEND_BASE_URL=provider_double.url)
    # When it handles a batch down every path
    drive_the_consumer(
        handler, deployed, _queue(deployed, "DELIVERIES_TABLE", template, "email-consumer"), recorder
    )
    calls = recorder.take()
    assert provider_double.deliveries, "nothing was sent: the paths were not taken"
    # Then its role in every deployed stage allows exactly those calls
    for stage in ("dev", "prod"):
        assert_least_privilege(templates[stage], "email-consumer", deployed, calls)


def _call(handler: Any, method: str, path: str, body: Any = None, **options: Any) -> tuple[int, Any]:
    response = handler(api_event(method, path, body, **options), LambdaContext(function_name="api"))
    text = response.get("body") or ""
    return response["statusCode"], json.loads(text) if text else None


def test_the_email_api_is_granted_exactly_what_its_code_calls(
    recorder: CallRecorder, templates: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    template = templates["dev"]
    deployed = deploy(template)
    handler = load(template, "email-api", deployed, monkeypatch)
    table = _queue(deployed, "DELIVERIES_TABLE", template, "email-api")
    deployed.dynamodb.put_item(
        TableName=table,
        Item={
            "booking_id": {"S": "bk_failed"},
            "email_key": {"S": "booking_confirmed#0"},
            "dedupe_key": {"S": "bk_failed#booking_confirmed#0"},
            "status": {"S": "failed"},
        },
    )
    from tests.builders import email_request

    # When every email route is called down its paths
    with recorder.recording():
        statuses = [
            _call(handler, "POST", "/v1/emails", email_request(booking_id="bk_1"))[0],
            _call(handler, "POST", "/v1/emails", email_request(booking_id="bk_1"))[0],  # a repeat
            _call(handler, "POST", "/v1/emails", email_request(booking_id="bk_failed"))[0],  # queued again
            _call(
                handler,
                "POST",
                "/v1/emails",
                email_request(booking_id="bk_1", email_type="booking_cancelled"),
            )[0],
            _call(handler, "GET", "/v1/emails/bk_1/booking_confirmed", query={"revision": "0"})[0],
            _call(handler, "GET", "/v1/emails/bk_none/booking_confirmed")[0],
            _call(handler, "DELETE", "/v1/emails/bk_1/booking_cancelled", query={"revision": "0"})[0],
            _call(handler, "DELETE", "/v1/emails/bk_unknown/booking_confirmed")[0],  # a tombstone
            _call(handler, "DELETE", "/v1/emails/bk_1")[0],
        ]
    assert statuses == [202, 202, 202, 202, 200, 404, 200, 200, 200]
    calls = recorder.take()
    for stage in ("dev", "prod"):
        assert_least_privilege(templates[stage], "email-api", deployed, calls)


def test_the_reservations_api_is_granted_exactly_what_its_code_calls(
    recorder: CallRecorder, templates: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_api_reservations import hold_request, start

    template = templates["dev"]
    deployed = deploy(template)
    handler = load(template, "reservations-api", deployed, monkeypatch)

    def confirm(hold_id: str, booking_id: str, key: str | None = None) -> int:
        headers = {"Idempotency-Key": key} if key else None
        return _call(
            handler, "POST", f"/v1/holds/{hold_id}/confirm", {"booking_id": booking_id}, headers=headers
        )[0]

    def hold(**more: Any) -> str:
        status, body = _call(handler, "POST", "/v1/holds", hold_request(**more))
        assert status == 201, body
        return str(body["hold_id"])

    # When every reservation route is called down its paths: venues made, changed and read;
    # holds made, read, released and confirmed; bookings read and cancelled; drift recovered and
    # not recovered; the refusals on the way
    with recorder.recording():
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config())[0] == 200
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config())[0] == 200  # unchanged
        assert _call(handler, "GET", "/v1/venues/casa")[0] == 200
        assert _call(handler, "GET", "/v1/venues/casa/versions/1")[0] == 200
        assert _call(handler, "GET", "/v1/venues/nowhere")[0] == 404
        released = hold()
        assert _call(handler, "GET", f"/v1/holds/{released}")[0] == 200
        assert _call(handler, "DELETE", f"/v1/holds/{released}")[0] == 200
        assert confirm(released, "bk_released") == 409
        booked = hold()
        assert confirm(booked, "bk_1", key="key-1") == 200
        assert confirm(booked, "bk_1", key="key-1") == 200  # a repeat
        assert _call(handler, "GET", "/v1/bookings/bk_1")[0] == 200
        assert _call(handler, "DELETE", "/v1/bookings/bk_1")[0] == 200
        assert _call(handler, "DELETE", "/v1/bookings/bk_1")[0] == 200  # a repeat
        drifted = hold(party_size=2)
        refused = hold(party_size=4)
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))[0] == 200
        assert confirm(drifted, "bk_2") == 200  # recovered on a replacement
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config(max_party_size=2))[0] == 200
        assert confirm(refused, "bk_3") == 409  # not recovered
        assert _call(handler, "POST", "/v1/holds", hold_request(party_size=9))[0] == 409
        stale = {"If-Match": '"0000"'}
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config(), headers=stale)[0] == 412
        # A hold of one second, confirmed once it has expired
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config(hold_ttl_seconds=1))[0] == 200
        status, expiring = _call(handler, "POST", "/v1/holds", hold_request())
        assert status == 201
        while datetime.now(UTC) <= datetime.fromisoformat(expiring["expires_at"]):
            time.sleep(0.05)
        assert confirm(expiring["hold_id"], "bk_4") == 409
        assert _call(handler, "GET", f"/v1/holds/{expiring['hold_id']}")[1]["status"] == "expired"
        assert _call(handler, "GET", "/v1/health")[0] == 200
        assert _call(handler, "GET", "/v1/openapi.json")[0] == 200
        # A drift flow interrupted after the hold was replaced (the replacement's confirmation
        # throttled), then finished by its repeat
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config())[0] == 200
        interrupted = hold()
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))[0] == 200
        with _replacement_confirm_throttled(monkeypatch):
            assert confirm(interrupted, "bk_5", key="key-5") == 503
        assert confirm(interrupted, "bk_5", key="key-5") == 200
        # One interrupted the same way, repeated once its replacement expired: the repeat ends
        # the flow unrecovered, freeing the booking id the flow claimed
        # (holds of three seconds: time enough for the first confirm on a loaded machine)
        assert _call(handler, "PUT", "/v1/venues/casa", venue_config(hold_ttl_seconds=3))[0] == 200
        abandoned = hold(starts_at=start(days=4))
        changed = venue_config(hold_ttl_seconds=3, buffer_minutes=15)
        assert _call(handler, "PUT", "/v1/venues/casa", changed)[0] == 200
        with _replacement_confirm_throttled(monkeypatch):
            assert confirm(abandoned, "bk_6") == 503
        time.sleep(3.1)
        assert confirm(abandoned, "bk_6") == 409
    calls = recorder.take()
    for stage in ("dev", "prod"):
        assert_least_privilege(templates[stage], "reservations-api", deployed, calls)


@contextmanager
def _replacement_confirm_throttled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The next confirmation of a replacement hold fails as a throttled table does, before its
    write: the drift flow is left open, its replacement held."""
    from booking_durability.adapters.reservations_table import ReservationsTable
    from booking_durability.errors import StoreUnavailable

    confirm_ = ReservationsTable.confirm

    def throttled(self: ReservationsTable, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("original") is not None:
            raise StoreUnavailable("transact_write_items failed: ProvisionedThroughputExceededException")
        confirm_(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(ReservationsTable, "confirm", throttled)
        yield


def test_the_drift_sweep_is_granted_exactly_what_its_code_calls(
    recorder: CallRecorder, templates: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_api_reservations import hold_request

    # Given a drift flow interrupted after its hold was replaced, at a venue whose holds last three
    # seconds (time enough for the confirm on a loaded machine), and never repeated: its
    # replacement has expired
    template = templates["dev"]
    deployed = deploy(template)
    api = load(template, "reservations-api", deployed, monkeypatch)
    assert _call(api, "PUT", "/v1/venues/casa", venue_config(hold_ttl_seconds=3))[0] == 200
    status, held = _call(api, "POST", "/v1/holds", hold_request())
    assert status == 201, held
    changed = venue_config(hold_ttl_seconds=3, buffer_minutes=30)
    assert _call(api, "PUT", "/v1/venues/casa", changed)[0] == 200
    with _replacement_confirm_throttled(monkeypatch):
        path = f"/v1/holds/{held['hold_id']}/confirm"
        assert _call(api, "POST", path, {"booking_id": "bk_1"})[0] == 503
    time.sleep(3.1)
    sweep = load(template, "drift-sweep", deployed, monkeypatch)
    # When the scheduled sweep runs, twice (the second finds nothing left to end)
    with recorder.recording():
        scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        first = sweep(scheduled, LambdaContext())
        sweep(scheduled, LambdaContext())
    # Then it ended the flow, calling only what its role allows
    assert first["finished"] == 1, first
    calls = recorder.take()
    for stage in ("dev", "prod"):
        assert_least_privilege(templates[stage], "drift-sweep", deployed, calls)


def _sqs_event(body: str, receive_count: int = 1) -> dict[str, Any]:
    return sqs_event(sqs_record(body, receive_count=receive_count))


def test_the_notifier_emailing_the_admins_is_granted_exactly_what_its_code_calls(
    recorder: CallRecorder, templates: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given dev and prod without a webhook: drift goes to the admins by email
    template = templates["dev"]
    deployed = deploy(template)
    handler = load(template, "notifier", deployed, monkeypatch)
    with recorder.recording():
        assert handler(_sqs_event(as_body(unrecovered_event())), LambdaContext()) == {"batchItemFailures": []}
        assert handler(_sqs_event('{"type": "not a drift event"}'), LambdaContext()) == {
            "batchItemFailures": []
        }
    calls = recorder.take()
    for stage in ("dev", "prod"):
        assert_least_privilege(templates[stage], "notifier", deployed, calls)


@dataclass
class _Receiver:
    statuses: list[int]
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    state = _Receiver(statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(state.statuses.pop(0) if state.statuses else 204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/drift"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def test_the_notifier_posting_to_a_webhook_is_granted_exactly_what_its_code_calls(
    recorder: CallRecorder,
    receiver: _Receiver,
    webhook_templates: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given dev and prod with -c webhook=on, the URL and key put in the webhook's secret
    template = webhook_templates["dev"]
    deployed = deploy(template, webhook={"url": receiver.url, "secret": SECRET})
    handler = load(template, "notifier", deployed, monkeypatch)
    receiver.statuses = [204, 400, 503]
    with recorder.recording():
        for body, receive_count in (
            (as_body(drift_event()), 1),  # delivered
            (as_body(drift_event()), 1),  # refused: dead-lettered
            (as_body(drift_event()), 5),  # unreachable at its last receive: dead-lettered
            ("{not json", 1),
        ):
            assert handler(_sqs_event(body, receive_count), LambdaContext()) == {"batchItemFailures": []}
    calls = recorder.take()
    assert receiver.statuses == []
    for stage in ("dev", "prod"):
        assert_least_privilege(webhook_templates[stage], "notifier", deployed, calls)


def test_every_function_of_the_template_is_driven_here(templates: dict[str, dict[str, Any]]) -> None:
    # A function added to the stack must get its paths above, or its grants go unchecked
    driven = {"email-consumer", "email-api", "reservations-api", "notifier", "drift-sweep"}
    for stage in ("dev", "prod", "local"):
        assert set(_functions(templates[stage])) == driven


def test_the_recorder_sees_transactions_as_the_actions_dynamodb_authorizes_them_by() -> None:
    from tests.integration.aws_calls import iam_calls

    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "T"}},
            {"Update": {"TableName": "T"}},
            {"Delete": {"TableName": "U", "Key": {"pk": {"S": "BOOKING#bk_1"}, "sk": {"S": "BOOKING"}}}},
            {"ConditionCheck": {"TableName": "T"}},
        ]
    }
    assert iam_calls("dynamodb", "TransactWriteItems", transaction) == {
        Call("dynamodb:PutItem", "table/T"),
        Call("dynamodb:UpdateItem", "table/T"),
        Call("dynamodb:DeleteItem", "table/U", "LeadingKeys BOOKING#*"),
        Call("dynamodb:ConditionCheckItem", "table/T"),
    }
    # A deletion outside a transaction names the kind of item it reaches the same way
    assert iam_calls(
        "dynamodb", "DeleteItem", {"TableName": "T", "Key": {"pk": "HOLD#h_1", "sk": "HOLD"}}
    ) == {Call("dynamodb:DeleteItem", "table/T", "LeadingKeys HOLD#*")}
    assert iam_calls("dynamodb", "Query", {"TableName": "T", "IndexName": "by_venue"}) == {
        Call("dynamodb:Query", "table/T/index/by_venue")
    }
    assert iam_calls("sqs", "SendMessageBatch", {"QueueUrl": "q"}) == {Call("sqs:SendMessage", "q")}
