"""Monitoring as synthesized: the alarms an operator relies on, where they notify, the dashboard."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from aws_cdk.assertions import Match

from booking_durability.metric_names import NAMESPACE, Metric

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage


def _alarm_on(stage: SynthesizedStage, metric_name: str, dimension: dict[str, Any]) -> dict[str, Any]:
    wanted = {"Name": dimension["Name"], "Value": dimension["Value"]}
    found = [
        alarm["Properties"]
        for alarm in stage.of_type("AWS::CloudWatch::Alarm").values()
        if any(
            metric["MetricName"] == metric_name and wanted in metric["Dimensions"]
            for metric in _metrics(alarm["Properties"])
        )
    ]
    assert len(found) == 1, f"expected one alarm on {metric_name} of {dimension}"
    return found[0]


def _metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads, whether the template names one flat or lists metric queries."""
    if "MetricName" in alarm:
        keys = ("Namespace", "MetricName", "Dimensions", "Period")
        return [{**{key: alarm.get(key) for key in keys}, "Stat": alarm["Statistic"]}]
    return [
        {
            **query["MetricStat"]["Metric"],
            "Period": query["MetricStat"]["Period"],
            "Stat": query["MetricStat"]["Stat"],
        }
        for query in alarm["Metrics"]
        if "MetricStat" in query
    ]


def _metric(alarm: dict[str, Any]) -> dict[str, Any]:
    """The one metric an alarm reads."""
    [metric] = _metrics(alarm)
    return metric


def _alarm_topic(stage: SynthesizedStage) -> str:
    topic_id, _ = stage.the_one("AWS::SNS::Topic")
    return topic_id


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(stage: SynthesizedStage) -> None:
    topic_id = _alarm_topic(stage)
    key_ref = stage.resources[topic_id]["Properties"]["KmsMasterKeyId"]
    key_id = key_ref["Fn::GetAtt"][0]
    key = stage.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    [statement] = _statements_for(key["KeyPolicy"], "cloudwatch.amazonaws.com")
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_the_alarm_topic_lets_cloudwatch_publish_for_this_stacks_alarms(stage: SynthesizedStage) -> None:
    # The stack's topic policy replaces SNS's default one: without this statement no alarm could
    # publish.
    topic_id = _alarm_topic(stage)
    [statement] = _statements_for(_topic_policy(stage, topic_id), "cloudwatch.amazonaws.com")
    assert (statement["Effect"], statement["Action"]) == ("Allow", "sns:Publish")
    assert statement["Resource"] == {"Ref": topic_id}


def test_every_service_principal_in_a_resource_policy_is_held_to_this_stacks_requests(
    stage: SynthesizedStage,
) -> None:
    # Given every statement of a key, topic or queue policy that lets an AWS service in
    statements = [
        statement
        for document in _resource_policies(stage)
        for statement in document["Statement"]
        if "Service" in statement.get("Principal", {})
    ]
    assert statements, "the alarm topic and its key let CloudWatch in"
    for statement in statements:
        # Then the service may act only for this account, and only for this stack's alarms
        conditions = statement.get("Condition", {})
        assert conditions.get("StringEquals", {}).get("aws:SourceAccount") == {"Ref": "AWS::AccountId"}
        assert _alarms_pattern(conditions["ArnLike"]["aws:SourceArn"]) == f"{stage.settings.stack_name}-*"


