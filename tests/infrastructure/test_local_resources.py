"""The local stack's resources, made in moto from the local stage's own template."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from devstack.local_resources import LocalResources, Names, create_resources, friendly_names

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage

REGION = "eu-west-1"


@pytest.fixture
def made(
    local: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalResources, Names, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        resources = create_resources(
            local.template_json,
            sqs=boto3.client("sqs", region_name=REGION),
            dynamodb=dynamodb,
            region=REGION,
            stack_name=local.settings.stack_name,
        )
        yield resources, friendly_names(local.template_json, resources), dynamodb


def test_the_queues_and_tables_get_the_names_their_functions_know_them_by(
    made: tuple[LocalResources, Names, Any], local: SynthesizedStage
) -> None:
    _, names, _ = made
    assert {name: queue.logical_id for name, queue in names.queues.items()} == {
        "email": local.email_queue[0],
        "email_dlq": local.email_dlq[0],
        "notifications": local.notifications_queue[0],
        "notifications_dlq": local.notifications_dlq[0],
        "notifications_pipe_dlq": local.pipe_dlq[0],
    }
    assert {name: table.logical_id for name, table in names.tables.items()} == {
        "deliveries": local.deliveries_table[0],
        "reservations": local.reservations_table[0],
    }


def test_the_reservations_table_is_made_from_its_template_with_its_stream(
    made: tuple[LocalResources, Names, Any], local: SynthesizedStage
) -> None:
    _, names, dynamodb = made
    table = names.tables["reservations"]
    described = dynamodb.describe_table(TableName=table.name)["Table"]
    properties = local.reservations_table[1]["Properties"]
    assert described["KeySchema"] == properties["KeySchema"]
    assert described["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table.stream_arn == described["LatestStreamArn"]
    ttl = dynamodb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_the_api_functions_environment_resolves_to_the_local_resources(
    made: tuple[LocalResources, Names, Any], local: SynthesizedStage
) -> None:
    # What a local API server needs to run the real handlers against moto
    resources, names, _ = made
    for _, function in (local.email_api, local.reservations_api):
        for name, value in function["Properties"]["Environment"]["Variables"].items():
            assert resources.resolve(value), name
    reservations_env = local.reservations_api[1]["Properties"]["Environment"]["Variables"]
    assert resources.resolve(reservations_env["RESERVATIONS_TABLE"]) == names.tables["reservations"].name
