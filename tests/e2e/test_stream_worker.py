"""The local stack's stream worker behaves as the template's EventBridge pipe does.

Against moto in-process, with the local stage's own reservations table, notifications queue and
outbox pipe: which stream records reach the queue and as what, where a restarted worker resumes,
and what it refuses to emulate rather than get wrong.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack import stream_worker
from devstack.atomic_moto import make_dynamodb_atomic
from devstack.local_resources import (
    PIPE,
    LocalResources,
    Names,
    TemplateError,
    create_resources,
    friendly_names,
    resources_of_type,
    stream_worker_specs,
)
from devstack.stream_worker import Checkpoints, StreamPipe, StreamWorkerSpec, matches

pytestmark = pytest.mark.e2e

REGION = "eu-west-1"
# moto serves DynamoDB Streams in-process only when the client names the service's endpoint.
STREAMS_ENDPOINT = f"https://streams.dynamodb.{REGION}.amazonaws.com"


@dataclass
class Pipeline:
    """The template's table, queue and pipe, made in moto; ``start()`` is a worker (re)starting."""

    template: dict[str, Any]
    resources: LocalResources
    names: Names
    spec: StreamWorkerSpec
    warnings: list[str]
    dynamodb: Any
    sqs: Any
    streams: Any

    @property
    def table(self) -> str:
        return self.names.tables["reservations"].name

    def start(self, sqs: Any = None) -> StreamPipe:
        checkpoints = Checkpoints(Path(self.spec.state_file), self.spec.stream_arn)
        return StreamPipe(self.spec, streams=self.streams, sqs=sqs or self.sqs, checkpoints=checkpoints)

    def put(self, pk: str, body: str, sk: str = "EVENT") -> None:
        self.dynamodb.put_item(
            TableName=self.table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "body": {"S": body}}
        )

    def messages(self) -> list[str]:
        """Every message on the notifications queue, in the order sent (each taken once)."""
        bodies: list[str] = []
        while True:
            received = self.sqs.receive_message(
                QueueUrl=self.spec.target_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not received:
                return bodies
            bodies.extend(message["Body"] for message in received)


def drain(pipe: StreamPipe) -> None:
    """Poll until a poll reads nothing: the worker has caught up with the stream."""
    while pipe.poll():
        pass


@pytest.fixture
def pipeline(
    local_template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        sqs, dynamodb = session.client("sqs"), session.client("dynamodb")
        resources = create_resources(
            local_template, sqs=sqs, dynamodb=dynamodb, region=REGION, stack_name="BookingDurability-local"
        )
        names = friendly_names(local_template, resources)
        warnings: list[str] = []
        [spec] = stream_worker_specs(
            local_template,
            resources,
            names,
            endpoint_url=STREAMS_ENDPOINT,
            state_dir=tmp_path,
            warn=warnings.append,
        )
        yield Pipeline(
            template=local_template,
            resources=resources,
            names=names,
            spec=spec,
            warnings=warnings,
            dynamodb=dynamodb,
            sqs=sqs,
            streams=session.client("dynamodbstreams", endpoint_url=STREAMS_ENDPOINT),
        )


def outbox_pipe(template: dict[str, Any]) -> dict[str, Any]:
    [pipe] = resources_of_type(template, PIPE).values()
    return pipe


def test_the_worker_is_the_templates_pipe_from_the_reservations_stream_to_the_notifications_queue(
    pipeline: Pipeline,
) -> None:
    spec = pipeline.spec
    properties = outbox_pipe(pipeline.template)["Properties"]
    stream_parameters = properties["SourceParameters"]["DynamoDBStreamParameters"]

    assert spec.name == "notifications_stream"
    assert spec.stream_arn == pipeline.names.tables["reservations"].stream_arn
    assert spec.target_queue_url == pipeline.names.queues["notifications"].url
    assert spec.starting_position == stream_parameters["StartingPosition"] == "TRIM_HORIZON"
    assert spec.batch_size == stream_parameters["BatchSize"]
    assert spec.filters == [
        json.loads(f["Pattern"]) for f in properties["SourceParameters"]["FilterCriteria"]["Filters"]
    ]
    assert spec.input_template == properties["TargetParameters"]["InputTemplate"]
    assert pipeline.warnings == []


def test_only_a_new_outbox_item_reaches_the_queue_and_as_its_body(pipeline: Pipeline) -> None:
    # Given what the reservations table's stream carries: a hold, a key that merely contains
    # OUTBOX#, an outbox item, the same item rewritten (MODIFY), and its expiry (REMOVE)
    event = '{"type":"policy_drift.recovered","event_id":"5b0c6f0e-2d1e-4a8e-9a51-1f0f5c8d9e21"}'
    pipeline.put("HOLD#hld_1", "a hold", sk="HOLD")
    pipeline.put("VENUE#OUTBOX#casa", "not an outbox item")
    pipeline.put("OUTBOX#5b0c6f0e", event)
    pipeline.put("OUTBOX#5b0c6f0e", event.replace("recovered", "unrecovered"))
    pipeline.dynamodb.delete_item(
        TableName=pipeline.table, Key={"pk": {"S": "OUTBOX#5b0c6f0e"}, "sk": {"S": "EVENT"}}
    )

    # When the worker reads the stream
    drain(pipeline.start())

    # Then the one new outbox item is sent, its message exactly the item's body
    assert pipeline.messages() == [event]


def test_a_restarted_worker_resumes_after_what_it_sent(pipeline: Pipeline) -> None:
    # Given a worker that forwarded an event, then stopped
    pipeline.put("OUTBOX#1", "first")
    drain(pipeline.start())
    # When events are committed meanwhile and a new worker starts from the state file
    pipeline.put("OUTBOX#2", "second")
    pipeline.put("HOLD#h", "skipped")
    pipeline.put("OUTBOX#3", "third")
    drain(pipeline.start())
    # And yet another one starts, with nothing new in the stream
    drain(pipeline.start())

    # Then every event was sent once, in stream order
    assert pipeline.messages() == ["first", "second", "third"]


def test_the_writes_of_a_failed_transaction_never_reach_the_queue(pipeline: Pipeline) -> None:
    # Given a worker reading the stream, and moto made atomic as the local stack's is
    make_dynamodb_atomic()
    pipe = pipeline.start()
    pipeline.put("OUTBOX#taken", "committed")
    drain(pipe)

    # When a transaction that writes an outbox item fails on another of its conditions
    with pytest.raises(ClientError, match="TransactionCanceled"):
        pipeline.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": pipeline.table,
                        "Item": {"pk": {"S": "OUTBOX#undone"}, "sk": {"S": "EVENT"}, "body": {"S": "undone"}},
                    }
                },
                {
                    "Put": {
                        "TableName": pipeline.table,
                        "Item": {"pk": {"S": "OUTBOX#taken"}, "sk": {"S": "EVENT"}, "body": {"S": "again"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    # And a later write commits
    pipeline.put("OUTBOX#later", "later")
    drain(pipe)

    # Then only the committed writes were sent, the later one included
    assert pipeline.messages() == ["committed", "later"]


class FlakySqs:
    """An SQS client whose first ``failures`` sends fail as SQS fails when it is unavailable."""

    def __init__(self, sqs: Any, failures: int) -> None:
        self.sqs = sqs
        self.failures = failures

    def send_message(self, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessage")
        return self.sqs.send_message(**kwargs)


def test_a_send_that_fails_is_retried_until_it_goes_through(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queue that refuses the first two sends
    pauses: list[float] = []
    monkeypatch.setattr(stream_worker.time, "sleep", pauses.append)
    pipeline.put("OUTBOX#1", "event")

    # When the worker forwards the event
    drain(pipeline.start(sqs=FlakySqs(pipeline.sqs, failures=2)))

    # Then it tried again, pausing longer each time, until the event was sent, once
    assert len(pauses) == 2
    assert pauses[1] > pauses[0]
    assert pipeline.messages() == ["event"]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param(
            lambda p: p["SourceParameters"]["FilterCriteria"]["Filters"].append(
                {"Pattern": json.dumps({"eventName": [{"anything-but": "REMOVE"}]})}
            ),
            "only exact values and prefix",
            id="another pattern operator",
        ),
        pytest.param(
            lambda p: p["SourceParameters"]["FilterCriteria"]["Filters"][0].update(
                {"Pattern": {"Fn::Join": ["", ["{", "}"]]}}
            ),
            "not a literal",
            id="a pattern that is not a literal",
        ),
        pytest.param(
            lambda p: p["TargetParameters"].update({"InputTemplate": "<aws.pipes.event.json>"}),
            "only \\$. JSON paths",
            id="a reserved variable in the template",
        ),
        pytest.param(
            lambda p: p["TargetParameters"].update({"SqsQueueParameters": {"MessageGroupId": "g"}}),
            "SqsQueueParameters",
            id="target parameters",
        ),
        pytest.param(
            lambda p: p.update({"Enrichment": "arn:aws:lambda:::function:x"}), "enrichment", id="enrichment"
        ),
    ],
)
def test_what_the_worker_cannot_reproduce_stops_the_stack_instead_of_being_ignored(
    pipeline: Pipeline, change: Any, refusal: str
) -> None:
    template = copy.deepcopy(pipeline.template)
    change(outbox_pipe(template)["Properties"])

    with pytest.raises(TemplateError, match=refusal):
        stream_worker_specs(
            template,
            pipeline.resources,
            pipeline.names,
            endpoint_url=STREAMS_ENDPOINT,
            state_dir=Path(pipeline.spec.state_file).parent,
            warn=pipeline.warnings.append,
        )


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": ["x"]}, {"a": "x"}, True),
        ({"a": ["x", "y"]}, {"a": "y"}, True),
        ({"a": ["x"]}, {"a": ["z", "x"]}, True),  # an array matches when one element does
        ({"a": ["x"]}, {"b": "x"}, False),  # a missing field never matches
        ({"a": {"b": [{"prefix": "OUT"}]}}, {"a": {"b": "OUTBOX#1"}}, True),
        ({"a": {"b": [{"prefix": "OUT"}]}}, {"a": {"b": "IN#OUTBOX"}}, False),
        ({"a": {"b": [{"prefix": "1"}]}}, {"a": {"b": 1}}, False),  # prefix is for strings
        ({"a": {"b": ["x"]}}, {"a": "x"}, False),
        ({"a": [1]}, {"a": 1}, True),
        ({"a": [True]}, {"a": 1}, False),  # JSON true is not the number 1
        ({"a": [None]}, {"a": None}, True),
    ],
)
def test_eventbridge_patterns_match_as_eventbridge_matches_them(
    pattern: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert matches(pattern, event) is expected