def test_every_alarm_that_notifies_the_topic_is_one_cloudwatch_may_publish_for(
    stage: SynthesizedStage,
) -> None:
    topic_id = _alarm_topic(stage)
    [statement] = _statements_for(_topic_policy(stage, topic_id), "cloudwatch.amazonaws.com")
    allowed = _alarms_pattern(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    notifying = [
        alarm["Properties"]
        for alarm in stage.of_type("AWS::CloudWatch::Alarm").values()
        if {"Ref": topic_id} in alarm["Properties"].get("AlarmActions", [])
    ]
    assert notifying
    for alarm in notifying:
        assert fnmatchcase(alarm["AlarmName"], allowed), alarm["AlarmName"]


def _statements_for(document: dict[str, Any], service: str) -> list[dict[str, Any]]:
    return [s for s in document["Statement"] if s.get("Principal") == {"Service": service}]


def _topic_policy(stage: SynthesizedStage, topic_id: str) -> dict[str, Any]:
    _, policy = stage.the_one("AWS::SNS::TopicPolicy", Topics=[{"Ref": topic_id}])
    document: dict[str, Any] = policy["Properties"]["PolicyDocument"]
    return document


def _resource_policies(stage: SynthesizedStage) -> list[dict[str, Any]]:
    """Every resource-based policy document of the stack (keys, topics, queues)."""
    documents = [key["Properties"]["KeyPolicy"] for key in stage.of_type("AWS::KMS::Key").values()]
    for resource_type in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
        policies = stage.of_type(resource_type).values()
        documents += [policy["Properties"]["PolicyDocument"] for policy in policies]
    return documents


def _alarms_pattern(source_arn: dict[str, Any]) -> str:
    """The alarm name pattern of an ``arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>``."""
    parts = source_arn["Fn::Join"][1]
    assert parts[:3] == ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:"]
    assert {"Ref": "AWS::Region"} in parts
    assert {"Ref": "AWS::AccountId"} in parts
    name = parts[-1].removeprefix(":alarm:")
    assert name != parts[-1], parts
    return str(name)


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
    # Every alarm's state first, then a section per queue (its DLQ's depth included) and function
    assert body.index('\\"title\\":\\"Alarms\\"') < body.index("Email queue")
    for alarm_id in stage.of_type("AWS::CloudWatch::Alarm"):
        assert alarm_id in body, alarm_id
    for title in ("Email queue", "DLQ: Message Count", "Email consumer", "Email outcomes"):
        assert title in body
    assert stage.email_dlq[0] in body
    assert stage.consumer[0] in body


def test_every_alarm_says_what_it_means_and_notifies_the_topic(stage: SynthesizedStage) -> None:
    alarms = stage.of_type("AWS::CloudWatch::Alarm").values()
    assert alarms
    for alarm in (alarm["Properties"] for alarm in alarms):
        # A sentence an on-call operator can act on, not a generated label
        assert len(alarm["AlarmDescription"].split()) >= 10, alarm["AlarmDescription"]
        assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]
        assert alarm["OKActions"] == [{"Ref": _alarm_topic(stage)}]


def test_a_failing_provider_raises_an_alarm_on_the_consumers_own_metric(stage: SynthesizedStage) -> None:
    # Given the consumer's Powertools service name (the "service" dimension of its EMF metrics)
    service = stage.consumer_environment["POWERTOOLS_SERVICE_NAME"]
    # Then repeated transient failures (outage, 401/403 from a bad key) alarm instead of waiting
    # for the DLQ after five receives
    alarm = _alarm_on(stage, Metric.EMAIL_TRANSIENT_FAILURE, {"Name": "service", "Value": service})
    assert _metric(alarm)["Namespace"] == stage.consumer_environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert _metric(alarm)["Stat"] == "Sum"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == stage.settings.observability.provider_failure_alarm_threshold
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_a_provider_without_credentials_pages_at_once_on_the_consumers_own_metric(
    stage: SynthesizedStage,
) -> None:
    from stacks.runbook import RUNBOOK, AlarmKey

    service = stage.consumer_environment["POWERTOOLS_SERVICE_NAME"]
    # Then one send refused for want of credentials pages: no email goes out until it is fixed
    alarm = _alarm_on(stage, Metric.EMAIL_PROVIDER_NOT_CONFIGURED, {"Name": "service", "Value": service})
    assert _metric(alarm)["Namespace"] == stage.consumer_environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert _metric(alarm)["Stat"] == "Sum"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]
    assert alarm["AlarmDescription"].endswith(RUNBOOK[AlarmKey.EMAIL_PROVIDER_NOT_CONFIGURED].reference)


def test_the_dashboard_breaks_dead_letters_down_by_reason(stage: SynthesizedStage) -> None:
    from booking_durability.emails.models import FailureReason

    [dashboard] = stage.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(part for part in parts if isinstance(part, str))
    # Every reason the consumer can dead-letter with has its own line
    for reason in FailureReason:
        assert f'"{Metric.EMAIL_DEAD_LETTERED}","failure_reason","{reason.value}","service"' in body, reason


