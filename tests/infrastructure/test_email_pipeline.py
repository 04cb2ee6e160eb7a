"""The email pipeline as synthesized: queues, event source, consumer settings, grants, table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from booking_durability.settings.email_consumer import ConsumerSettings
from stacks.service_stack import ServiceStack
from stacks.settings import derive, stage_settings

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage


CONSUMER_DIR = Path(__file__).resolve().parents[2] / "lambdas" / "email_consumer"
RECEIVE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
#: The logical ids the email queue and its DLQ have on every deployed stage. CloudFormation
#: replaces a resource whose logical id changes, and a replaced queue takes its messages with it
#: (emails waiting for their deliver_at, unread dead letters).
DEPLOYED_EMAIL_QUEUE_ID = "EmailPipelineEmailQueue74596A9B"
DEPLOYED_EMAIL_DLQ_ID = "EmailPipelineEmailDlq8E8EA4A0"


# --- queues ---------------------------------------------------------------------------------


def test_the_email_queues_keep_their_deployed_logical_ids(stage: SynthesizedStage) -> None:
    # A refactor that moves the queues in the construct tree must not make a deploy replace them
    assert stage.email_queue[0] == DEPLOYED_EMAIL_QUEUE_ID
    assert stage.email_dlq[0] == DEPLOYED_EMAIL_DLQ_ID


def test_the_email_queue_is_encrypted_bounded_and_redrives_after_five_receives(
    stage: SynthesizedStage,
) -> None:
    settings = stage.settings
    queue_id, _ = stage.email_queue
    dlq_id, _ = stage.email_dlq
    stage.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "SqsManagedSseEnabled": True,
            "DelaySeconds": settings.email_queue.delivery_delay_seconds,
            "MaximumMessageSize": 262144,
            "MessageRetentionPeriod": 4 * 24 * 3600,
            "VisibilityTimeout": settings.consumer.visibility_timeout_seconds,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5},
        },
    )
    assert queue_id != dlq_id


def test_the_visibility_timeout_covers_six_consumer_timeouts(stage: SynthesizedStage) -> None:
    visibility = stage.email_queue[1]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * stage.consumer_properties["Timeout"]


def test_the_dlq_is_encrypted_and_keeps_messages_longer_than_the_queue(stage: SynthesizedStage) -> None:
    _, queue = stage.email_queue
    _, dlq = stage.email_dlq
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["Properties"]["MessageRetentionPeriod"] > queue["Properties"]["MessageRetentionPeriod"]
    assert "RedrivePolicy" not in dlq["Properties"]


def test_the_local_stage_keeps_retries_quick(local: SynthesizedStage) -> None:
    # docs/reference/local-stack.md#quick-retries: delay hops at most 5 s, backoff base at most 2 s (the
    # queues: test_compliance.py)
    assert int(local.consumer_environment["MAX_DELAY_HOP_SECONDS"]) <= 5
    assert int(local.consumer_environment["BACKOFF_BASE_SECONDS"]) <= 2
    assert local.consumer_environment["THROTTLE_BACKOFF_SECONDS"] == "1"
    assert local.consumer_properties["Timeout"] <= 10


# --- event source ---------------------------------------------------------------------------


def test_the_consumer_reads_the_email_queue_with_partial_batch_responses(stage: SynthesizedStage) -> None:
    consumer = stage.settings.consumer
    queue_id, _ = stage.email_queue
    function_id, _ = stage.consumer
    stage.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
            "FunctionName": {"Ref": function_id},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            # Plain numbers: the local stack reads them from the template.
            "BatchSize": consumer.batch_size,
            "MaximumBatchingWindowInSeconds": consumer.max_batching_window_seconds,
            "ScalingConfig": {"MaximumConcurrency": consumer.max_concurrency},
        },
    )


# --- consumer function ----------------------------------------------------------------------


def test_the_consumer_runs_the_email_consumer_handler(stage: SynthesizedStage) -> None:
    properties = stage.consumer_properties
    assert properties["Handler"] == "handler.handler"
    assert properties["Timeout"] == stage.settings.consumer.timeout_seconds
    assert properties["MemorySize"] == stage.settings.consumer.memory_mb
    # And its code is the lambdas/email_consumer folder, caches left out
    staged = stage.staged_asset(properties["Code"])
    assert (staged / "handler.py").read_bytes() == (CONSUMER_DIR / "handler.py").read_bytes()
    assert _files(staged) == _files(CONSUMER_DIR)


def test_the_consumer_environment_carries_every_runtime_setting(stage: SynthesizedStage) -> None:
    # Given the names booking_durability.settings.ConsumerSettings reads
    settings = stage.settings
    queue_id, _ = stage.email_queue
    dlq_id, _ = stage.email_dlq
    table_id, _ = stage.deliveries_table
    environment = stage.consumer_environment
    # Then each is set from the stage settings or the stack's own resources
    expected = {
        "STAGE": settings.name,
        "DELIVERIES_TABLE": {"Ref": table_id},
        "EMAIL_QUEUE_URL": {"Ref": queue_id},
        "EMAIL_DLQ_URL": {"Ref": dlq_id},
        "MAX_DELAY_HOP_SECONDS": str(settings.delivery.max_delay_hop_seconds),
        "SEND_CONCURRENCY": str(settings.consumer.send_concurrency),
        "BACKOFF_BASE_SECONDS": str(settings.delivery.backoff_base_seconds),
        "THROTTLE_BACKOFF_SECONDS": str(settings.delivery.throttle_backoff_seconds),
        "MAX_THROTTLE_DEFERRALS": str(settings.delivery.max_throttle_deferrals),
        "MAX_RECEIVES": "5",
        "LEASE_SECONDS": str(settings.consumer.lease_seconds),
        "EMAIL_PROVIDER": settings.delivery.provider,
        "EMAIL_SENDER": settings.delivery.sender,
        "ENABLE_TRACING": "true" if settings.observability.tracing else "false",
    }
    assert {name: environment.get(name) for name in expected} == expected


def test_the_consumer_environment_is_what_the_runtime_settings_model_accepts(
    stage: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the template's environment, with Refs resolved the way the local stack resolves them
    for name, value in stage.consumer_environment.items():
        monkeypatch.setenv(name, value if isinstance(value, str) else f"resolved-{name.lower()}")
    # When the consumer validates it at cold start (its settings model reads the environment)
    settings = ConsumerSettings()
    # Then it reads the stage's values, not its own defaults
    assert settings.lease_seconds == stage.settings.consumer.lease_seconds
    assert settings.max_receives == stage.settings.email_queue.max_receive_count
    assert settings.email_provider == stage.settings.delivery.provider


def test_aws_stages_send_through_resend_with_the_key_from_secrets_manager(
    aws_stage: SynthesizedStage,
) -> None:
    environment = aws_stage.consumer_environment
    secret_id, _ = aws_stage.the_one("AWS::SecretsManager::Secret")
    assert environment["EMAIL_PROVIDER"] == "resend"
    assert environment["PROVIDER_SECRET_ARN"] == {"Ref": secret_id}
    assert "SMTP_HOST" not in environment


def test_the_local_stage_sends_to_the_loopback_smtp_sink_without_a_secret(local: SynthesizedStage) -> None:
    environment = local.consumer_environment
    assert environment["EMAIL_PROVIDER"] == "smtp"
    assert (environment["SMTP_HOST"], environment["SMTP_PORT"]) == ("127.0.0.1", "1025")
    assert "PROVIDER_SECRET_ARN" not in environment


def test_no_secret_value_is_in_the_environment_or_the_template(stage: SynthesizedStage) -> None:
    # The only credential-shaped variable is the secret's ARN, a reference
    for name, value in stage.consumer_environment.items():
        if any(word in name for word in ("SECRET", "KEY", "PASSWORD", "TOKEN")):
            assert name == "PROVIDER_SECRET_ARN"
            assert isinstance(value, dict)
    # And the secret's value is generated or set by operators, never written in the template
    for secret in stage.of_type("AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"]


# --- grants ---------------------------------------------------------------------------------


def test_the_consumer_may_consume_and_requeue_on_the_email_queue(stage: SynthesizedStage) -> None:
    queue_arn = {"Fn::GetAtt": [stage.email_queue[0], "Arn"]}
    assert RECEIVE | {"sqs:SendMessage"} <= stage.actions_on(queue_arn)


def test_the_consumer_may_only_send_to_the_dlq(stage: SynthesizedStage) -> None:
    dlq_actions = stage.actions_on({"Fn::GetAtt": [stage.email_dlq[0], "Arn"]})
    assert "sqs:SendMessage" in dlq_actions
    assert not dlq_actions & RECEIVE


def test_the_consumer_may_update_and_query_the_deliveries_table_and_no_more(stage: SynthesizedStage) -> None:
    # Every claim and status change is one conditional update; suppress_if_sent queries a booking
    actions = stage.actions_on({"Fn::GetAtt": [stage.deliveries_table[0], "Arn"]})
    assert actions == {"dynamodb:UpdateItem", "dynamodb:Query"}


def test_the_consumer_may_read_the_provider_secret(aws_stage: SynthesizedStage) -> None:
    secret_id, _ = aws_stage.the_one("AWS::SecretsManager::Secret")
    assert aws_stage.actions_on({"Ref": secret_id}) == {"secretsmanager:GetSecretValue"}


def test_an_ses_stage_may_send_as_its_sender_domain_and_needs_no_secret() -> None:
    # Given dev switched to SES (a separate small synth: no shipped stage uses SES)
    ses_settings = derive(
        stage_settings("dev"),
        delivery={
            "provider": "ses",
            "uses_credentials_secret": False,
            "sender": "Bookings <b@mail.example.org>",
        },
    )
    template = Template.from_stack(ServiceStack(cdk.App(), ses_settings))
    # Then the consumer may call ses:SendEmail on that domain's identity, and reads no secret
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                # SES v2's SendEmail is authorized by this one action alone
                                "Action": "ses:SendEmail",
                                "Effect": "Allow",
                                "Resource": {
                                    "Fn::Join": ["", Match.array_with([":identity/mail.example.org"])]
                                },
                            }
                        )
                    ]
                )
            }
        },
    )
    assert template.find_resources("AWS::SecretsManager::Secret") == {}
    functions = template.find_resources("AWS::Lambda::Function")
    [consumer] = [
        f
        for f in functions.values()
        if f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "email-consumer"
    ]
    assert consumer["Properties"]["Environment"]["Variables"]["EMAIL_PROVIDER"] == "ses"
    assert "PROVIDER_SECRET_ARN" not in consumer["Properties"]["Environment"]["Variables"]


def test_no_stage_that_uses_another_provider_may_send_through_ses(stage: SynthesizedStage) -> None:
    assert stage.settings.delivery.provider != "ses"
    granted = {action for statement in stage.consumer_statements for action in _actions(statement)}
    assert not {action for action in granted if action.startswith("ses:")}


def test_the_consumer_writes_its_logs_to_its_own_log_group_only(stage: SynthesizedStage) -> None:
    log_group = stage.consumer_properties["LoggingConfig"]["LogGroup"]
    actions = stage.actions_on({"Fn::GetAtt": [log_group["Ref"], "Arn"]})
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents"}
    role_id = stage.consumer_properties["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in stage.resources[role_id]["Properties"]


def test_the_consumer_may_requeue_to_its_own_trigger_without_lambda_cutting_the_chain(
    stage: SynthesizedStage,
) -> None:
    # A week's delay is ~670 hops of 900 s through the email queue: Lambda's recursive-loop
    # detection would drop the message after 16 of them unless the function allows the loop
    assert stage.consumer_properties["RecursiveLoop"] == "Allow"


# --- deliveries table -----------------------------------------------------------------------


def test_the_deliveries_table_is_keyed_by_booking_and_email(stage: SynthesizedStage) -> None:
    table_id, _ = stage.deliveries_table
    stage.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "booking_id", "KeyType": "HASH"},
                {"AttributeName": "email_key", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": "booking_id", "AttributeType": "S"},
                    {"AttributeName": "email_key", "AttributeType": "S"},
                ]
            ),
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            # AWS-managed KMS key: SSE on, no customer key
            "SSESpecification": {"SSEEnabled": True},
        },
    )
    assert "KMSMasterKeyId" not in stage.resources[table_id]["Properties"]["SSESpecification"]


def test_prod_keeps_the_deliveries_table_when_the_stack_goes(prod: SynthesizedStage) -> None:
    table_id, _ = prod.deliveries_table
    assert prod.resources[table_id]["DeletionPolicy"] == "Retain"
    assert prod.resources[table_id]["UpdateReplacePolicy"] == "Retain"


def test_dev_and_local_tables_go_with_their_stack(dev: SynthesizedStage, local: SynthesizedStage) -> None:
    for stage in (dev, local):
        table_id, _ = stage.deliveries_table
        assert stage.resources[table_id]["DeletionPolicy"] == "Delete"


def _actions(statement: dict[str, object]) -> list[str]:
    actions = statement["Action"]
    return list(actions) if isinstance(actions, list) else [str(actions)]


def _files(root: Path) -> set[str]:
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
