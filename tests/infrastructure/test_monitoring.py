"""Monitoring as synthesized: the alarms an operator relies on, where they notify, the dashboard."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_cdk.assertions import Match

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage


def _alarm_on(stage: SynthesizedStage, metric_name: str, dimension: dict[str, Any]) -> dict[str, Any]:
    found = [
        alarm["Properties"]
        for alarm in stage.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == metric_name
        and {"Name": dimension["Name"], "Value": dimension["Value"]} in alarm["Properties"]["Dimensions"]
    ]
    assert len(found) == 1, f"expected one alarm on {metric_name} of {dimension}"
    return found[0]


def _alarm_topic(stage: SynthesizedStage) -> str:
    topic_id, _ = stage.the_one("AWS::SNS::Topic")
    return topic_id


def test_any_message_in_the_dlq_raises_an_alarm(stage: SynthesizedStage) -> None:
    # Given the DLQ of the email queue
    dlq_id, _ = stage.email_dlq
    dlq_name = {"Fn::GetAtt": [dlq_id, "QueueName"]}
    # Then one visible message is enough to alarm, at once, and missing data is not an alarm
    alarm = _alarm_on(stage, "ApproximateNumberOfMessagesVisible", {"Name": "QueueName", "Value": dlq_name})
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["Period"] == 60
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]
    assert alarm["OKActions"] == [{"Ref": _alarm_topic(stage)}]


def test_consumer_errors_and_throttles_raise_alarms(stage: SynthesizedStage) -> None:
    function_id, _ = stage.consumer
    function = {"Name": "FunctionName", "Value": {"Ref": function_id}}
    for metric in ("Errors", "Throttles"):
        alarm = _alarm_on(stage, metric, function)
        assert alarm["Namespace"] == "AWS/Lambda"
        assert alarm["Statistic"] == "Sum"
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(stage: SynthesizedStage) -> None:
    topic_id = _alarm_topic(stage)
    key_ref = stage.resources[topic_id]["Properties"]["KmsMasterKeyId"]
    key_id = key_ref["Fn::GetAtt"][0]
    key = stage.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch_statements = [
        statement
        for statement in key["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch_statements, "CloudWatch could not publish alarms to the encrypted topic"
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch_statements[0]["Action"])


def test_the_alarm_topic_refuses_requests_without_tls(stage: SynthesizedStage) -> None:
    stage.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": _alarm_topic(stage)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            },
        },
    )


def test_the_dashboard_shows_the_alarms_queue_dlq_and_consumer(stage: SynthesizedStage) -> None:
    _, dashboard = stage.the_one("AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == f"BookingDurability-{stage.name}"
    # The body is a Fn::Join of literal JSON and resource references
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "Alarms" in body
    for title in ("Email queue", "Email DLQ depth", "Email consumer"):
        assert title in body
    assert stage.email_dlq[0] in body
    assert stage.consumer[0] in body


def test_a_failing_provider_raises_an_alarm_on_the_consumers_own_metric(stage: SynthesizedStage) -> None:
    # Given the consumer's Powertools service name (the "service" dimension of its EMF metrics)
    service = stage.consumer_environment["POWERTOOLS_SERVICE_NAME"]
    # Then repeated transient failures (outage, 401/403 from a bad key) alarm instead of waiting
    # for the DLQ after five receives
    alarm = _alarm_on(stage, "EmailTransientFailure", {"Name": "service", "Value": service})
    assert alarm["Namespace"] == stage.consumer_environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == stage.settings.observability.provider_failure_alarm_threshold
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_the_dashboard_breaks_dead_letters_down_by_reason(stage: SynthesizedStage) -> None:
    from booking_durability.emails.models import FailureReason

    [dashboard] = stage.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(part for part in parts if isinstance(part, str))
    # Every reason the consumer can dead-letter with has its own line
    for reason in FailureReason:
        assert f'"EmailDeadLettered","failure_reason","{reason.value}","service"' in body, reason
