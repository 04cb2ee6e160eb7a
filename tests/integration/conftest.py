"""Integration fixtures: the consumer's AWS resources in moto (in-process), and a clock.

Queues and table are made from the synthesized CDK template's own properties (the same code
the local stack uses), so the tests cannot drift from what we deploy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from booking_durability.adapters import aws as aws_clients
from booking_durability.adapters.deliveries_table import DeliveryLedger
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.delivery import EmailDelivery
from booking_durability.emails.providers.base import (
    EmailProvider,
    OutgoingEmail,
)
from booking_durability.settings import ConsumerSettings
from tests.builders import T0

REGION = "eu-west-1"


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


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws_clients.client.cache_clear()
    with mock_aws():
        yield
    aws_clients.client.cache_clear()


@pytest.fixture
def resources(aws: None, local_template: dict[str, Any]) -> Resources:
    from devstack.local_resources import create_resources

    sqs = boto3.client("sqs", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    created = create_resources(
        local_template, sqs=sqs, dynamodb=dynamodb, region=REGION, stack_name="BookingDurability-local"
    )

    def output(name: str) -> str:
        return created.resolve(local_template["Outputs"][name]["Value"])

    return Resources(
        queue_url=output("EmailQueueUrl"),
        dlq_url=output("EmailDlqUrl"),
        table=output("DeliveriesTableName"),
        sqs=sqs,
        dynamodb=dynamodb,
    )


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
        "STAGE": "test",
        "DELIVERIES_TABLE": resources.table,
        "EMAIL_QUEUE_URL": resources.queue_url,
        "EMAIL_DLQ_URL": resources.dlq_url,
        "MAX_DELAY_HOP_SECONDS": 900,
        "SEND_CONCURRENCY": 10,
        "BACKOFF_BASE_SECONDS": 60,
        "THROTTLE_BACKOFF_SECONDS": 30,
        "MAX_THROTTLE_DEFERRALS": 3,
        "LEASE_SECONDS": 120,
        "EMAIL_PROVIDER": "smtp",
    }
    values.update(overrides)
    return ConsumerSettings.model_validate(values)


def make_delivery(
    resources: Resources,
    provider: EmailProvider,
    clock: Clock,
    *,
    sleeps: list[float] | None = None,
    **settings: Any,
) -> EmailDelivery:
    return EmailDelivery(
        settings=consumer_settings(resources, **settings),
        ledger=DeliveryLedger(resources.table),
        queue=EmailQueue(resources.queue_url),
        dlq=EmailQueue(resources.dlq_url),
        provider=lambda: provider,
        clock=clock,
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )
