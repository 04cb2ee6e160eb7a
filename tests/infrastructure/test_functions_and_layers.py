"""Every function the way the one builder makes it: arm64, Python 3.13, own logs, layers."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match

from booking_durability.adapters import reservation_keys as runtime
from layer_assets.build import bytecode_compiler
from stacks.function import ServiceFunction
from stacks.reservations_table import BOOKING_KEY_PREFIX
from stacks.settings import (
    LAMBDA_PYTHON_VERSION,
    LAMBDA_UNRESERVED_MINIMUM,
    FunctionSettings,
    StageSettings,
    stage_settings,
)
from tests.infrastructure.conftest import (
    DRIFT_SWEEP_SERVICE,
    EMAIL_API_SERVICE,
    EMAIL_CONSUMER_SERVICE,
    NOTIFIER_SERVICE,
    RESERVATIONS_API_SERVICE,
)

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_functions_run_python_3_13_on_arm64(stage: SynthesizedStage) -> None:
    functions = stage.of_type("AWS::Lambda::Function")
    assert functions, "the stack defines no function"
    for properties in (function["Properties"] for function in functions.values()):
        assert properties["Runtime"] == f"python{LAMBDA_PYTHON_VERSION}" == "python3.13"
        assert properties["Architectures"] == ["arm64"]


def test_each_function_logs_to_its_own_group_kept_as_long_as_the_stage_says(stage: SynthesizedStage) -> None:
    for properties in (
        function["Properties"] for function in stage.of_type("AWS::Lambda::Function").values()
    ):
        log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = stage.resources[log_group_id]
        assert log_group["Properties"]["RetentionInDays"] == stage.settings.observability.log_retention_days


def _sized_by(settings: StageSettings) -> dict[str, FunctionSettings]:
    """Each function's stage settings, by its Powertools service name."""
    return {
        EMAIL_CONSUMER_SERVICE: settings.consumer,
        EMAIL_API_SERVICE: settings.email_api,
        RESERVATIONS_API_SERVICE: settings.reservations_api,
        NOTIFIER_SERVICE: settings.notifications.notifier,
        DRIFT_SWEEP_SERVICE: settings.drift_sweep,
    }


def test_each_function_reserves_the_concurrency_its_stage_settings_give_it(stage: SynthesizedStage) -> None:
    sized_by = _sized_by(stage.settings)
    # Every function of the template is one the stage sizes (a new function must be added here)
    services = {
        properties["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for properties in (f["Properties"] for f in stage.of_type("AWS::Lambda::Function").values())
    }
    assert services == set(sized_by)
    assert set(stage.settings.functions.values()) == set(sized_by.values())
    for service, settings in sized_by.items():
        _, function = stage.function(service)
        assert function["Properties"]["ReservedConcurrentExecutions"] == settings.reserved_concurrency


def test_the_reservations_leave_the_account_its_unreserved_minimum(stage: SynthesizedStage) -> None:
    reserved = sum(
        function["Properties"]["ReservedConcurrentExecutions"]
        for function in stage.of_type("AWS::Lambda::Function").values()
    )
    assert reserved == stage.settings.reserved_concurrency
    assert stage.settings.account_concurrency - reserved >= LAMBDA_UNRESERVED_MINIMUM


def test_an_email_flood_cannot_take_the_executions_of_the_routes_that_seat_guests(
    stage: SynthesizedStage,
) -> None:
    # The email API and the consumer are capped by their own reservations; the reservations API
    # keeps its own, whatever they do.
    reservations_api = stage.reservations_api[1]["Properties"]["ReservedConcurrentExecutions"]
    assert reservations_api >= 1
    for service in (EMAIL_API_SERVICE, EMAIL_CONSUMER_SERVICE):
        assert stage.function(service)[1]["Properties"]["ReservedConcurrentExecutions"] >= 1


def test_each_queue_consumer_reserves_as_many_executions_as_its_mapping_polls_with(
    stage: SynthesizedStage,
) -> None:
    for function_id in (stage.consumer[0], stage.notifier[0]):
        mapping = stage.mapping_of(function_id)["Properties"]
        reserved = stage.resources[function_id]["Properties"]["ReservedConcurrentExecutions"]
        assert reserved >= mapping["ScalingConfig"]["MaximumConcurrency"]


def test_prod_reserves_more_for_its_api_than_dev(prod: SynthesizedStage, dev: SynthesizedStage) -> None:
    for service in (EMAIL_API_SERVICE, RESERVATIONS_API_SERVICE):
        assert (
            prod.function(service)[1]["Properties"]["ReservedConcurrentExecutions"]
            > dev.function(service)[1]["Properties"]["ReservedConcurrentExecutions"]
        )


def test_prod_keeps_logs_three_months_and_local_a_day(
    prod: SynthesizedStage, local: SynthesizedStage
) -> None:
    prod.template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})
    local.template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 1})