def test_a_share_of_server_errors_from_the_api_raises_an_alarm(stage: SynthesizedStage) -> None:
    # Given the API's name and stage, the dimensions API Gateway publishes its metrics under
    api_name = stage.rest_api[1]["Properties"]["Name"]
    api = {"Name": "ApiName", "Value": api_name}
    alarm = _alarm_on(stage, "5XXError", api)
    metrics = {metric["MetricName"]: metric for metric in _metrics(alarm)}
    # Then it reads the 5xx count and the request count of that stage, summed over 5 minutes
    assert set(metrics) == {"5XXError", "Count"}
    for metric in metrics.values():
        assert (metric["Namespace"], metric["Stat"], metric["Period"]) == ("AWS/ApiGateway", "Sum", 300)
        assert api in metric["Dimensions"]
        assert {"Name": "Stage", "Value": {"Ref": stage.api_stage_id}} in metric["Dimensions"]
    # And pages on their ratio in percent, judged only from the stage's minimum of requests
    [expression] = [query for query in alarm["Metrics"] if "Expression" in query]
    ids = {
        query["MetricStat"]["Metric"]["MetricName"]: query["Id"]
        for query in alarm["Metrics"]
        if "MetricStat" in query
    }
    api_settings = stage.settings.api
    assert expression["Expression"] == (
        f"IF({ids['Count']} >= {api_settings.server_error_alarm_min_requests}, "
        f"100 * FILL({ids['5XXError']}, 0) / {ids['Count']}, 0)"
    )
    assert alarm["Threshold"] == api_settings.server_error_alarm_percent
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_throttled_table_requests_raise_alarms(stage: SynthesizedStage) -> None:
    for table_id, _ in (stage.deliveries_table, stage.reservations_table):
        table = {"Name": "TableName", "Value": {"Ref": table_id}}
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            alarm = _alarm_on(stage, metric, table)
            assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
            assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_the_dashboard_shows_the_api_and_what_happens_to_holds(stage: SynthesizedStage) -> None:
    [dashboard] = stage.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(part for part in parts if isinstance(part, str))
    # The API's requests, 4xx, 5xx and latency p50/p99
    for metric in ('"Count"', '"4XXError"', '"5XXError"', '"Latency"'):
        assert metric in body, metric
    assert '"stat":"p50"' in body
    assert '"stat":"p99"' in body
    # The reservations API's own metrics, and refusals broken down by the API's reasons
    for name in (Metric.HOLD_CREATED, Metric.HOLD_RELEASED, Metric.BOOKING_CANCELLED):
        assert f'"{NAMESPACE}","{name}","service","reservations-api"' in body, name
    for reason in ("party_too_large", "no_table"):
        assert f'"{Metric.NO_AVAILABILITY}","reason","{reason}","service","reservations-api"' in body, reason


def _dashboard_text(stage: SynthesizedStage) -> str:
    """The dashboard body's literal JSON, references left out."""
    [dashboard] = stage.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return "".join(part for part in parts if isinstance(part, str))


def test_the_dashboard_shows_admin_notifications_by_channel_and_failure_reason(
    stage: SynthesizedStage,
) -> None:
    from booking_durability.notifications.email_channel import EmailChannel
    from booking_durability.notifications.failure_policy import NotificationFailureReason
    from booking_durability.notifications.webhook import WebhookChannel

    body = _dashboard_text(stage)
    service = stage.notifier_environment["POWERTOOLS_SERVICE_NAME"]
    # Every channel the notifier can deliver through, and every reason it can dead-letter with
    for channel in (WebhookChannel.name, EmailChannel.name):
        assert (
            f'"{NAMESPACE}","{Metric.ADMIN_NOTIFICATION_SENT}","channel","{channel}","service","{service}"'
            in body
        )
    for reason in NotificationFailureReason:
        assert (
            f'"{Metric.ADMIN_NOTIFICATION_FAILED}","failure_reason","{reason.value}","service","{service}"'
            in body
        ), reason
    # And the outbox pipe's own metrics, for the pipe that is deployed
    full_body = json.dumps(stage.the_one("AWS::CloudWatch::Dashboard")[1]["Properties"]["DashboardBody"])
    for metric in ("EventCount", "ExecutionFailed", "TargetStageFailed"):
        assert f'\\"AWS/EventBridge/Pipes\\",\\"{metric}\\",\\"PipeName\\"' in full_body, metric
    assert json.dumps({"Ref": stage.outbox_pipe[0]}) in full_body


