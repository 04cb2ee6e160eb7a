"""Drift notifications as synthesized: the outbox pipe, the notifications queues, the notifier."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from app import build_app
from booking_durability.settings.notifier import NotifierSettings
from devstack.stream_worker import matches, pipe_event, render
from stacks.settings import LOCAL_WEBHOOK_SECRET, stage_settings
from tests.infrastructure.conftest import SynthesizedStage

NOTIFIER_DIR = Path(__file__).resolve().parents[2] / "lambdas" / "notifier"
# What the event source mapping polls with (the notifier's code never changes a visibility).
RECEIVE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
SEND = {"sqs:SendMessage"}
XRAY = {"xray:PutTelemetryRecords", "xray:PutTraceSegments"}
LOCAL_WEBHOOK_URL = "http://127.0.0.1:8025/webhooks/policy-drift"
STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/reservations/stream/2026-01-01T00:00:00.000"
DRIFT_EVENT = json.dumps(
    {"type": "policy_drift.recovered", "event_id": "5b0c6f0e-2d1e-4a8e-9a51-1f0f5c8d9e21", "attempts": 2},
    separators=(",", ":"),
)


def _stream_record(event_name: str, pk: str, body: str = DRIFT_EVENT) -> dict[str, Any]:
    """A DynamoDB stream record as the pipe filters and renders it (NEW_IMAGE view)."""
    keys = {"pk": {"S": pk}, "sk": {"S": "EVENT"}}
    record: dict[str, Any] = {
        "eventID": "1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": keys, "StreamViewType": "NEW_IMAGE", "SequenceNumber": "111"},
    }
    if event_name != "REMOVE":
        record["dynamodb"]["NewImage"] = {**keys, "body": {"S": body}, "event_type": {"S": "x"}}
    return pipe_event(record, stream_arn=STREAM_ARN, region="eu-west-1")


def _stream_parameters(stage: SynthesizedStage) -> dict[str, Any]:
    parameters: dict[str, Any] = stage.outbox_pipe[1]["Properties"]["SourceParameters"][
        "DynamoDBStreamParameters"
    ]
    return parameters


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


# --- the outbox pipe ------------------------------------------------------------------------


def test_the_outbox_pipe_reads_the_reservations_tables_stream_from_its_oldest_record(
    stage: SynthesizedStage,
) -> None:
    # Given the one pipe whose source is the reservations table's stream (NEW_IMAGE)
    _, pipe = stage.outbox_pipe
    parameters = _stream_parameters(stage)
    # Then a new pipe misses nothing committed before its first poll (TRIM_HORIZON), and reads
    # small batches
    assert parameters["StartingPosition"] == "TRIM_HORIZON"
    assert 1 <= parameters["BatchSize"] <= 10
    assert parameters["BatchSize"] == stage.settings.notifications.pipe_batch_size
    assert pipe["Properties"].get("DesiredState", "RUNNING") == "RUNNING"
    assert "Enrichment" not in pipe["Properties"]


def test_the_outbox_pipe_lets_only_new_outbox_items_through(stage: SynthesizedStage) -> None:
    # Given the pipe's one filter, a JSON string in the template
    [only_filter] = stage.outbox_pipe[1]["Properties"]["SourceParameters"]["FilterCriteria"]["Filters"]
    pattern = json.loads(only_filter["Pattern"])
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "OUTBOX#"}]}}}}
    # Then an outbox item's INSERT passes, and nothing else the table's stream carries does
    assert matches(pattern, _stream_record("INSERT", "OUTBOX#5b0c6f0e"))
    assert not matches(pattern, _stream_record("MODIFY", "OUTBOX#5b0c6f0e"))
    assert not matches(pattern, _stream_record("REMOVE", "OUTBOX#5b0c6f0e"))  # its TTL expiry
    assert not matches(pattern, _stream_record("INSERT", "HOLD#h_1"))
    assert not matches(pattern, _stream_record("INSERT", "VENUE#OUTBOX#casa"))


def test_the_outbox_pipe_sends_each_outbox_items_body_as_the_message_body(stage: SynthesizedStage) -> None:
    # Given the pipe's target and its input template
    properties = stage.outbox_pipe[1]["Properties"]
    assert properties["Target"] == _arn(stage.notifications_queue[0])
    template = properties["TargetParameters"]["InputTemplate"]
    assert template == "<$.dynamodb.NewImage.body.S>"
    # Then the SQS message body is exactly the drift event's JSON, the outbox item's body string
    assert render(template, _stream_record("INSERT", "OUTBOX#5b0c6f0e")) == DRIFT_EVENT


def test_a_stream_batch_the_pipe_cannot_forward_goes_to_its_own_dlq_after_bounded_retries(
    stage: SynthesizedStage,
) -> None:
    parameters = _stream_parameters(stage)
    dlq_id, dlq = stage.pipe_dlq
    # Retries are counted, never infinite (-1 would retry until the stream drops the record unseen)
    assert parameters["MaximumRetryAttempts"] == stage.settings.notifications.pipe_retry_attempts
    assert 0 <= parameters["MaximumRetryAttempts"] <= 10_000
    # Age never discards a record before the retries decide; a failing batch is halved down to the
    # one bad record, so its neighbours still go through
    assert parameters["MaximumRecordAgeInSeconds"] == -1
    assert parameters["OnPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
    # What fails lands in a queue of its own: it describes a stream batch, not a drift event
    assert parameters["DeadLetterConfig"] == {"Arn": _arn(dlq_id)}
    assert dlq_id not in {stage.notifications_queue[0], stage.notifications_dlq[0], stage.email_dlq[0]}
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in dlq["Properties"]


def test_the_pipes_role_may_read_that_stream_and_send_to_its_two_queues_and_nothing_else(
    stage: SynthesizedStage,
) -> None:
    role_id = stage.outbox_pipe[1]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    role = stage.resources[role_id]["Properties"]
    # Only EventBridge Pipes of this account may assume it
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "pipes.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # Its permissions, inline (they exist as soon as the role does)
    allowed: dict[str, set[str]] = {}
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            allowed.setdefault(json.dumps(statement["Resource"], sort_keys=True), set()).update(actions)
    stream = {"Fn::GetAtt": [stage.reservations_table[0], "StreamArn"]}
    assert allowed == {
        json.dumps(stream, sort_keys=True): {
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
        },
        json.dumps(_arn(stage.notifications_queue[0]), sort_keys=True): {"sqs:SendMessage"},
        json.dumps(_arn(stage.pipe_dlq[0]), sort_keys=True): {"sqs:SendMessage"},
    }
    # And nothing attached besides
    assert "ManagedPolicyArns" not in role
    for policy in stage.of_type("AWS::IAM::Policy").values():
        assert {"Ref": role_id} not in policy["Properties"]["Roles"]


# --- the notifications queues ---------------------------------------------------------------


def test_the_notifications_queue_is_encrypted_and_redrives_after_five_receives(
    stage: SynthesizedStage,
) -> None:
    queue_settings = stage.settings.notifications_queue
    dlq_id, dlq = stage.notifications_dlq
    _, queue = stage.notifications_queue
    properties = queue["Properties"]
    assert properties["SqsManagedSseEnabled"] is True
    assert properties["MessageRetentionPeriod"] == queue_settings.retention_days * 24 * 3600
    assert properties["VisibilityTimeout"] == stage.settings.notifications.notifier.visibility_timeout_seconds
    assert properties["VisibilityTimeout"] >= 6 * stage.notifier[1]["Properties"]["Timeout"]
    # docs/reference/notifications.md#retries-and-dead-letters: DLQ after 5 receives
    assert properties["RedrivePolicy"] == {"deadLetterTargetArn": _arn(dlq_id), "maxReceiveCount": 5}
    # The DLQ is encrypted and keeps messages longer than the queue
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["MessageRetentionPeriod"] == queue_settings.dlq_retention_days * 24 * 3600
    assert dlq["Properties"]["MessageRetentionPeriod"] > properties["MessageRetentionPeriod"]
    assert "RedrivePolicy" not in dlq["Properties"]


def test_operators_find_the_notifications_queues_by_output(stage: SynthesizedStage) -> None:
    outputs = stage.template_json["Outputs"]
    assert outputs["NotificationsQueueUrl"]["Value"] == {"Ref": stage.notifications_queue[0]}
    assert outputs["NotificationsDlqUrl"]["Value"] == {"Ref": stage.notifications_dlq[0]}
    assert outputs["NotificationsPipeDlqUrl"]["Value"] == {"Ref": stage.pipe_dlq[0]}


# --- the notifier ---------------------------------------------------------------------------


def test_the_notifier_runs_the_notifier_handler_sized_by_the_stage(stage: SynthesizedStage) -> None:
    properties = stage.notifier[1]["Properties"]
    notifier = stage.settings.notifications.notifier
    assert properties["Handler"] == "handler.handler"
    assert properties["Architectures"] == ["arm64"]
    assert (properties["Timeout"], properties["MemorySize"]) == (notifier.timeout_seconds, notifier.memory_mb)
    staged = stage.staged_asset(properties["Code"])
    assert (staged / "handler.py").read_bytes() == (NOTIFIER_DIR / "handler.py").read_bytes()
    # It never sends to the queue that triggers it, so Lambda may cut any loop
    assert properties["RecursiveLoop"] == "Terminate"


def test_the_notifier_reads_the_notifications_queue_with_partial_batch_responses(
    stage: SynthesizedStage,
) -> None:
    notifier = stage.settings.notifications.notifier
    properties = stage.notifier_mapping["Properties"]
    assert properties["EventSourceArn"] == _arn(stage.notifications_queue[0])
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Plain numbers: the local stack reads them from the template
    assert properties["BatchSize"] == notifier.batch_size <= 10
    assert properties["ScalingConfig"] == {"MaximumConcurrency": notifier.max_concurrency}
    assert notifier.max_concurrency == 2


def test_the_notifier_environment_carries_every_runtime_setting(stage: SynthesizedStage) -> None:
    settings = stage.settings
    environment = stage.notifier_environment
    expected = {
        "STAGE": settings.name,
        "POWERTOOLS_SERVICE_NAME": "notifier",
        "POWERTOOLS_METRICS_NAMESPACE": "BookingDurability",
        "NOTIFICATIONS_DLQ_URL": {"Ref": stage.notifications_dlq[0]},
        "MAX_RECEIVES": str(settings.notifications_queue.max_receive_count),
        "WEBHOOK_TIMEOUT_SECONDS": str(settings.notifications.webhook_timeout_seconds),
    }
    if not settings.notifications.webhook:
        # The email channel's settings, only where it is the channel (local has a webhook)
        expected |= {
            "ADMIN_EMAIL": settings.notifications.admin_email,
            "EMAIL_QUEUE_URL": {"Ref": stage.email_queue[0]},
            "MAX_DELAY_HOP_SECONDS": str(settings.delivery.max_delay_hop_seconds),
        }
    assert {name: environment.get(name) for name in expected} == expected
    assert environment["MAX_RECEIVES"] == "5"


def test_the_notifier_environment_is_what_the_runtime_settings_model_accepts(
    stage: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the template's environment, with Refs resolved the way the local stack resolves them
    for name, value in stage.notifier_environment.items():
        monkeypatch.setenv(name, value if isinstance(value, str) else f"resolved-{name.lower()}")
    # When the notifier validates it at cold start
    settings = NotifierSettings()
    # Then it reads the stage's values and its own resources, not its defaults
    assert settings.max_receives == stage.settings.notifications_queue.max_receive_count
    assert settings.webhook_timeout_seconds == stage.settings.notifications.webhook_timeout_seconds
    assert settings.notifications_dlq_url == "resolved-notifications_dlq_url"
    assert settings.webhook_url == stage.settings.notifications.local_webhook_url
    assert settings.uses_webhook is stage.settings.notifications.webhook
    if not settings.uses_webhook:
        assert settings.email_queue_url == "resolved-email_queue_url"


def test_aws_stages_without_a_webhook_email_the_admins(aws_stage: SynthesizedStage) -> None:
    # Given dev and prod without a webhook (prod with its admins' address, dev as shipped)
    environment = aws_stage.notifier_environment
    assert not aws_stage.settings.notifications.webhook
    # Then drift is emailed to the stage's admin address, and there is no webhook secret to read
    assert environment["ADMIN_EMAIL"] == aws_stage.settings.notifications.admin_email
    assert not {"WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_SECRET_ARN"} & set(environment)
    assert "WebhookSecretArn" not in aws_stage.template_json["Outputs"]


def test_the_local_stage_signs_for_the_webhook_sink_with_the_published_development_secret(
    local: SynthesizedStage,
) -> None:
    environment = local.notifier_environment
    # docs/reference/local-stack.md#webhook-sink: drift notifications go to the loopback webhook sink
    assert environment["WEBHOOK_URL"] == LOCAL_WEBHOOK_URL
    # Signed with a fixed, documented local-only value: whsec_ + base64 of a 24-byte key
    assert environment["WEBHOOK_SECRET"] == LOCAL_WEBHOOK_SECRET
    assert len(base64.b64decode(LOCAL_WEBHOOK_SECRET.removeprefix("whsec_"), validate=True)) == 24
    assert "WEBHOOK_SECRET_ARN" not in environment
    assert local.of_type("AWS::SecretsManager::Secret") == {}


# --- the notifier's grants ------------------------------------------------------------------


def test_the_notifier_may_consume_its_queue_send_to_its_dlq_and_queue_emails_and_nothing_else(
    aws_stage: SynthesizedStage,
) -> None:
    # Given dev and prod as shipped: no webhook, so drift goes out by email
    function_id, _ = aws_stage.notifier
    touched = aws_stage.touched(function_id)
    queue = aws_stage.arn_key(aws_stage.notifications_queue[0])
    dlq = aws_stage.arn_key(aws_stage.notifications_dlq[0])
    email_queue = aws_stage.arn_key(aws_stage.email_queue[0])
    assert set(touched) - {"*"} == {queue, dlq, email_queue, aws_stage.own_log_group_key(function_id)}
    assert touched[queue] == RECEIVE
    # It never re-queues to its own trigger, only dead-letters; it publishes admin_policy_drift
    # emails and never reads the email queue
    assert "sqs:SendMessage" not in touched[queue]
    assert touched[dlq] == SEND
    assert touched[email_queue] == SEND
    assert touched.get("*", XRAY) == XRAY


def test_the_notifier_touches_no_table(stage: SynthesizedStage) -> None:
    function_id, _ = stage.notifier
    granted = {action for actions in stage.touched(function_id).values() for action in actions}
    assert not {action for action in granted if action.startswith("dynamodb:")}
    statements = json.dumps(stage.role_statements(function_id))
    for table_id in (stage.reservations_table[0], stage.deliveries_table[0]):
        assert table_id not in statements


# --- dev and prod with a webhook (-c webhook=on) --------------------------------------------

#: prod's sender, which it needs to synthesize at all (its admin address it does not: the webhook
#: is its channel).
PROD_SENDER = {"prod": {"email_sender": "Bookings <bookings@mail.bookings-platform.com>"}}


@pytest.fixture(scope="module")
def with_webhook(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SynthesizedStage]:
    """dev and prod synthesized the way the deploying team does it, with ``-c webhook=on``."""
    outdir = tmp_path_factory.mktemp("with-webhook")
    assembly = build_app(
        ["dev", "prod"], outdir=outdir, context={"webhook": "on"}, stage_context=PROD_SENDER
    ).synth()
    stages = {
        name: SynthesizedStage.from_assembly(
            assembly, outdir, stage_settings(name, webhook="on", **PROD_SENDER.get(name, {}))
        )
        for name in ("dev", "prod")
    }
    report = json.loads((outdir / "validation-report.json").read_text())
    violations = [violation for plugin in report["pluginReports"] for violation in plugin["violations"]]
    assert violations == [], "cdk-nag reports findings with a webhook configured"
    return stages


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_a_configured_webhook_signs_with_a_secret_the_notifier_reads_by_arn(
    with_webhook: dict[str, SynthesizedStage], name: str
) -> None:
    stage = with_webhook[name]
    environment = stage.notifier_environment
    # Given the one secret the stack made for the webhook (the provider secret is the other)
    [(secret_id, secret)] = [
        (rid, res)
        for rid, res in stage.of_type("AWS::SecretsManager::Secret").items()
        if "whsec_" in res["Properties"]["Description"]
    ]
    # Then the notifier gets the secret's ARN only: the URL and the keys are its value
    assert environment["WEBHOOK_SECRET_ARN"] == {"Ref": secret_id}
    assert not {"WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_PREVIOUS_SECRET"} & set(environment)
    assert "SecretString" not in secret["Properties"]
    assert '"url"' in secret["Properties"]["Description"]
    assert '"previous"' in secret["Properties"]["Description"]
    # And may read it, while the consumer (the other secret's reader) may not
    assert "secretsmanager:GetSecretValue" in stage.actions_on(
        {"Ref": secret_id}, function_id=stage.notifier[0]
    )
    assert not stage.actions_on({"Ref": secret_id})
    # Operators find it to put its value
    assert stage.template_json["Outputs"]["WebhookSecretArn"]["Value"] == {"Ref": secret_id}


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_a_configured_webhook_passes_cdk_nag_with_its_rotation_acknowledged_and_cfn_lint(
    with_webhook: dict[str, SynthesizedStage], name: str
) -> None:
    stage = with_webhook[name]
    prefix = f"/{stage.settings.stack_name}"
    reason = stage.acknowledgements[f"{prefix}/Notifications/WebhookSecret Annotation::AwsSolutions-SMG4"]
    assert len(reason.split()) >= 12
    matches = lint(json.dumps(stage.template_json), config=ManualArgs(regions=["eu-west-1", "us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id != "W3005"] == []


def test_no_secret_value_reaches_any_environment_with_a_webhook(
    with_webhook: dict[str, SynthesizedStage],
) -> None:
    for stage in with_webhook.values():
        for function in stage.of_type("AWS::Lambda::Function").values():
            variables = function["Properties"]["Environment"]["Variables"]
            # Neither the signing keys nor the URL, which may carry the receiver's token
            assert not {"WEBHOOK_SECRET", "WEBHOOK_PREVIOUS_SECRET", "WEBHOOK_URL"} & set(variables)
        assert "whsec_" not in json.dumps(
            {rid: res for rid, res in stage.resources.items() if res["Type"] != "AWS::SecretsManager::Secret"}
        )


def test_a_webhook_stage_gives_the_notifier_no_email_channel(
    with_webhook: dict[str, SynthesizedStage], local: SynthesizedStage
) -> None:
    # Given every stage whose drift goes to a webhook: dev and prod with one, and local's sink
    for stage in (*with_webhook.values(), local):
        function_id, _ = stage.notifier
        environment = stage.notifier_environment
        assert {"WEBHOOK_URL", "WEBHOOK_SECRET_ARN"} & set(environment)
        # Then the notifier carries neither the admin's address nor the email queue
        assert not {"ADMIN_EMAIL", "EMAIL_QUEUE_URL", "MAX_DELAY_HOP_SECONDS"} & set(environment)
        assert stage.settings.notifications.admin_email not in json.dumps(stage.template_json)
        # And may not send there: besides its own queues and log group it reads only its secret
        touched = stage.touched(function_id)
        queue = stage.arn_key(stage.notifications_queue[0])
        dlq = stage.arn_key(stage.notifications_dlq[0])
        assert stage.arn_key(stage.email_queue[0]) not in touched
        others = set(touched) - {"*", queue, dlq, stage.own_log_group_key(function_id)}
        secrets = {json.dumps({"Ref": rid}) for rid in stage.of_type("AWS::SecretsManager::Secret")}
        assert others <= secrets
        assert touched[dlq] == SEND