def test_aws_stages_trace_with_xray(aws_stage: SynthesizedStage) -> None:
    assert aws_stage.consumer_properties["TracingConfig"] == {"Mode": "Active"}
    assert aws_stage.consumer_environment["POWERTOOLS_TRACE_DISABLED"] == "false"


def test_the_local_stage_does_not_trace(local: SynthesizedStage) -> None:
    assert "TracingConfig" not in local.consumer_properties
    assert local.consumer_environment["ENABLE_TRACING"] == "false"
    assert local.consumer_environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    granted = {str(statement["Action"]) for statement in local.consumer_statements}
    assert not any("xray:" in actions for actions in granted)


def test_powertools_knows_the_service_namespace_and_log_level(stage: SynthesizedStage) -> None:
    stage.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "POWERTOOLS_SERVICE_NAME": "email-consumer",
                        "POWERTOOLS_METRICS_NAMESPACE": "BookingDurability",
                        "POWERTOOLS_LOG_LEVEL": stage.settings.observability.log_level,
                    }
                )
            }
        },
    )


def test_the_consumer_gets_the_dependencies_then_the_domain_layer(stage: SynthesizedStage) -> None:
    layer_ids = [layer["Ref"] for layer in stage.consumer_properties["Layers"]]
    staged = [
        stage.staged_asset(stage.resources[layer_id]["Properties"]["Content"]) for layer_id in layer_ids
    ]
    dependencies, domain = staged
    # Lambda puts /opt/python on sys.path: both layers ship a python/ folder
    assert (dependencies / "python" / "pydantic" / "__init__.py").is_file()
    assert (domain / "python" / "booking_durability" / "__init__.py").is_file()
    # requirements.txt feeds the dependencies layer; it is not part of the domain layer
    assert not (domain / "requirements.txt").exists()
    for layer_id in layer_ids:
        stage.template.has_resource_properties(
            "AWS::Lambda::LayerVersion",
            {
                "CompatibleRuntimes": ["python3.13"],
                "CompatibleArchitectures": ["arm64"],
                "Content": stage.resources[layer_id]["Properties"]["Content"],
            },
        )


def test_the_dependencies_layer_holds_arm64_wheels_for_the_runtime(dev: SynthesizedStage) -> None:
    dependencies_id = dev.consumer_properties["Layers"][0]["Ref"]
    site = dev.staged_asset(dev.resources[dependencies_id]["Properties"]["Content"]) / "python"
    [extension] = (site / "pydantic_core").glob("_pydantic_core.*.so")
    # A compiled module for CPython 3.13 on aarch64, not for the build machine
    assert extension.name == "_pydantic_core.cpython-313-aarch64-linux-gnu.so"
    # And babel ships only the locales the product renders
    locales = {path.stem.split("_")[0] for path in (site / "babel" / "locale-data").glob("*.dat")}
    assert locales == {"root", "en", "es"}


