"""The local stack's queue worker behaves as Lambda's SQS event source mapping does.

Against moto in-process: the event a handler receives, and which messages the worker deletes
after the handler answers, raises, or answers something Lambda would not accept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel
from moto import mock_aws

from devstack.worker import FunctionSpec, QueueWorkerSpec, process_batch, receive_batch, sqs_event

pytestmark = pytest.mark.e2e

REGION = "eu-west-1"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION).client("sqs")


def worker_spec(sqs: Any, *, batch_size: int = 10, visibility_timeout: int = 30) -> QueueWorkerSpec:
    url = sqs.create_queue(QueueName="jobs", Attributes={"VisibilityTimeout": str(visibility_timeout)})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = FunctionSpec(
        name="consumer",
        handler="handler.handler",
        code_dir=".",
        timeout_seconds=10,
        memory_mb=256,
        environment={},
    )
    return QueueWorkerSpec(
        name="jobs_worker",
        region=REGION,
        queue_url=url,
        queue_arn=arn,
        function=function,
        batch_size=batch_size,
        report_batch_item_failures=True,
    )


def send_jobs(sqs: Any, spec: QueueWorkerSpec, bodies: list[str]) -> None:
    for body in bodies:
        sqs.send_message(
            QueueUrl=spec.queue_url,
            MessageBody=body,
            MessageAttributes={"email_type": {"DataType": "String", "StringValue": "booking_confirmed"}},
        )


def messages_left(sqs: Any, spec: QueueWorkerSpec) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=spec.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_the_handler_gets_the_event_the_sqs_event_source_mapping_delivers(sqs: Any):
    # Given a job with a message attribute on the queue
    spec = worker_spec(sqs)
    send_jobs(sqs, spec, ['{"job": 1}'])

    # When the worker receives it and builds the event
    event = sqs_event(receive_batch(sqs, spec), queue_arn=spec.queue_arn, region=REGION)

    # Then it has the mapping's shape, which Powertools' own SQS model accepts
    SqsModel.model_validate(event)
    (record,) = event["Records"]
    assert record["body"] == '{"job": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == spec.queue_arn
    assert record["awsRegion"] == REGION
    assert set(record["attributes"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "email_type": {
            "stringValue": "booking_confirmed",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }


def test_only_the_records_the_handler_reports_as_failed_stay_on_the_queue(sqs: Any):
    # Given three jobs in one batch, and a handler that reports the second as failed
    spec = worker_spec(sqs, visibility_timeout=0)
    send_jobs(sqs, spec, ["one", "two", "three"])

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert 0 < context.get_remaining_time_in_millis() <= 10_000
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "two"]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    # When the worker invokes it with the batch
    process_batch(sqs, handler, spec, receive_batch(sqs, spec))

    # Then the two others are deleted and only the failed one comes back
    assert [m["Body"] for m in receive_batch(sqs, spec)] == ["two"]
    assert messages_left(sqs, spec) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(RuntimeError("handler crashed"), id="handler raises"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}, id="unknown id"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": ""}]}, id="empty id"),
        pytest.param("not an object", id="malformed response"),
    ],
)
def test_a_failed_invocation_deletes_nothing(sqs: Any, answer: Any):
    # Given a batch of two jobs
    spec = worker_spec(sqs)
    send_jobs(sqs, spec, ["one", "two"])

    def handler(_event: dict[str, Any], _context: Any) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    # When the handler raises, or answers what Lambda counts as the whole batch failing
    process_batch(sqs, handler, spec, receive_batch(sqs, spec))

    # Then every message stays on the queue
    assert messages_left(sqs, spec) == 2


def test_a_batch_is_at_most_the_mappings_batch_size(sqs: Any):
    # Given more jobs waiting than the mapping's batch size
    spec = worker_spec(sqs, batch_size=2)
    send_jobs(sqs, spec, ["one", "two", "three"])

    # When the worker receives a batch
    batch = receive_batch(sqs, spec)

    # Then it holds the batch size, and the rest waits for the next batch
    assert len(batch) == 2
    assert len(receive_batch(sqs, spec)) == 1
