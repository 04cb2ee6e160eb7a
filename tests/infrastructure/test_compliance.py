"""What keeps the stacks deployable and reviewable: cfn-lint, cdk-nag, no synth-time AWS calls."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aws_cdk import aws_sqs as sqs
from cfnlint.api import ManualArgs, lint

from app import build_app, stack_environment

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedApp, SynthesizedStage

REPO_ROOT = Path(__file__).resolve().parents[2]

# cfn-lint warnings the CDK itself produces, each with why it is harmless.
KNOWN_CFN_LINT_WARNINGS = {
    # Lambda functions get an explicit DependsOn on their role (and its policy) next to the GetAtt:
    # the policy must exist before the function can be invoked, the role dependency is redundant.
    "W3005",
}


def test_cfn_lint_finds_no_error(stage: SynthesizedStage) -> None:
    # When cfn-lint checks the synthesized template in two regions the service may run in
    matches = lint(json.dumps(stage.template_json), config=ManualArgs(regions=["eu-west-1", "us-east-1"]))
    # Then nothing is an error, and no warning but the CDK's own known one
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.severity == "error"]
    assert errors == []
    warnings = [f"{m.rule.id} {m.message}" for m in matches if m.rule.severity == "warning"]
    assert [w for w in warnings if w.split()[0] not in KNOWN_CFN_LINT_WARNINGS] == []


def test_cdk_nag_reports_nothing_unacknowledged(synthesized: SynthesizedApp) -> None:
    # The AwsSolutions pack writes every unacknowledged finding, error or warning, to the report
    violations = [
        f"{violation['ruleName']} at {[c['constructPath'] for c in violation['violatingConstructs']]}"
        for plugin in synthesized.validation_report["pluginReports"]
        for violation in plugin["violations"]
    ]
    assert violations == []


def test_the_assembly_carries_no_warning_or_error_annotation(stage: SynthesizedStage) -> None:
    flagged = [
        f"{message.level} {message.id}: {message.entry.data}"
        for message in stage.messages
        if str(message.level).rsplit(".", 1)[-1] in {"WARNING", "ERROR"}
    ]
    assert flagged == []


def test_every_acknowledgement_gives_a_reason_on_a_specific_construct(stage: SynthesizedStage) -> None:
    for where, reason in stage.acknowledgements.items():
        path, rule = where.split(" ", 1)
        # A written reason, not a placeholder
        assert len(reason.split()) >= 12, f"{rule} on {path} needs a real reason"
        # Scoped to the construct that needs it, never a whole stack
        assert path.count("/") >= 2, f"{rule} is acknowledged for all of {path}"


def test_aws_stages_acknowledge_exactly_the_secret_rotation_and_xray_wildcard(
    aws_stage: SynthesizedStage,
) -> None:
    rules = {where.split(" ", 1)[1] for where in aws_stage.acknowledgements}
    assert rules == {"Annotation::AwsSolutions-SMG4", "Annotation::AwsSolutions-IAM5[Resource::*]"}


def test_the_local_stage_needs_no_acknowledgement(local: SynthesizedStage) -> None:
    # No secret (SMTP on loopback) and no tracing: nothing to justify
    assert local.acknowledgements == {}


def test_cdk_nag_fails_the_synth_on_a_non_compliant_resource(tmp_path: Path) -> None:
    # Given the app as app.py builds it, and a queue that accepts plain HTTP and has no DLQ
    app = build_app(["local"], outdir=tmp_path)
    stack = app.node.find_child("BookingDurability-local")
    sqs.Queue(stack, "Careless", enforce_ssl=False, encryption=sqs.QueueEncryption.SQS_MANAGED)
    # When it is synthesized
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    # Then cdk-nag names the rule and the construct
    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    assert ("AwsSolutions-SQS4", "BookingDurability-local/Careless/Resource") in findings


def test_stacks_never_import_the_runtime_package() -> None:
    imported: set[str] = set()
    for source in (REPO_ROOT / "stacks").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert "aws_cdk" in imported
    assert not {name for name in imported if name.split(".")[0] == "booking_durability"}


def test_the_stack_takes_account_and_region_only_from_cdk_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    assert stack_environment() is None
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "111122223333")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    environment = stack_environment()
    assert environment is not None
    assert (environment.account, environment.region) == ("111122223333", "eu-west-1")


def _run_offline(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` from the repo root with no AWS credentials, profile, region or metadata."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "CDK_DEFAULT_"))
    }
    environment |= {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


def test_python_app_py_synthesizes_the_local_stage_offline_without_credentials(tmp_path: Path) -> None:
    # Given a shell with no AWS credentials, profile or region, and no instance metadata to fall back on
    outdir = tmp_path / "cdk.out"
    # When the app runs the way the local stack runs it
    completed = _run_offline([sys.executable, "app.py", "-c", "stage=local", "-o", str(outdir)], tmp_path)
    # Then it succeeds and the template is where the local stack looks for it
    assert completed.returncode == 0, completed.stderr[-3000:]
    template = json.loads((outdir / "BookingDurability-local.template.json").read_text())
    assert any(
        resource["Type"] == "AWS::Lambda::EventSourceMapping" for resource in template["Resources"].values()
    )


def test_the_pinned_cdk_cli_synthesizes_offline_without_credentials(tmp_path: Path) -> None:
    # Given the CDK CLI the repo pins (package.json), and a shell with no AWS settings at all
    cli = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "run `make install` (npm ci) first"
    # When an infra engineer synthesizes production with it
    completed = _run_offline(
        [str(cli), "synth", "--quiet", "-c", "stage=prod", "-o", str(tmp_path / "cdk.out")], tmp_path
    )
    # Then the stack is synthesized, cdk-nag included, with nothing to acknowledge left over
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "cdk.out" / "BookingDurability-prod.template.json").exists()