def test_the_dashboard_shows_confirmations_and_policy_drift(stage: SynthesizedStage) -> None:
    from booking_durability.metric_names import DriftReason

    body = _dashboard_text(stage)
    for name in (
        Metric.HOLD_CONFIRMED,
        Metric.HOLD_METADATA_REJECTED,
        Metric.POLICY_DRIFT_DETECTED,
        Metric.POLICY_DRIFT_RECOVERED,
    ):
        assert f'"{NAMESPACE}","{name}","service","reservations-api"' in body, name
    for reason in DriftReason:
        assert (
            f'"{Metric.POLICY_DRIFT_UNRECOVERED}","reason","{reason}","service","reservations-api"' in body
        ), reason
    # The flows the drift sweep ends are counted by the sweep's own function
    assert f'"{Metric.POLICY_DRIFT_UNRECOVERED}","reason","interrupted","service","drift-sweep"' in body


# --- alarms for operations ---------------------------------------------------------------------


def test_an_email_waiting_longer_than_retries_explain_raises_an_alarm(stage: SynthesizedStage) -> None:
    from booking_durability.emails.failure_policy import MAX_BACKOFF_SECONDS, FailurePolicy
    from stacks.settings import MAX_BACKOFF_SECONDS as STACKS_MAX_BACKOFF_SECONDS

    settings = stage.settings
    # Given the consumer's own failure policy, with the stage's pacing
    policy = FailurePolicy(
        backoff_base_seconds=settings.delivery.backoff_base_seconds,
        max_receives=settings.email_queue.max_receive_count,
        throttle_backoff_seconds=settings.delivery.throttle_backoff_seconds,
        max_throttle_deferrals=settings.delivery.max_throttle_deferrals,
        provider_timeout_seconds=5,
    )
    retried = range(1, settings.email_queue.max_receive_count)
    # Then the stacks compute the same backoffs the runtime applies, with the same cap
    assert STACKS_MAX_BACKOFF_SECONDS == MAX_BACKOFF_SECONDS
    assert settings.email_retry_backoffs_seconds == tuple(policy.backoff_seconds(n) for n in retried)
    # And the oldest email message alarms above one hop, every backoff and one invocation per receive
    alarm = _alarm_on(
        stage,
        "ApproximateAgeOfOldestMessage",
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [stage.email_queue[0], "QueueName"]}},
    )
    per_receive = settings.consumer.max_batching_window_seconds + settings.consumer.timeout_seconds
    expected = (
        settings.delivery.max_delay_hop_seconds
        + sum(policy.backoff_seconds(n) for n in retried)
        + settings.email_queue.max_receive_count * per_receive
    )
    assert alarm["Threshold"] == settings.email_age_alarm_seconds == expected
    assert (alarm["ComparisonOperator"], _metric(alarm)["Stat"]) == ("GreaterThanThreshold", "Maximum")
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_the_email_age_threshold_is_the_stages_own_derivation() -> None:
    from stacks.settings import stage_settings

    # dev and prod: 900 s hop + (60 + 120 + 240 + 480) s of backoff + 5 receives x (5 s window + 60 s)
    assert stage_settings("dev").email_age_alarm_seconds == 2125
    assert stage_settings("prod").email_age_alarm_seconds == 2125
    # local: 5 s hop + (2 + 4 + 8 + 16) s of backoff + 5 receives x (0 s window + 10 s)
    assert stage_settings("local").email_age_alarm_seconds == 85


