"""The drift sweep in the template (docs/reference/http-api.md#interrupted-flows): its own small function, run
on the stage's schedule, allowed only the calls its code makes, watched like every function; and the
sparse index it reads, as the runtime names it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from booking_durability.adapters import reservation_keys as runtime
from stacks.drift_sweep import DRIFT_SWEEP_SERVICE
from stacks.reservations_table import FLOW_DUE_ATTRIBUTE, OPEN_FLOW_ATTRIBUTE, OPEN_FLOWS_INDEX
from stacks.runbook import RUNBOOK, AlarmKey
from stacks.settings import SCHEDULE_PERIOD_METADATA
from tests.infrastructure.conftest import SynthesizedStage


def _sweep(stage: SynthesizedStage) -> tuple[str, dict[str, Any]]:
    return stage.function(DRIFT_SWEEP_SERVICE)


def _rule(stage: SynthesizedStage) -> dict[str, Any]:
    function_id, _ = _sweep(stage)
    rules = [
        rule
        for rule in stage.of_type("AWS::Events::Rule").values()
        if {"Fn::GetAtt": [function_id, "Arn"]} in [t["Arn"] for t in rule["Properties"]["Targets"]]
    ]
    assert len(rules) == 1
    return rules[0]


def test_the_open_flows_index_is_the_one_the_runtime_reads_and_writes(stage: SynthesizedStage) -> None:
    _, table = stage.reservations_table
    [index] = table["Properties"]["GlobalSecondaryIndexes"]
    assert (OPEN_FLOWS_INDEX, OPEN_FLOW_ATTRIBUTE, FLOW_DUE_ATTRIBUTE) == (
        runtime.OPEN_FLOWS_INDEX,
        runtime.OPEN_FLOW_ATTRIBUTE,
        runtime.FLOW_DUE_ATTRIBUTE,
    )
    assert index["IndexName"] == OPEN_FLOWS_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": OPEN_FLOW_ATTRIBUTE, "KeyType": "HASH"},
        {"AttributeName": FLOW_DUE_ATTRIBUTE, "KeyType": "RANGE"},
    ]
    types = {d["AttributeName"]: d["AttributeType"] for d in table["Properties"]["AttributeDefinitions"]}
    assert (types[OPEN_FLOW_ATTRIBUTE], types[FLOW_DUE_ATTRIBUTE]) == ("S", "N")
    # Keys only: the sweep reads each flow's hold itself, consistently
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


@pytest.mark.parametrize(
    ("stage_name", "rate", "period"),
    [("dev", "1 minute", 60), ("prod", "1 minute", 60), ("local", "1 minute", 2)],
)
def test_the_sweep_runs_on_the_stages_schedule(
    synthesized: Any, stage_name: str, rate: str, period: int
) -> None:
    stage = synthesized.stages[stage_name]
    rule = _rule(stage)
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Properties"]["State"] == "ENABLED"
    # The local scheduler's period: EventBridge's rates are whole minutes
    assert rule["Metadata"][SCHEDULE_PERIOD_METADATA] == period == stage.settings.drift_sweep.every_seconds
    # EventBridge may invoke the function, from this rule only
    function_id, _ = _sweep(stage)
    [permission] = [
        p["Properties"]
        for p in stage.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert permission["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    rule_id = next(rid for rid, res in stage.of_type("AWS::Events::Rule").items() if res is rule)
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_the_sweep_may_read_the_index_and_end_flows_and_nothing_else(stage: SynthesizedStage) -> None:
    function_id, function = _sweep(stage)
    table_id, _ = stage.reservations_table
    table = stage.arn_key(table_id)
    index = json.dumps(
        {"Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, f"/index/{OPEN_FLOWS_INDEX}"]]}, sort_keys=True
    )
    touched = stage.touched(function_id)
    assert set(touched) - {"*"} == {table, index, stage.own_log_group_key(function_id)}
    # Reads of the flow's holds and the venue; the ending's transaction: two holds updated, the
    # claimed booking id deleted, the event put. No Scan, no Query of the table, no batch writes.
    assert touched[table] == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
    }
    assert touched[index] == {"dynamodb:Query"}
    assert function["Properties"]["Environment"]["Variables"]["RESERVATIONS_TABLE"] == {"Ref": table_id}


def test_the_sweep_is_watched_like_every_function(stage: SynthesizedStage) -> None:
    descriptions = [
        alarm["Properties"].get("AlarmDescription", "")
        for alarm in stage.of_type("AWS::CloudWatch::Alarm").values()
    ]
    for key in (AlarmKey.DRIFT_SWEEP_ERRORS, AlarmKey.DRIFT_SWEEP_THROTTLES):
        reference = RUNBOOK[key].reference
        assert [d for d in descriptions if d.endswith(reference)], key