def test_both_layers_ship_bytecode_the_runtime_loads_without_reading_the_sources(
    dev: SynthesizedStage,
) -> None:
    # Lambda mounts layers read-only: what ships without bytecode is compiled at every cold start
    tag = f"cpython-{LAMBDA_PYTHON_VERSION.replace('.', '')}"
    compiled_here = bytecode_compiler(LAMBDA_PYTHON_VERSION) is not None
    dependencies, domain = (
        dev.staged_asset(dev.resources[layer["Ref"]]["Properties"]["Content"]) / "python"
        for layer in dev.consumer_properties["Layers"]
    )
    for site, module in ((dependencies, "pydantic/main.py"), (domain, "booking_durability/api/resolver.py")):
        source = site / module
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        stray = [path.name for path in site.rglob("*.pyc") if f".{tag}." not in path.name]
        # Nothing compiled for another Python (the build machine's caches stay out)
        assert stray == []
        if not compiled_here:
            # A machine without CPython 3.13 builds the layers without bytecode, and says so
            assert not cached.exists()
            continue
        # PEP 552 flags 0b01: hash-based and unchecked, so the zip's reset file times do not void it
        header = cached.read_bytes()[:16]
        assert struct.unpack("<I", header[4:8])[0] == 0b01
        missing = [
            path.relative_to(site).as_posix()
            for path in site.rglob("*.py")
            if not (path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc").exists()
        ]
        assert missing == []
    if not compiled_here:
        # Said in the summary, not passed in silence: the bytecode itself went unchecked
        pytest.skip(f"no CPython {LAMBDA_PYTHON_VERSION} on this machine: the layers carry no bytecode")


def test_the_consumer_and_its_layers_fit_lambdas_unzipped_size_limit(dev: SynthesizedStage) -> None:
    # Lambda refuses more than 250 MB unzipped for a function and all its layers together
    folders = [dev.staged_asset(dev.consumer_properties["Code"])] + [
        dev.staged_asset(dev.resources[layer["Ref"]]["Properties"]["Content"])
        for layer in dev.consumer_properties["Layers"]
    ]
    total = sum(path.stat().st_size for folder in folders for path in folder.rglob("*") if path.is_file())
    assert total < 250 * 1024 * 1024


def test_the_trimmed_babel_still_renders_every_locale_the_product_offers(dev: SynthesizedStage) -> None:
    # Given the dependencies layer's babel (pure Python, so this machine can load it)
    dependencies_id = dev.consumer_properties["Layers"][0]["Ref"]
    site = dev.staged_asset(dev.resources[dependencies_id]["Properties"]["Content"]) / "python"
    script = (
        "import babel, datetime\n"
        "from babel.dates import format_datetime\n"
        "moment = datetime.datetime(2026, 3, 14, 19, 30)\n"
        "print(babel.__file__)\n"
        "for locale in ('en', 'en_GB', 'es', 'es_MX', 'es_419'):\n"
        "    print(format_datetime(moment, 'full', locale=locale))\n"
    )
    # When it formats a booking time in English and Spanish, regional variants included
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    # Then every locale loads from the layer (its parent chain survived the trim)
    assert completed.returncode == 0, completed.stderr[-2000:]
    origin, *rendered = completed.stdout.splitlines()
    assert origin.startswith(str(site))
    assert "Saturday" in rendered[0]
    assert all("sábado" in line for line in rendered[2:])


def test_each_function_has_its_own_service_name_and_role(stage: SynthesizedStage) -> None:
    functions = [function["Properties"] for function in stage.of_type("AWS::Lambda::Function").values()]
    services = [properties["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] for properties in functions]
    assert sorted(services) == ["drift-sweep", "email-api", "email-consumer", "notifier", "reservations-api"]
    roles = [properties["Role"]["Fn::GetAtt"][0] for properties in functions]
    assert len(set(roles)) == len(roles)


def test_a_function_whose_handler_is_missing_fails_the_synth(tmp_path: Path) -> None:
    # Given a code folder without the handler's module
    stack = cdk.Stack(cdk.App(), "Scratch")
    # When a function is built from it, then the synth stops and names the file to create
    with pytest.raises(FileNotFoundError, match=r"handler\.py is missing"):
        ServiceFunction(
            stack,
            "Orphan",
            settings=stage_settings("local"),
            service="orphan",
            description="no handler",
            code_dir=tmp_path,
            handler="handler.handler",
            layers=[],
            environment={},
            timeout_seconds=3,
            memory_mb=128,
            reserved_concurrency=1,
        )


#: What no function's code does: scan or batch-write tables, read a stream, or describe what it
#: already knows by name (tests/integration/test_least_privilege.py derives each role's exact
#: actions from the code; this holds every stage to the worst of them). Deleting is held apart:
#: see the test below.
NEVER_GRANTED = {
    "dynamodb:Scan",
    "dynamodb:BatchWriteItem",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:DescribeTable",
    "sqs:GetQueueUrl",
    "secretsmanager:DescribeSecret",
}


def test_no_function_may_delete_scan_read_streams_or_describe(stage: SynthesizedStage) -> None:
    for function_id in stage.of_type("AWS::Lambda::Function"):
        granted = {action for actions in stage.touched(function_id).values() for action in actions}
        assert not granted & NEVER_GRANTED, function_id
        assert not {action for action in granted if "*" in action}, function_id


def test_the_only_items_a_function_may_delete_are_booking_ids_a_drift_flow_claimed(
    stage: SynthesizedStage,
) -> None:
    # Ending a drift flow unrecovered frees its claimed booking id (the reservations API's repeat
    # and the drift sweep both end flows); the grant reaches booking items only, by partition key.
    deleting = set()
    for function_id in stage.of_type("AWS::Lambda::Function"):
        for statement in stage.role_statements(function_id):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "dynamodb:DeleteItem" not in actions:
                continue
            deleting.add(
                stage.resources[function_id]["Properties"]["Environment"]["Variables"][
                    "POWERTOOLS_SERVICE_NAME"
                ]
            )
            assert actions == ["dynamodb:DeleteItem"], function_id
            assert statement["Resource"] == {"Fn::GetAtt": [stage.reservations_table[0], "Arn"]}
            assert statement["Condition"] == {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{BOOKING_KEY_PREFIX}*"]}
            }
    assert deleting == {RESERVATIONS_API_SERVICE, DRIFT_SWEEP_SERVICE}
    # The prefix is the runtime's own
    assert runtime.booking_key("bk_1")["pk"] == f"{BOOKING_KEY_PREFIX}bk_1"