def test_late_deliveries_raise_an_alarm_on_the_p99_lag(stage: SynthesizedStage) -> None:
    service = stage.consumer_environment["POWERTOOLS_SERVICE_NAME"]
    alarm = _alarm_on(stage, Metric.EMAIL_DELIVERY_LAG_MS, {"Name": "service", "Value": service})
    metric = _metric(alarm)
    assert (metric["Namespace"], metric["Stat"], metric["Period"]) == (NAMESPACE, "p99", 300)
    # The metric is in milliseconds, the setting in seconds; it must last three periods
    assert alarm["Threshold"] == stage.settings.observability.delivery_lag_p99_alarm_seconds * 1000
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 3)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_any_unrecovered_policy_drift_raises_an_alarm_whatever_its_reason(stage: SynthesizedStage) -> None:
    from booking_durability.metric_names import DriftReason

    service = _reservations_service(stage)
    # Given every reason a drift flow can end unrecovered with (the API's, and the sweep's own
    # interrupted flows)
    alarms = [
        _alarm_on(stage, Metric.POLICY_DRIFT_UNRECOVERED, {"Name": "reason", "Value": reason})
        for reason in DriftReason
    ]
    # Then one alarm reads them all, summed, and one in 5 minutes pages
    [alarm] = {json.dumps(alarm, sort_keys=True): alarm for alarm in alarms}.values()
    by_id = {query["Id"]: query for query in alarm["Metrics"] if "MetricStat" in query}
    counted = set()
    for query in by_id.values():
        metric = query["MetricStat"]
        dimensions = {d["Name"]: d["Value"] for d in metric["Metric"]["Dimensions"]}
        counted.add((dimensions["service"], dimensions["reason"]))
        assert (metric["Stat"], metric["Period"]) == ("Sum", 300)
    assert counted == {(service, reason) for reason in DriftReason} | {("drift-sweep", "interrupted")}
    [expression] = [query["Expression"] for query in alarm["Metrics"] if "Expression" in query]
    assert expression == " + ".join(f"FILL({metric_id}, 0)" for metric_id in by_id)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_a_burst_of_holds_refused_for_missing_metadata_raises_an_alarm(stage: SynthesizedStage) -> None:
    service = _reservations_service(stage)
    alarm = _alarm_on(stage, Metric.HOLD_METADATA_REJECTED, {"Name": "service", "Value": service})
    assert (_metric(alarm)["Stat"], _metric(alarm)["Period"]) == ("Sum", 300)
    assert alarm["Threshold"] == stage.settings.observability.hold_metadata_rejected_alarm_threshold
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]


def test_any_unhandled_error_of_either_api_function_raises_an_alarm(stage: SynthesizedStage) -> None:
    # Given the metric the API functions' last line counts, under each function's service
    services = [
        stage.function(name)[1]["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for name in ("email-api", "reservations-api")
    ]
    alarms = [
        _alarm_on(stage, Metric.UNHANDLED_ERRORS, {"Name": "service", "Value": service})
        for service in services
    ]
    # Then one alarm sums both, and one answer in 5 minutes pages
    [alarm] = {json.dumps(alarm, sort_keys=True): alarm for alarm in alarms}.values()
    by_id = {query["Id"]: query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query}
    assert sorted(
        dimension["Value"]
        for stat in by_id.values()
        for dimension in stat["Metric"]["Dimensions"]
        if dimension["Name"] == "service"
    ) == sorted(services)
    assert all((stat["Stat"], stat["Period"]) == ("Sum", 300) for stat in by_id.values())
    [expression] = [query["Expression"] for query in alarm["Metrics"] if "Expression" in query]
    assert expression == " + ".join(f"FILL({metric_id}, 0)" for metric_id in by_id)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]
    assert "docs/runbook.md#api-unhandled-errors" in alarm["AlarmDescription"]


def _reservations_service(stage: SynthesizedStage) -> str:
    service: str = stage.function("reservations-api")[1]["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_SERVICE_NAME"
    ]
    return service


