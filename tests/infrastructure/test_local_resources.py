"""The local stack's resources, made in moto from the local stage's own template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from devstack.local_resources import LocalResources, Names, create_resources, friendly_names, schedule_specs
from devstack.schedules import SchedulerSpec
from stacks.drift_sweep import DRIFT_SWEEP_SERVICE

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


def _as_the_local_stack_synthesizes(template: dict[str, Any]) -> dict[str, Any]:
    """The template with each function's code folder named (the local stack's synth context)."""
    copied: dict[str, Any] = json.loads(json.dumps(template))
    for resource in copied["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            resource.setdefault("Metadata", {})["aws:asset:path"] = "lambdas/code"
    return copied


def test_the_scheduled_functions_run_locally_on_the_stages_own_period(
    made: tuple[LocalResources, Names, Any], local: SynthesizedStage, tmp_path: Any
) -> None:
    # Given the local template, whose drift sweep EventBridge would run every minute
    resources, names, _ = made
    template = _as_the_local_stack_synthesizes(local.template_json)
    warnings: list[str] = []
    # When the local stack reads what its scheduler must run
    read = {"assembly_dir": tmp_path, "local_environment": {}}
    [schedule] = schedule_specs(template, resources, warn=warnings.append, **read)
    # Then it is the sweep, every 2 s (the stage's period), against the local table
    sweep_id, _ = local.function(DRIFT_SWEEP_SERVICE)
    assert schedule.function.name == resources.function_names[sweep_id]
    assert schedule.period_seconds == local.settings.drift_sweep.every_seconds == 2
    assert schedule.function.environment["RESERVATIONS_TABLE"] == names.tables["reservations"].name
    assert schedule.rule_arn.startswith(f"arn:aws:events:{REGION}:")
    assert warnings == []
    # And the spec the scheduler reads names it, its functions where an environment finds them
    written = SchedulerSpec(REGION, [schedule]).to_json()
    assert SchedulerSpec.from_json(written).schedules == [schedule]
    assert json.loads(written)["functions"][schedule.function.name]["handler"] == schedule.function.handler


def test_a_rule_the_scheduler_cannot_run_is_reported_and_skipped(
    made: tuple[LocalResources, Names, Any], local: SynthesizedStage, tmp_path: Any
) -> None:
    resources, _, _ = made
    template = _as_the_local_stack_synthesizes(local.template_json)
    [rule] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    rule["Metadata"] = {}
    rule["Properties"]["ScheduleExpression"] = "cron(0 12 * * ? *)"
    warnings: list[str] = []
    read = {"assembly_dir": tmp_path, "local_environment": {}}
    assert schedule_specs(template, resources, warn=warnings.append, **read) == []
    assert len(warnings) == 1
    assert "not a rate" in warnings[0]
    # Without the stage's period, a rate is the rule's own
    rule["Properties"]["ScheduleExpression"] = "rate(5 minutes)"
    [schedule] = schedule_specs(template, resources, warn=warnings.append, **read)
    assert schedule.period_seconds == 300
