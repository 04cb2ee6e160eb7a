"""The real consumer handler (Powertools batch, logger, metrics) against moto, the provider
secret in Secrets Manager and the HTTP provider double on loopback
(docs/reference/queue-message.md#delivery-semantics, docs/reference/local-stack.md#http-provider-double).

Jobs carry known personal data through every path (success, retry, throttle, permanent, retries
and throttle deferrals exhausted, poison) and the tests prove it appears in no log line, EMF
blob, message attribute, exception message, batch failure report or dedupe record.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from booking_durability import wiring
from booking_durability.emails import consumer
from devstack.http_provider import HttpProviderDouble
from tests.builders import GUEST_EMAIL, PII, LambdaContext, job, sqs_event, sqs_record
from tests.integration.conftest import REGION, Resources, import_handler

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "re_test_key_never_logged"


@pytest.fixture
def double() -> Iterator[HttpProviderDouble]:
    with HttpProviderDouble(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def handler(resources: Resources, double: HttpProviderDouble, monkeypatch: pytest.MonkeyPatch) -> Any:
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="booking-durability/email-provider", SecretString=json.dumps({"api_key": API_KEY})
    )["ARN"]
    env = {
        "STAGE": "test",
        "DELIVERIES_TABLE": resources.table,
        "EMAIL_QUEUE_URL": resources.queue_url,
        "EMAIL_DLQ_URL": resources.dlq_url,
        "EMAIL_PROVIDER": "resend",
        "RESEND_BASE_URL": double.url,
        "PROVIDER_SECRET_ARN": secret_arn,
        "BACKOFF_BASE_SECONDS": "1",
        "THROTTLE_BACKOFF_SECONDS": "1",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    parameters.clear_caches()
    yield import_handler("email_consumer")
    wiring.reset()


def now_job(**overrides: Any) -> dict[str, Any]:
    return job(deliver_at=datetime.now(UTC), **overrides)


def emf_blobs(output: str) -> list[dict[str, Any]]:
    blobs = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def queued(resources: Resources, url: str) -> list[dict[str, Any]]:
    return resources.drain(url)


def received_until(
    resources: Resources, url: str, wanted: Callable[[dict[str, Any]], bool], seconds: float = 15
) -> list[dict[str, Any]]:
    """Messages taken from ``url`` (with attributes) until one is ``wanted``, waiting out SQS
    delays, for at most ``seconds``."""
    taken: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while not any(wanted(m) for m in taken) and time.monotonic() < deadline:
        batch = resources.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
        for message in batch:
            resources.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        taken.extend(batch)
    return taken


def test_a_batch_is_delivered_through_the_secret_provider_and_the_double(
    handler: Any, resources: Resources, double: HttpProviderDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    event = sqs_event(*(sqs_record(now_job(booking_id=f"bk_{i}")) for i in range(3)))
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert sorted(d.idempotency_key for d in double.deliveries) == [
        f"bk_{i}#booking_confirmed#0" for i in range(3)
    ]
    # And the EMF blob counts them
    blobs = emf_blobs(capsys.readouterr().out)
    [sent] = [b for b in blobs if "EmailSent" in b]
    assert sent["EmailSent"] == [1.0, 1.0, 1.0]
    assert "EmailDeliveryLagMs" in sent


def test_dead_letters_are_counted_by_reason(
    handler: Any, resources: Resources, capsys: pytest.CaptureFixture[str]
) -> None:
    handler(sqs_event(sqs_record("{not json")), LambdaContext())
    blobs = emf_blobs(capsys.readouterr().out)
    dead = [b for b in blobs if "EmailDeadLettered" in b]
    assert dead[0]["failure_reason"] == "invalid_json"
    assert ["failure_reason"] in [
        d for m in dead[0]["_aws"]["CloudWatchMetrics"] for d in [m["Dimensions"][0][-1:]]
    ]


def test_personal_data_never_leaves_the_message_body(
    handler: Any,
    resources: Resources,
    double: HttpProviderDouble,
    capsys: pytest.CaptureFixture[str],
    log_lines: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every exception the batch processor saw, as Powertools records them for its report
    processors: list[Any] = []

    class RecordingProcessor(consumer.AsyncBatchProcessor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            processors.append(self)

    monkeypatch.setattr(consumer, "AsyncBatchProcessor", RecordingProcessor)

    # Given jobs for the same guest down every path
    def address(tag: str = "") -> str:
        local, domain = GUEST_EMAIL.split("@")
        return f"{local}{tag}@{domain}"

    reports: list[Any] = []
    ok = sqs_record(now_job(booking_id="bk_ok", email=address()))
    retry = sqs_record(now_job(booking_id="bk_retry", email=address("+transient1")))
    throttle = sqs_record(now_job(booking_id="bk_throttle", email=address("+throttle1")))
    throttle_deferred = sqs_record(now_job(booking_id="bk_defer", email=address("+throttle1")))
    permanent = sqs_record(now_job(booking_id="bk_perm", email=address("+permanent")))
    # (its last receive, and one whose throttle deferrals are all spent)
    exhausted = sqs_record(now_job(booking_id="bk_exhausted", email=address("+transient9")), receive_count=5)
    throttle_exhausted = sqs_record(now_job(booking_id="bk_thr_spent", email=address("+throttle1")))
    resources.dynamodb.put_item(
        TableName=resources.table,
        Item={
            "booking_id": {"S": "bk_thr_spent"},
            "email_key": {"S": "booking_confirmed#0"},
            "dedupe_key": {"S": "bk_thr_spent#booking_confirmed#0"},
            "status": {"S": "queued"},
            "throttle_deferrals": {"N": "10"},
        },
    )
    poison_json = sqs_record('{"recipient": {"email": "' + GUEST_EMAIL + '"}')
    poison_schema = sqs_record(json.dumps({**now_job(booking_id="bk_bad"), "revision": GUEST_EMAIL}))

    # When the handler takes them (the retry comes back as its second receive)
    resources.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=retry["body"])
    retry["receiptHandle"] = resources.sqs.receive_message(QueueUrl=resources.queue_url)["Messages"][0][
        "ReceiptHandle"
    ]
    first = sqs_event(ok, retry, throttle, permanent, exhausted, poison_json, poison_schema)
    reports.append(handler(first, LambdaContext()))
    reports.append(
        handler(
            sqs_event({**retry, "attributes": {**retry["attributes"], "ApproximateReceiveCount": "2"}}),
            LambdaContext(),
        )
    )
    last = sqs_event(throttle_deferred, throttle_exhausted)
    reports.append(handler(last, LambdaContext(remaining_ms=1_500)))

    # Then every path did what the contract says
    assert reports[0] == {"batchItemFailures": [{"itemIdentifier": retry["messageId"]}]}
    assert reports[1] == {"batchItemFailures": []}
    delivered = {d.idempotency_key.split("#")[0] for d in double.deliveries}
    assert delivered == {"bk_ok", "bk_retry", "bk_throttle"}
    dead = queued(resources, resources.dlq_url)
    assert sorted(m["MessageAttributes"]["failure_reason"]["StringValue"] for m in dead) == [
        "invalid_json",
        "provider_rejected",
        "schema_invalid",
        "throttle_exhausted",
        "transient_exhausted",
    ]
    # (the throttle-deferred copy is sent with a delay, so wait for it to show)
    requeued = received_until(resources, resources.queue_url, lambda m: "bk_defer" in m["Body"])
    [deferred] = [m for m in requeued if "bk_defer" in m["Body"]]
    assert deferred["MessageAttributes"]["email_type"]["StringValue"] == "booking_confirmed"

    # And no personal data anywhere but the bodies the guest's email is made from
    output = capsys.readouterr()
    surfaces = {
        "logs and EMF": log_lines.getvalue() + output.out + output.err,
        "batch reports": json.dumps(reports),
        "message attributes": json.dumps([m.get("MessageAttributes", {}) for m in dead + requeued]),
        "dedupe records": json.dumps(resources.items()),
        "exceptions": json.dumps([repr(info[1]) for p in processors for info in p.exceptions]),
    }
    assert "RetryLater" in surfaces["exceptions"]  # the retried record's exception was captured
    for surface, text in surfaces.items():
        for secret in (*PII, API_KEY):
            assert secret not in text, f"{secret!r} leaked into {surface}"
    assert "email sent" in log_lines.getvalue()  # the logs were really captured
    assert "P\\u00e9rez" not in log_lines.getvalue()


def test_every_outcome_has_its_metric(
    handler: Any, resources: Resources, double: HttpProviderDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given one job down each path the operator's dashboard counts
    resources.dynamodb.put_item(
        TableName=resources.table,
        Item={
            "booking_id": {"S": "bk_cancel"},
            "email_key": {"S": "booking_confirmed#0"},
            "status": {"S": "cancelled"},
        },
    )
    later = datetime.now(UTC) + timedelta(hours=2)
    first = [
        sqs_record(now_job(booking_id="bk_sent")),
        sqs_record(now_job(booking_id="bk_cancel")),
        sqs_record(job(booking_id="bk_later", deliver_at=later)),
        sqs_record(now_job(booking_id="bk_old", not_after="2020-01-01T00:00:00Z")),
        sqs_record(now_job(booking_id="bk_retry", email="guest+transient1@example.test")),
        sqs_record(now_job(booking_id="bk_slow", email="guest+throttle1@example.test")),
        sqs_record(now_job(booking_id="bk_perm", email="guest+permanent@example.test")),
    ]
    handler(sqs_event(*first), LambdaContext())
    # And a second invocation: a duplicate, and an email suppressed by the one already sent
    suppressed = now_job(
        booking_id="bk_sent", email_type="booking_request_received", suppress_if_sent=["booking_confirmed"]
    )
    handler(sqs_event(sqs_record(now_job(booking_id="bk_sent")), sqs_record(suppressed)), LambdaContext())

    names = {key for blob in emf_blobs(capsys.readouterr().out) for key in blob if key.startswith("Email")}
    assert names == {
        "EmailSent",
        "EmailDuplicateSkipped",
        "EmailCancelledSkipped",
        "EmailSuppressedSkipped",
        "EmailExpiredSkipped",
        "EmailDeferred",
        "EmailTransientFailure",
        "EmailThrottled",
        "EmailPermanentFailure",
        "EmailDeadLettered",
        "EmailDeliveryLagMs",
    }


PHONE = "5551234567"  # digits, like a count: what a check of the characters alone would let by


def test_personal_data_planted_in_message_attributes_reaches_no_log_or_letter(
    handler: Any,
    resources: Resources,
    double: HttpProviderDouble,
    capsys: pytest.CaptureFixture[str],
    log_lines: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (one-second delay hops, read when the handler is first invoked: the deferred copy shows soon)
    monkeypatch.setenv("MAX_DELAY_HOP_SECONDS", "1")
    # Given messages whose producer put a guest's data in every attribute the consumer reads
    planted: dict[str, str | int] = {
        "attempts": PHONE,
        "failure_reason": GUEST_EMAIL,
        "email_type": PII[1],
        "first_dead_lettered_at": GUEST_EMAIL,
        "schema": GUEST_EMAIL,
    }
    unparsable = sqs_record("{not json", attributes=planted)
    invalid = sqs_record(json.dumps({**now_job(booking_id="bk_bad"), "revision": -1}), attributes=planted)
    refused = sqs_record(
        now_job(booking_id="bk_perm", email="guest+permanent@example.test"), attributes=planted
    )
    later = sqs_record(
        job(booking_id="bk_later", deliver_at=datetime.now(UTC) + timedelta(hours=1)), attributes=planted
    )
    # (and one with a numeric attempts attribute far beyond any count)
    numeric = sqs_record("{not json either", attributes={"attempts": int(PHONE)})
    # When the handler takes them
    report = handler(sqs_event(unparsable, invalid, refused, later, numeric), LambdaContext())
    # Then each was dead-lettered or deferred, carrying only what the consumer knows
    assert report == {"batchItemFailures": []}
    dead = queued(resources, resources.dlq_url)
    assert sorted(attributes_of(m)["failure_reason"] for m in dead) == [
        "invalid_json",
        "invalid_json",
        "provider_rejected",
        "schema_invalid",
    ]
    assert {attributes_of(m)["attempts"] for m in dead} <= {"0", "1"}
    # (the deferred copy is sent with a delay, so wait for it to show)
    requeued = received_until(resources, resources.queue_url, lambda m: "bk_later" in m["Body"])
    assert [attributes_of(m)["attempts"] for m in requeued] == ["0"]
    # And none of the planted values is in a log line, a metric or an attribute sent on
    output = capsys.readouterr()
    surfaces = {
        "logs and EMF": log_lines.getvalue() + output.out + output.err,
        "message attributes": json.dumps([m.get("MessageAttributes", {}) for m in dead + requeued]),
    }
    assert "email dead-lettered" in surfaces["logs and EMF"]
    for surface, text in surfaces.items():
        for secret in (*PII, PHONE):
            assert secret not in text, f"{secret!r} leaked into {surface}"


def attributes_of(message: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}