def _dead_letter_queues(stage: SynthesizedStage) -> set[str]:
    """Every queue the template names as a dead-letter queue: a queue's redrive target or a pipe's."""
    dlqs = {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in stage.of_type("AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    }
    for pipe in stage.of_type("AWS::Pipes::Pipe").values():
        for source in pipe["Properties"]["SourceParameters"].values():
            if isinstance(source, dict) and "DeadLetterConfig" in source:
                dlqs.add(source["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    return dlqs


def test_every_function_pages_on_failed_invocations_and_throttles(stage: SynthesizedStage) -> None:
    functions = stage.of_type("AWS::Lambda::Function")
    assert functions
    for function_id in functions:
        function = {"Name": "FunctionName", "Value": {"Ref": function_id}}
        for metric in ("Errors", "Throttles"):
            # One in five minutes pages, and missing data is not an alarm
            alarm = _alarm_on(stage, metric, function)
            assert (_metric(alarm)["Namespace"], _metric(alarm)["Stat"]) == ("AWS/Lambda", "Sum")
            assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
            assert (alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (1, "notBreaching")
            assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]
            assert alarm["OKActions"] == [{"Ref": _alarm_topic(stage)}]


def test_every_dead_letter_queue_pages_on_its_first_message(stage: SynthesizedStage) -> None:
    dlqs = _dead_letter_queues(stage)
    # Given what a message in each DLQ means: every DLQ of the template is one of these
    meanings = {
        stage.email_dlq[0]: "Emails are in the DLQ",
        stage.notifications_dlq[0]: "Policy-drift notifications are in the notifications DLQ",
        stage.pipe_dlq[0]: "The outbox pipe gave up forwarding",
    }
    assert dlqs == set(meanings)
    for dlq_id in dlqs:
        dlq_name = {"Fn::GetAtt": [dlq_id, "QueueName"]}
        # Then one visible message alarms within the minute, and missing data is not an alarm
        alarm = _alarm_on(
            stage, "ApproximateNumberOfMessagesVisible", {"Name": "QueueName", "Value": dlq_name}
        )
        metric = _metric(alarm)
        assert (metric["Namespace"], metric["Stat"], metric["Period"]) == ("AWS/SQS", "Maximum", 60)
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert (alarm["EvaluationPeriods"], alarm.get("DatapointsToAlarm", 1)) == (1, 1)
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmDescription"].startswith(meanings[dlq_id])
        assert alarm["AlarmActions"] == [{"Ref": _alarm_topic(stage)}]
        assert alarm["OKActions"] == [{"Ref": _alarm_topic(stage)}]


# --- runbook ----------------------------------------------------------------------------------


_RUNBOOK_REFERENCE = re.compile(r" Runbook: docs/runbook\.md#([a-z0-9-]+)$")


def _github_anchor(title: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_runbook_anchors_are_unique_and_match_their_section_titles() -> None:
    from stacks.runbook import RUNBOOK, AlarmKey

    # Every kind of alarm has its section, and no two sections share an anchor or a title
    assert set(RUNBOOK) == set(AlarmKey)
    anchors = [section.anchor for section in RUNBOOK.values()]
    assert len(set(anchors)) == len(anchors)
    assert len({section.title for section in RUNBOOK.values()}) == len(anchors)
    # And a heading written with the title gets exactly that anchor
    for section in RUNBOOK.values():
        assert _github_anchor(section.title) == section.anchor, section.title


def test_every_alarm_says_what_it_means_and_names_its_runbook_section(stage: SynthesizedStage) -> None:
    from stacks.runbook import RUNBOOK

    anchors = {section.anchor for section in RUNBOOK.values()}
    named = set()
    for alarm in (alarm["Properties"] for alarm in stage.of_type("AWS::CloudWatch::Alarm").values()):
        description = alarm["AlarmDescription"]
        # What it means: a sentence or more before the reference; CloudWatch keeps 1024 characters
        reference = _RUNBOOK_REFERENCE.search(description)
        assert reference, f"{alarm['AlarmName']} names no runbook section"
        assert reference.group(1) in anchors, reference.group(1)
        assert len(description[: reference.start()].split()) >= 10, description
        assert len(description) <= 1024
        named.add(reference.group(1))
    # And every section of the runbook is needed by some alarm of the stage
    assert named == anchors


def _dashboard_sections(stage: SynthesizedStage) -> dict[str, list[str]]:
    """The dashboard's graph titles by section: from a ``### `` heading to the next one.

    A section is named as its heading shows it: the bold part (``### SQS Queue **[Email
    queue](...)**`` is "Email queue") or the whole heading (``### Email delivery``). A queue's
    section and its DLQ's share a name, hence one entry.
    """
    [dashboard] = stage.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    # References only ever stand inside the body's JSON strings
    body = json.loads("".join(part if isinstance(part, str) else "ref" for part in parts))
    sections: dict[str, list[str]] = {}
    graphs: list[str] | None = None
    for widget in body["widgets"]:
        markdown = widget["properties"].get("markdown", "") if widget["type"] == "text" else ""
        if markdown.startswith("### "):
            bold = re.search(r"\*\*\[?([^\]*]+)", markdown)
            graphs = sections.setdefault(bold.group(1) if bold else markdown.removeprefix("### "), [])
        elif graphs is not None and "title" in widget["properties"]:
            graphs.append(widget["properties"]["title"])
    return sections


def test_each_runbook_section_points_at_a_graph_on_the_dashboard(stage: SynthesizedStage) -> None:
    from stacks.runbook import RUNBOOK

    sections = _dashboard_sections(stage)
    for section in RUNBOOK.values():
        heading, graph = section.widget
        # The dashboard section, and the graph in it (not in a later section)
        assert heading in sections, heading
        assert graph in sections[heading], (heading, graph)


def test_the_dashboard_draws_every_email_outcome_the_consumer_counts(stage: SynthesizedStage) -> None:
    body = _dashboard_text(stage)
    service = stage.consumer_environment["POWERTOOLS_SERVICE_NAME"]
    # Sent, duplicates, deferred, transient and permanent failures, what was skipped, lag p50/p99
    for name in (
        Metric.EMAIL_SENT,
        Metric.EMAIL_DUPLICATE_SKIPPED,
        Metric.EMAIL_DEFERRED,
        Metric.EMAIL_TRANSIENT_FAILURE,
        Metric.EMAIL_THROTTLED,
        Metric.EMAIL_PERMANENT_FAILURE,
        Metric.EMAIL_CANCELLED_SKIPPED,
        Metric.EMAIL_EXPIRED_SKIPPED,
        Metric.EMAIL_SUPPRESSED_SKIPPED,
        Metric.EMAIL_LEASE_LOST,
        Metric.EMAIL_DELIVERY_LAG_MS,
        Metric.EMAIL_PROVIDER_NOT_CONFIGURED,
        Metric.EMAIL_UNEXPECTED_FAILURE,
        Metric.EMAIL_SENT_UNRECORDED,
    ):
        assert f'"{NAMESPACE}","{name}","service","{service}"' in body, name
    # And every function's invocations, errors, throttles, duration p99 and concurrency
    for metric in ('"Invocations"', '"Errors"', '"Throttles"', '"ConcurrentExecutions"', '"Duration"'):
        assert body.count(metric) >= 4, metric


def test_the_stage_has_one_dashboard(stage: SynthesizedStage) -> None:
    [dashboard] = stage.of_type("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == stage.settings.stack_name


def test_the_alarm_topic_has_no_subscription_unless_the_stage_names_an_address(
    stage: SynthesizedStage,
) -> None:
    assert stage.settings.observability.alarm_email is None
    assert stage.of_type("AWS::SNS::Subscription") == {}


def test_an_alarm_email_from_context_is_subscribed_to_the_alarm_topic() -> None:
    from aws_cdk import aws_sns as sns

    from app import build_app

    # Given the local stage built with -c alarm_email=... (constructed, not synthesized: cheap)
    app = build_app(["local"], context={"alarm_email": "oncall@example.com"})
    stack = app.node.find_child("BookingDurability-local")
    [subscription] = [node for node in stack.node.find_all() if isinstance(node, sns.CfnSubscription)]
    # Then the address is subscribed by email to the alarm topic
    topic = stack.node.find_child("Monitoring").node.find_child("AlarmTopic")
    assert isinstance(topic, sns.Topic)
    assert (subscription.protocol, subscription.endpoint) == ("email", "oncall@example.com")
    assert stack.resolve(subscription.topic_arn) == stack.resolve(topic.topic_arn)
