"""The metrics the functions emit and the alarms the stack makes are the same names, from one module.

``booking_durability.metric_names`` defines every metric and says which must page; the runtime
emits only those names, and the stack alarms only on those. A metric renamed, dropped or spelled
on one side only fails one of these tests, instead of silently leaving its alarm on a name
nothing emits.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import pytest

from booking_durability.metric_names import (
    NAMESPACE,
    Dimension,
    DriftReason,
    Metric,
    NotificationChannel,
)

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "booking_durability" / "python" / "booking_durability"
EMITTERS = ("count", "count_with_dimension")
#: The runtime modules the CDK app may import: standard library only (stacks/__init__.py,
#: test_compliance.py).
SHARED_WITH_STACKS = {"booking_durability.metric_names", "booking_durability.stack_outputs"}


def _alarmed_metrics(stage: SynthesizedStage) -> list[dict[str, Any]]:
    """The metrics of our namespace that some alarm of the stage reads."""
    found = []
    for alarm in stage.of_type("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if "MetricName" in properties:
            keys = ("Namespace", "MetricName", "Dimensions")
            metrics = [{key: properties.get(key) for key in keys}]
        else:
            queries = properties["Metrics"]
            metrics = [query["MetricStat"]["Metric"] for query in queries if "MetricStat" in query]
        found += [metric for metric in metrics if metric.get("Namespace") == NAMESPACE]
    return found


def test_every_alarm_reads_a_metric_by_the_dimensions_it_is_emitted_with(stage: SynthesizedStage) -> None:
    alarmed = _alarmed_metrics(stage)
    assert alarmed, "no alarm reads the service's own metrics"
    for metric in alarmed:
        defined = Metric(metric["MetricName"])
        names = {dimension["Name"] for dimension in metric["Dimensions"]}
        assert names <= {"service", defined.dimension}, (defined, names)
        assert "service" in names, defined


def _alarmed_metric_names(stage: SynthesizedStage) -> set[str]:
    """The names of our namespace's metrics that some alarm of the stage reads."""
    return {metric["MetricName"] for metric in _alarmed_metrics(stage)}


def test_every_metric_meant_to_page_has_an_alarm(stage: SynthesizedStage) -> None:
    alarmed = _alarmed_metric_names(stage)
    missing = [metric.value for metric in Metric if metric.alarmed and metric.value not in alarmed]
    assert not missing, f"{stage.name}: no alarm on {missing}"


def test_every_alarm_on_the_services_metrics_reads_a_metric_meant_to_page(stage: SynthesizedStage) -> None:
    alarmed = _alarmed_metric_names(stage)
    assert alarmed, "no alarm reads the service's own metrics"
    assert alarmed <= {metric.value for metric in Metric if metric.alarmed}, alarmed


def _member(node: ast.expr | None, enum: type) -> str | None:
    """The member ``node`` names as ``<Enum>.<MEMBER>``, if it does."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == enum.__name__
    ):
        return node.attr
    return None


def _emitted(tree: ast.AST) -> tuple[set[tuple[str, str | None]], list[str]]:
    """What a module's emitting calls name: each ``Metric`` member with the ``Dimension`` member
    it is emitted with (None by ``count``), and the calls naming anything else."""
    emitted: set[tuple[str, str | None]] = set()
    others: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in EMITTERS):
            continue
        metric = _member(node.args[0] if node.args else None, Metric)
        dimension = _member(node.args[1], Dimension) if node.func.id == "count_with_dimension" else None
        if metric is None or (node.func.id == "count_with_dimension" and dimension is None):
            others.append(f"line {node.lineno}: {ast.unparse(node)}")
        else:
            emitted.add((metric, dimension))
    return emitted, others


def _emissions() -> tuple[set[tuple[str, str | None]], dict[str, list[str]]]:
    members: set[tuple[str, str | None]] = set()
    others: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found, unnamed = _emitted(ast.parse(path.read_text(encoding="utf-8")))
        members |= found
        if unnamed:
            others[str(path.relative_to(PACKAGE))] = unnamed
    return members, others


def test_every_metric_defined_is_emitted_somewhere_in_the_layer() -> None:
    emitted, _ = _emissions()
    assert emitted, "no emission found: the scan no longer matches how metrics are counted"
    names = {metric for metric, _ in emitted}
    assert names <= set(Metric.__members__), names - set(Metric.__members__)
    assert set(Metric.__members__) - names == set()


def test_every_metric_is_emitted_with_the_dimension_it_is_defined_with() -> None:
    emitted, _ = _emissions()
    wrong = {
        (metric, dimension)
        for metric, dimension in emitted
        if dimension != (None if Metric[metric].dimension is None else Metric[metric].dimension.name)
    }
    assert wrong == set()


def test_the_layer_emits_no_metric_by_a_name_of_its_own() -> None:
    _, others = _emissions()
    # observability.py defines the emitters; every other call names a Metric member.
    assert others == {}, others


def test_the_emission_scan_sees_a_metric_or_a_dimension_spelled_out() -> None:
    source = (
        "count(Metric.EMAIL_SENT)\n"
        "count_with_dimension(Metric.NO_AVAILABILITY, Dimension.REASON, reason)\n"
        'count_with_dimension("Renamed", Dimension.REASON, reason)\n'
        'count_with_dimension(Metric.NO_AVAILABILITY, "reason", reason)'
    )
    emitted, others = _emitted(ast.parse(source))
    assert emitted == {("EMAIL_SENT", None), ("NO_AVAILABILITY", "REASON")}
    assert [other.split(":")[0] for other in others] == ["line 3", "line 4"]


def test_the_alarm_scan_sees_a_renamed_metric(stage: SynthesizedStage) -> None:
    # A template whose alarm reads a name the module does not define fails the check above.
    [(alarm_id, alarm)] = [
        (alarm_id, alarm)
        for alarm_id, alarm in stage.of_type("AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("MetricName") == Metric.EMAIL_TRANSIENT_FAILURE
    ]
    renamed: dict[str, Any] = {**alarm, "Properties": {**alarm["Properties"], "MetricName": "Renamed"}}
    resources = {**stage.resources, alarm_id: renamed}
    changed = type(stage)(
        settings=stage.settings, template_json={"Resources": resources}, outdir=stage.outdir
    )
    alarmed = _alarmed_metric_names(changed)
    assert "Renamed" in alarmed
    assert Metric.EMAIL_TRANSIENT_FAILURE.value not in alarmed


@pytest.mark.parametrize("module", sorted(SHARED_WITH_STACKS))
def test_the_modules_the_stacks_share_import_nothing_but_the_standard_library(module: str) -> None:
    probe = (
        f"import sys; before = set(sys.modules); import {module}; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {name for name in loaded if name.split(".")[0] == "booking_durability"}
    assert ours == {"booking_durability", module}, ours
    third_party = (
        {name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names) - {"booking_durability"}
    )
    assert third_party == set(), third_party


def test_the_dimension_values_are_the_runtimes_own() -> None:
    from booking_durability.drift_events import PolicyDriftData
    from booking_durability.notifications.email_channel import EmailChannel
    from booking_durability.notifications.webhook import WebhookChannel

    # The drift event's reason is the very enum the metric's dimension counts
    annotation = PolicyDriftData.model_fields["reason"].annotation
    optional, absent = get_args(annotation)  # DriftReason (with its schema) | None
    assert absent is type(None)
    assert get_args(optional)[0] is DriftReason
    assert {WebhookChannel.name, EmailChannel.name} == set(NotificationChannel)
