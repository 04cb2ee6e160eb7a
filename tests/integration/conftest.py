"""Integration fixtures: the consumer's AWS resources in moto (in-process), and a clock.

Queues and table are made from the synthesized CDK template's own properties (the same code
the local stack uses), so the tests cannot drift from what we deploy.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from booking_durability import wiring
from booking_durability.adapters import aws as aws_adapter
from booking_durability.adapters.deliveries_table import EmailRecordsTable
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.emails.consumer import Consumer
from booking_durability.emails.delivery import EmailDelivery
from booking_durability.emails.providers.base import (
    EmailProvider,
    OutgoingEmail,
)
from booking_durability.settings.email_consumer import ConsumerSettings
from booking_durability.stack_outputs import StackOutput
from booking_durability.wiring.email_consumer import build_delivery
from devstack.atomic_moto import make_dynamodb_atomic
from tests.builders import T0
from tests.integration.documented_answers import documented_answers

REGION = "eu-west-1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Resources:
    queue_url: str
    dlq_url: str
    table: str
    reservations_table: str
    sqs: Any
    dynamodb: Any

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every message now visible on ``url`` (removed), with attributes."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)

    def items(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=self.table)["Items"])

    def status(self, booking_id: str, email_key: str) -> str | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"booking_id": {"S": booking_id}, "email_key": {"S": email_key}}
        ).get("Item")
        return item["status"]["S"] if item else None


class RequestChecker:
    """Checks every request of the adapters' clients against the API's model, as botocore would
    with its own check on: the functions' clients skip it (``adapters/aws.py``), so the tests
    hold every request to it."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.invalid: list[str] = []

    def __call__(self, service: str) -> Any:
        client = self.make(service)
        client.meta.events.register("before-parameter-build", self._check)
        return client

    def _check(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        report = ParamValidator().validate(params, model.input_shape)
        if report.has_errors():
            self.invalid.append(f"{model.name}: {report.generate_report()}")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    checker = RequestChecker(aws_adapter.client)
    monkeypatch.setattr(aws_adapter, "client", checker)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    make_dynamodb_atomic()  # as DynamoDB is: concurrency tests prove what holds in AWS
    wiring.reset()
    with mock_aws():
        yield
    wiring.reset()
    assert checker.invalid == [], "requests the API's model refuses"


@pytest.fixture
def resources(aws: None, local_template: dict[str, Any]) -> Resources:
    return resources_from(local_template)


def resources_from(local_template: dict[str, Any]) -> Resources:
    """The template's queues and tables, made in the moto that is running."""
    from devstack.local_resources import create_resources

    sqs = boto3.client("sqs", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    created = create_resources(
        local_template, sqs=sqs, dynamodb=dynamodb, region=REGION, stack_name="BookingDurability-local"
    )

    def output(name: str) -> str:
        return created.resolve(local_template["Outputs"][name]["Value"])

    return Resources(
        queue_url=output(StackOutput.EMAIL_QUEUE_URL),
        dlq_url=output(StackOutput.EMAIL_DLQ_URL),
        table=output(StackOutput.DELIVERIES_TABLE_NAME),
        reservations_table=output(StackOutput.RESERVATIONS_TABLE_NAME),
        sqs=sqs,
        dynamodb=dynamodb,
    )


def template_queue_url(resources: Resources, template: dict[str, Any], output: str) -> str:
    """The URL of the queue the template's ``output`` names, as ``resources`` made it."""
    logical_id = template["Outputs"][output]["Value"]["Ref"]
    return str(resources.sqs.get_queue_url(QueueName=logical_id)["QueueUrl"])


def attributes(message: dict[str, Any]) -> dict[str, str]:
    """An SQS message's attributes as name -> string value."""
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


def emf_blobs(output: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric blobs among what a function printed."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]


def import_handler(function: str) -> Any:
    """``lambdas/<function>/handler.py`` freshly imported, as a cold start imports it: its entry
    point too (``booking_durability.entrypoints.<function>``), which holds the handler."""
    sys.modules.pop(f"booking_durability.entrypoints.{function}", None)
    name = f"{function}_handler"
    spec = importlib.util.spec_from_file_location(name, ROOT / "lambdas" / function / "handler.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.handler


@dataclass
class ScriptedProvider:
    """A provider double in memory: answers each send from a script (an exception or None)."""

    script: list[BaseException | None] = field(default_factory=list)
    sent: list[OutgoingEmail] = field(default_factory=list)
    calls: int = 0
    name: str = "scripted"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, email: OutgoingEmail) -> str:
        with self.lock:
            self.calls += 1
            outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        with self.lock:
            self.sent.append(email)
        return f"id-{len(self.sent)}"


def consumer_settings(resources: Resources, **overrides: Any) -> ConsumerSettings:
    values: dict[str, Any] = {
        "stage": "test",
        "deliveries_table": resources.table,
        "email_queue_url": resources.queue_url,
        "email_dlq_url": resources.dlq_url,
        "max_delay_hop_seconds": 900,
        "send_concurrency": 10,
        "backoff_base_seconds": 60,
        "throttle_backoff_seconds": 30,
        "max_throttle_deferrals": 3,
        "lease_seconds": 120,
        "email_provider": "smtp",
    }
    values.update({name.lower(): value for name, value in overrides.items()})
    return ConsumerSettings(**values)


def ledger(resources: Resources) -> EmailRecordsTable:
    """The deliveries ledger on the test table, through the service's own adapter."""
    return EmailRecordsTable(DynamoTable(resources.table, resources.dynamodb))


def consumer_of(delivery: EmailDelivery, send_concurrency: int = 10) -> Consumer:
    """A consumer around ``delivery`` with its own send pool, as the function's wiring makes one."""
    return Consumer(delivery, ThreadPoolExecutor(max_workers=send_concurrency))


def make_delivery(
    resources: Resources,
    provider: EmailProvider,
    clock: Clock,
    *,
    sleeps: list[float] | None = None,
    **settings: Any,
) -> EmailDelivery:
    delivery = build_delivery(consumer_settings(resources, **settings))
    # The ledger on the test's client, so a test can count its calls.
    delivery.ledger = delivery.sending.ledger = ledger(resources)
    delivery.sending.provider = lambda: provider
    delivery.clock = delivery.sending.clock = delivery.dispatch.clock = clock
    delivery.sending.sleep = sleeps.append if sleeps is not None else lambda _s: None
    return delivery


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    text: str = ""  # the body as it was sent


class Api:
    """The API's two real functions behind one ``call``, routed as API Gateway routes them."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self.handlers = handlers

    def call(self, method: str, path: str, body: Any = None, **options: Any) -> Answer:
        from tests.builders import LambdaContext, api_event

        function = "email_api" if path.startswith("/v1/emails") else "reservations_api"
        context = LambdaContext(
            function_name=function, invoked_function_arn=f"arn:aws:lambda:{REGION}:1:function:x"
        )
        response = self.handlers[function](api_event(method, path, body, **options), context)
        headers = {name.lower(): values[-1] for name, values in response.get("multiValueHeaders", {}).items()}
        headers.update({name.lower(): value for name, value in (response.get("headers") or {}).items()})
        text = response.get("body") or ""
        answer = Answer(response["statusCode"], headers, json.loads(text) if text else None, text)
        # Every answer a test sees is one the OpenAPI document declares, body and all.
        broken = documented_answers().check(
            method, path, answer.status, headers.get("content-type", ""), answer.body
        )
        assert broken == [], broken
        return answer


@pytest.fixture
def api(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Api:
    for name, value in {
        "EMAIL_QUEUE_URL": resources.queue_url,
        "MAX_DELAY_HOP_SECONDS": "900",
        "DELIVERIES_TABLE": resources.table,
        "RESERVATIONS_TABLE": resources.reservations_table,
        "POWERTOOLS_SERVICE_NAME": "api-test",
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    return Api({function: import_handler(function) for function in ("email_api", "reservations_api")})


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything the Powertools logger writes, at DEBUG (its handler holds the real stdout)."""
    from booking_durability.observability import logger

    buffer = io.StringIO()
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [(h, h.setStream(buffer)) for h in handlers]
    level = logger.log_level
    logger.setLevel("DEBUG")
    yield buffer
    logger.setLevel(level)
    for handler_, stream in previous:
        handler_.setStream(stream)


@dataclass(frozen=True)
class MotoServer:
    """moto server in its own process (made atomic, as the local stack runs it), with the
    template's queues and tables, for driving the scripts as commands."""

    endpoint: str
    env: dict[str, str]  # the environment a script runs with (no real AWS settings)
    session: Any
    queues: dict[str, str]  # friendly name -> URL, as stack.json names them
    tables: dict[str, str]  # friendly name -> table name

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    def write_stack_json(self, local_dir: Path, **fields: Any) -> dict[str, str]:
        """A stack.json in ``local_dir`` naming this server; the env a script finds it through."""
        stack = {"aws_endpoint_url": self.endpoint, "region": REGION, **fields}
        (local_dir / "stack.json").write_text(json.dumps(stack))
        return {**self.env, "LOCAL_DIR": str(local_dir)}


@pytest.fixture
def moto_server(local_template: dict[str, Any]) -> Iterator[MotoServer]:
    from devstack.local_resources import create_resources, friendly_names

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "devstack.atomic_moto", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(port)
        endpoint = f"http://127.0.0.1:{port}"
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        created = create_resources(
            local_template,
            sqs=session.client("sqs", endpoint_url=endpoint),
            dynamodb=session.client("dynamodb", endpoint_url=endpoint),
            region=REGION,
            stack_name="BookingDurability-local",
        )
        names = friendly_names(local_template, created)
        yield MotoServer(
            endpoint=endpoint,
            env=env,
            session=session,
            queues={name: queue.url for name, queue in names.queues.items()},
            tables={name: table.name for name, table in names.tables.items()},
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("moto server did not start")
