"""Every stage's alarms, as recorded from the synthesized template: a regression test.

An alarm an operator relies on is its name (what pages), what it reads (metrics, namespace,
dimensions, statistic, period, or the expression over them), when it fires (threshold, comparison,
periods, missing data) and the runbook section its description links. Reshaping the stacks must
keep all of that: the record in ``recorded_alarms.json`` is compared as a whole, so an alarm lost,
added, renamed or re-aimed fails here with the difference.

When an alarm changes on purpose, rewrite the record and review its diff:
``.venv/bin/python -m tests.infrastructure.test_recorded_alarms``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage

RECORD = Path(__file__).with_name("recorded_alarms.json")
_RUNBOOK_LINK = re.compile(r"Runbook: (\S+)$")


def recorded_alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``alarm name -> what it reads, when it fires, its runbook link`` for one template."""
    alarms = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        alarm = resource["Properties"]
        link = _RUNBOOK_LINK.search(alarm.get("AlarmDescription", ""))
        alarms[alarm["AlarmName"]] = {
            **_reads(alarm),
            "threshold": alarm["Threshold"],
            "comparison": alarm["ComparisonOperator"],
            "evaluation_periods": alarm["EvaluationPeriods"],
            "datapoints_to_alarm": alarm.get("DatapointsToAlarm"),
            "treat_missing_data": alarm.get("TreatMissingData"),
            "runbook": link.group(1) if link else None,
        }
    return dict(sorted(alarms.items()))


def _reads(alarm: dict[str, Any]) -> dict[str, Any]:
    """The metric an alarm reads, or the expression and the metrics it computes over."""
    if "MetricName" in alarm:
        return {
            "metric": alarm["MetricName"],
            "namespace": alarm["Namespace"],
            "dimensions": alarm.get("Dimensions", []),
            "statistic": alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
            "period": alarm["Period"],
        }
    queries = alarm["Metrics"]
    return {
        # A labelled metric is a query too: then the answer is that metric itself, not an expression.
        "expression": next(query.get("Expression") for query in queries if query.get("ReturnData", True)),
        "metrics": {
            query["Id"]: {
                "metric": query["MetricStat"]["Metric"]["MetricName"],
                "namespace": query["MetricStat"]["Metric"]["Namespace"],
                "dimensions": query["MetricStat"]["Metric"].get("Dimensions", []),
                "statistic": query["MetricStat"]["Stat"],
                "period": query["MetricStat"]["Period"],
            }
            for query in queries
            if "MetricStat" in query
        },
    }


def test_every_stages_alarms_are_the_recorded_ones(stage: SynthesizedStage) -> None:
    # Given the alarms recorded for this stage
    recorded = json.loads(RECORD.read_text())[stage.name]

    # When the stage is synthesized
    synthesized = recorded_alarms(stage.template_json)

    # Then every alarm is there, under its name, reading and firing as recorded
    assert sorted(synthesized) == sorted(recorded), "alarms added or lost"
    for name, alarm in recorded.items():
        assert synthesized[name] == alarm, name


def test_every_recorded_alarm_links_its_runbook_section() -> None:
    record = json.loads(RECORD.read_text())
    assert sorted(record) == ["dev", "local", "prod"]
    for alarms in record.values():
        for name, alarm in alarms.items():
            assert alarm["runbook"], f"{name} links no runbook section"


if __name__ == "__main__":
    from tests.synth import synthesized_templates

    RECORD.write_text(
        json.dumps(
            {stage: recorded_alarms(template) for stage, template in synthesized_templates().items()},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
