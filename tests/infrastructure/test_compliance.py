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


def test_every_queue_is_encrypted_and_refuses_requests_without_tls(stage: SynthesizedStage) -> None:
    queues = stage.of_type("AWS::SQS::Queue")
    assert queues
    policies = stage.of_type("AWS::SQS::QueuePolicy").values()
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, queue_id
        denied = [
            statement
            for policy in policies
            if {"Ref": queue_id} in policy["Properties"]["Queues"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement["Action"] == "sqs:*"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denied, f"{queue_id} accepts requests without TLS"


def test_the_local_stage_keeps_every_queues_retries_quick(local: SynthesizedStage) -> None:
    # docs/reference/local-stack.md#quick-retries: visibility timeouts at most 60 s, delays at most 5 s (SQS
    # defaults: 30 s, 0 s)
    queues = local.of_type("AWS::SQS::Queue")
    assert queues
    for queue_id, queue in queues.items():
        assert queue["Properties"].get("VisibilityTimeout", 30) <= 60, queue_id
        assert queue["Properties"].get("DelaySeconds", 0) <= 5, queue_id


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


# What the IAM-authorized API is acknowledged for, on every stage (see stacks/api.py).
API_ACKNOWLEDGEMENTS = {
    # Request validation lives in the functions, which answer the API's 422 shape
    "Annotation::AwsSolutions-APIG2",
    # No WAF: every method needs SigV4, the stage throttles
    "Annotation::AwsSolutions-APIG3",
    # No Cognito: callers are IAM principals
    "Annotation::AwsSolutions-COG4",
    # API Gateway's account logging role uses the AWS-managed policy made for it
    "Annotation::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AmazonAPIGatewayPushToCloudWatchLogs]",
}


# The outbox pipe's DLQ is a dead-letter queue that cdk-nag does not recognize as one.
PIPE_DLQ_ACKNOWLEDGEMENT = "Annotation::AwsSolutions-SQS3"
# The functions run python3.13, the newest CPython the build machines compile the layers' bytecode with
RUNTIME_ACKNOWLEDGEMENT = "Annotation::AwsSolutions-L1"
# The callers' route-group policies name path parameters as '*' in execute-api ARNs, each ARN
# acknowledged on its own policy (test_caller_policies.py checks them one by one).
EXECUTE_API_WILDCARD = "Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:"


def _rules_besides_caller_route_wildcards(stage: SynthesizedStage) -> set[str]:
    caller_policies = f"/{stage.settings.stack_name}/CallerPolicies/"
    rules = set()
    for where in stage.acknowledgements:
        path, rule = where.split(" ", 1)
        if rule.startswith(EXECUTE_API_WILDCARD):
            # Only ever on the callers' policies
            assert path.startswith(caller_policies), where
            continue
        rules.add(rule)
    return rules


def test_aws_stages_acknowledge_exactly_the_secret_rotation_xray_wildcard_pipe_dlq_iam_only_api_and_runtime(
    aws_stage: SynthesizedStage,
) -> None:
    assert _rules_besides_caller_route_wildcards(aws_stage) == {
        "Annotation::AwsSolutions-SMG4",
        "Annotation::AwsSolutions-IAM5[Resource::*]",
        PIPE_DLQ_ACKNOWLEDGEMENT,
        RUNTIME_ACKNOWLEDGEMENT,
    } | (API_ACKNOWLEDGEMENTS)


def test_only_the_outbox_pipes_dlq_is_acknowledged_as_a_queue_without_a_dlq(stage: SynthesizedStage) -> None:
    paths = {
        where.split(" ", 1)[0] for where in stage.acknowledgements if where.endswith(PIPE_DLQ_ACKNOWLEDGEMENT)
    }
    [path] = paths
    # And that construct is the queue the pipe names as its dead-letter queue
    logical_ids = [
        entry["data"] for entry in stage.metadata[f"{path}/Resource"] if entry["type"] == "aws:cdk:logicalId"
    ]
    assert logical_ids == [stage.pipe_dlq[0]]


def test_the_xray_wildcard_is_acknowledged_only_on_the_roles_of_traced_functions(
    aws_stage: SynthesizedStage,
) -> None:
    paths = {
        where.split(" ", 1)[0]
        for where in aws_stage.acknowledgements
        if where.endswith("AwsSolutions-IAM5[Resource::*]")
    }
    prefix = f"/{aws_stage.settings.stack_name}"
    assert paths == {
        f"{prefix}/EmailPipeline/Consumer/Role",
        f"{prefix}/Api/EmailApi/Role",
        f"{prefix}/Api/ReservationsApi/Role",
        f"{prefix}/Notifications/Notifier/Role",
        f"{prefix}/DriftSweep/Sweep/Role",
    }


def test_the_local_stage_acknowledges_only_the_iam_only_api_the_pipe_dlq_and_the_runtime(
    local: SynthesizedStage,
) -> None:
    # No secret (SMTP and the webhook sink on loopback) and no tracing: only the API's design, the
    # pipe's DLQ and the runtime the layers' bytecode is compiled for are left to justify
    assert _rules_besides_caller_route_wildcards(local) == API_ACKNOWLEDGEMENTS | {
        PIPE_DLQ_ACKNOWLEDGEMENT,
        RUNTIME_ACKNOWLEDGEMENT,
    }


def test_the_runtime_is_acknowledged_on_each_function_with_the_reason_it_is_not_the_newest(
    stage: SynthesizedStage,
) -> None:
    paths = {
        where.split(" ", 1)[0] for where in stage.acknowledgements if where.endswith(RUNTIME_ACKNOWLEDGEMENT)
    }
    prefix = f"/{stage.settings.stack_name}"
    assert paths == {
        f"{prefix}/EmailPipeline/Consumer/Function",
        f"{prefix}/Api/EmailApi/Function",
        f"{prefix}/Api/ReservationsApi/Function",
        f"{prefix}/Notifications/Notifier/Function",
        f"{prefix}/DriftSweep/Sweep/Function",
    }


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


def test_stacks_import_nothing_of_the_runtime_package_but_its_shared_names() -> None:
    from tests.infrastructure.test_metric_names import SHARED_WITH_STACKS

    imported: set[str] = set()
    for source in (REPO_ROOT / "stacks").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert "aws_cdk" in imported
    runtime = {name for name in imported if name.split(".")[0] == "booking_durability"}
    # Only its standard-library-only modules (stacks/__init__.py).
    assert runtime <= SHARED_WITH_STACKS, runtime - SHARED_WITH_STACKS


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
    # When an infra engineer synthesizes production with it, with the context prod needs
    context = ["-c", "email_sender=Bookings <bookings@mail.bookings-platform.com>", "-c", "webhook=on"]
    completed = _run_offline(
        [str(cli), "synth", "--quiet", "-c", "stage=prod", *context, "-o", str(tmp_path / "cdk.out")],
        tmp_path,
    )
    # Then the stack is synthesized, cdk-nag included, with nothing to acknowledge left over
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "cdk.out" / "BookingDurability-prod.template.json").exists()


@pytest.mark.parametrize(
    ("context", "said"),
    [
        # prod as shipped: the placeholder sender and admin address, and no webhook
        ([], ["-c email_sender=", "drift notifications have no channel", "-c webhook=on"]),
        # a sender, but drift would go to an example domain
        (
            [
                "-c",
                "email_sender=Bookings <bookings@mail.bookings-platform.com>",
                "-c",
                "admin_email=ops@example.com",
            ],
            ["drift notifications have no channel", "-c admin_email="],
        ),
        # the webhook URL given at synth time, where it would be in the template
        (["-c", "webhook_url=https://hooks.example.com/tok_in_path"], ["-c webhook=on", "WebhookSecretArn"]),
    ],
)
def test_a_prod_synth_without_real_addresses_stops_with_what_to_pass_not_a_traceback(
    tmp_path: Path, context: list[str], said: list[str]
) -> None:
    # When prod is synthesized without what the deploying team must give it
    completed = _run_offline(
        [sys.executable, "app.py", "-c", "stage=prod", *context, "-o", str(tmp_path / "cdk.out")], tmp_path
    )
    # Then the synth stops with one line saying what to pass, and writes no template
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    [line] = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(("error: stage 'prod': ", "error: -c webhook_url"))
    for words in said:
        assert words in line
    assert "tok_in_path" not in completed.stderr
    assert "ops@example.com" not in completed.stderr
    assert not (tmp_path / "cdk.out" / "BookingDurability-prod.template.json").exists()
