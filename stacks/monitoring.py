"""Alarms, the topic they notify, and one dashboard, over every queue and function of the service.

Built on cdk-monitoring-constructs' ``MonitoringFacade``: it knows what to graph for a queue with
a DLQ, a Lambda function, a table or an API, and makes every alarm the same way (one datapoint,
missing data not breaching, the topic notified on alarm and on recovery). Each alarm still
carries our own description of what it means and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    CustomAlarmThreshold,
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    DefaultDashboardFactory,
    ErrorCountThreshold,
    LatencyType,
    MaxMessageAgeThreshold,
    MaxMessageCountThreshold,
    MetricFactoryDefaults,
    MonitoringFacade,
    SnsAlarmActionStrategy,
    ThrottledEventsThreshold,
)
from constructs import Construct

from booking_durability.metric_names import (
    NAMESPACE,
    DriftReason,
    FailureReason,
    Metric,
    NoAvailabilityReason,
    NotificationChannel,
    NotificationFailureReason,
)
from stacks.function import ServiceFunction, removal_policy
from stacks.queue_with_dlq import QueueWithDlq
from stacks.runbook import RUNBOOK_PATH, AlarmKey, Page
from stacks.settings import StageSettings

# docs/reference/queue-message.md#failure-reasons: why a message reached the DLQ (the EmailDeadLettered
# metric's dimension).
FAILURE_REASONS = tuple(FailureReason)
# The email consumer's EMF outcomes, in the order the dashboard shows them.
EMAIL_OUTCOMES = (
    Metric.EMAIL_SENT,
    Metric.EMAIL_DUPLICATE_SKIPPED,
    Metric.EMAIL_DEFERRED,
    Metric.EMAIL_TRANSIENT_FAILURE,
    Metric.EMAIL_THROTTLED,
    Metric.EMAIL_PERMANENT_FAILURE,
)
# What the consumer acknowledged without sending (cancelled, expired, suppressed), and claims it
# found taken over by another worker after its lease ran out.
EMAIL_SKIPS = (
    Metric.EMAIL_CANCELLED_SKIPPED,
    Metric.EMAIL_EXPIRED_SKIPPED,
    Metric.EMAIL_SUPPRESSED_SKIPPED,
    Metric.EMAIL_LEASE_LOST,
)
# Failures the consumer had no rule for (retried, then dead-lettered on the last receive), and
# emails the provider took whose "sent" the ledger could not be told.
EMAIL_ANOMALIES = (Metric.EMAIL_UNEXPECTED_FAILURE, Metric.EMAIL_SENT_UNRECORDED)
# docs/reference/http-api.md#allocation-rule: why a hold could not be made (the NoAvailability metric's
# "reason" dimension).
NO_AVAILABILITY_REASONS = tuple(NoAvailabilityReason)
# The reservations API's EMF counts of what happened to holds and bookings (HoldMetadataRejected,
# which has an alarm, is drawn on its own).
HOLD_EVENTS = (Metric.HOLD_CREATED, Metric.HOLD_CONFIRMED, Metric.HOLD_RELEASED, Metric.BOOKING_CANCELLED)
# Its counts of policy drift met at confirmation (docs/reference/http-api.md#policy-drift).
POLICY_DRIFT_EVENTS = (Metric.POLICY_DRIFT_DETECTED, Metric.POLICY_DRIFT_RECOVERED)
# Why a drift flow could not be recovered (PolicyDriftUnrecovered's "reason" dimension): the
# reservations API counts every reason; the drift sweep counts the flows it ends, `interrupted`.
POLICY_DRIFT_REASONS = tuple(DriftReason)
SWEPT_DRIFT_REASON = DriftReason.INTERRUPTED
# docs/reference/notifications.md#channels: how the notifier told the admins (AdminNotificationSent's
# "channel" dimension) ...
NOTIFICATION_CHANNELS = tuple(NotificationChannel)
# ... and why a notification reached the notifications DLQ (AdminNotificationFailed's dimension).
NOTIFICATION_FAILURE_REASONS = tuple(NotificationFailureReason)
# What EventBridge Pipes publishes per pipe (dimension PipeName).
PIPES_NAMESPACE = "AWS/EventBridge/Pipes"
PIPE_METRICS = ("EventCount", "ExecutionFailed", "TargetStageFailed")
API_NAMESPACE = "AWS/ApiGateway"
_ONE_MINUTE = Duration.minutes(1)
_FIVE_MINUTES = Duration.minutes(5)
#: Five-minute periods the delivery lag must stay high before it pages: one slow email is no trend.
LAG_ALARM_PERIODS = 3
# Every alarm of the service pages: one severity, one topic.
_PAGE = "Critical"
_Threshold = TypeVar("_Threshold", bound=CustomAlarmThreshold)


@dataclass(frozen=True)
class OldestMessageAlarm:
    """An alarm on the age of a queue's oldest message: above ``max_age_seconds``, work is stuck."""

    max_age_seconds: int
    page: Page


@dataclass(frozen=True)
class WatchedQueue:
    """A queue with its DLQ, and what a message in that DLQ means to the people it concerns."""

    name: str
    queues: QueueWithDlq
    on_dead_letter: Page
    oldest_message: OldestMessageAlarm | None = None


@dataclass(frozen=True)
class WatchedDeadLetterQueue:
    """A dead-letter queue of something other than a queue (a pipe), and what a message in it means."""

    name: str
    queue: sqs.IQueue
    on_dead_letter: Page


@dataclass(frozen=True)
class WatchedFunction:
    """A function, and what its failed invocations and throttles mean."""

    name: str
    function: ServiceFunction
    on_errors: Page
    on_throttles: Page


@dataclass(frozen=True)
class WatchedTable:
    """A table, and what its throttled requests (reads or writes) mean."""

    name: str
    table: dynamodb.ITable
    on_throttles: Page


def alarm_source_conditions(scope: Construct, settings: StageSettings) -> dict[str, Any]:
    """What a statement for CloudWatch's service principal requires: a request made for an alarm
    of this account whose name starts with the stack's (every alarm here is named so)."""
    stack = Stack.of(scope)
    alarms = stack.format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{settings.stack_name}-*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    return {"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": alarms}}


class Monitoring(Construct):
    """What tells an operator that guests are not getting their emails, that admins are not told
    of policy drift, or that API callers fail.

    First of all, any message in a DLQ (a queue's, or the outbox pipe's): each one is work that
    will not happen until someone redrives it. Then emails waiting longer than retries explain,
    or delivered late; failed invocations and throttles of every function, throttled table
    requests, the email provider failing, the API answering server errors, confirmations that
    could not recover from a policy change, and a burst of holds refused for missing metadata.
    Every alarm notifies ``topic`` on alarm and on recovery, and its description names its
    runbook section (``stacks/runbook.py``); operators subscribe to the topic, or the stage
    subscribes ``observability.alarm_email``. ``dashboard`` shows the alarms first, then a
    section per resource, then the service's own metrics (email delivery, holds and drift, admin
    notifications).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        queues: Sequence[WatchedQueue],
        dead_letter_queues: Sequence[WatchedDeadLetterQueue],
        functions: Sequence[WatchedFunction],
        tables: Sequence[WatchedTable],
        api: apigateway.RestApi,
        email_consumer: ServiceFunction,
        email_api: ServiceFunction,
        reservations_api: ServiceFunction,
        notifier: ServiceFunction,
        drift_sweep: ServiceFunction,
        outbox_pipe_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._alarm_topic(settings)
        self.facade = self._facade(settings)
        for queue in queues:
            self._watch_queue(queue)
        for dead_letter_queue in dead_letter_queues:
            self._watch_dead_letter_queue(dead_letter_queue)
        for function in functions:
            self._watch_function(function)
        for table in tables:
            self._watch_table(table)
        self._watch_api(api, settings, [email_api.service, reservations_api.service])
        self._watch_email_delivery(email_consumer.service, settings)
        self._watch_holds(reservations_api.service, drift_sweep.service, settings)
        self._watch_admin_notifications(notifier.service, outbox_pipe_name)
        self.alarms = [created.alarm for created in self.facade.created_alarms()]
        self.dashboard = self._dashboard(settings)

    def _alarm_topic(self, settings: StageSettings) -> sns.Topic:
        # A key of our own: CloudWatch cannot publish to a topic under the AWS-managed SNS key.
        topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the booking durability alarm topic ({settings.name})",
            enable_key_rotation=True,
            removal_policy=removal_policy(settings),
            pending_window=Duration.days(7),
        )
        # CloudWatch acts for any account's alarms: only this stack's may use the key and the topic.
        cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        this_stacks_alarms = alarm_source_conditions(self, settings)
        topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisStackEncrypt",
                principals=[cloudwatch],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=this_stacks_alarms,
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"Booking durability alarms ({settings.name})",
            master_key=topic_key,
            enforce_ssl=True,
        )
        # The topic policy replaces SNS's default one, which let the account's alarms publish.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisStackPublish",
                principals=[cloudwatch],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=this_stacks_alarms,
            )
        )
        if settings.observability.alarm_email is not None:
            # Pending until the address confirms it from the email AWS sends.
            topic.add_subscription(subscriptions.EmailSubscription(settings.observability.alarm_email))
        return topic

    def _facade(self, settings: StageSettings) -> MonitoringFacade:
        return MonitoringFacade(
            self,
            "Facade",
            # One datapoint breaches; the topic hears of the alarm and of the recovery.
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=settings.stack_name,
                actions_enabled=True,
                action=SnsAlarmActionStrategy(on_alarm_topic=self.topic, on_ok_topic=self.topic),
                datapoints_to_alarm=1,
                evaluation_periods=1,
            ),
            metric_factory_defaults=MetricFactoryDefaults(period=_FIVE_MINUTES),
            # The facade only collects the sections; self._dashboard lays them out, alarms first.
            dashboard_factory=DefaultDashboardFactory(
                self, "Dashboards", dashboard_name_prefix=settings.stack_name, create_dashboard=False
            ),
        )

    def _watch_queue(self, watched: WatchedQueue) -> None:
        oldest = watched.oldest_message
        self.facade.monitor_sqs_queue_with_dlq(
            queue=watched.queues.queue,
            dead_letter_queue=watched.queues.dlq,
            human_readable_name=f"{watched.name} queue",
            alarm_friendly_name=f"{watched.name.lower()}-queue",
            # One visible message is enough, within the minute.
            add_dead_letter_queue_max_size_alarm=_page(
                MaxMessageCountThreshold, watched.on_dead_letter, max_message_count=0, period=_ONE_MINUTE
            ),
            add_queue_max_message_age_alarm=None
            if oldest is None
            else _page(MaxMessageAgeThreshold, oldest.page, max_age_in_seconds=oldest.max_age_seconds),
        )

    def _watch_dead_letter_queue(self, watched: WatchedDeadLetterQueue) -> None:
        self.facade.monitor_sqs_queue(
            queue=watched.queue,
            human_readable_name=f"{watched.name} DLQ",
            alarm_friendly_name=f"{watched.name.lower().replace(' ', '-')}-dlq",
            # One visible message is enough, within the minute, as for the queues' own DLQs.
            add_queue_max_size_alarm=_page(
                MaxMessageCountThreshold, watched.on_dead_letter, max_message_count=0, period=_ONE_MINUTE
            ),
        )

    def _watch_function(self, watched: WatchedFunction) -> None:
        # Errors count failed invocations (crashes, timeouts), not records a handler reported.
        # The section draws invocations, errors, throttles, duration p50/p90/p99 and concurrency.
        self.facade.monitor_lambda_function(
            lambda_function=watched.function.function,
            human_readable_name=watched.name,
            alarm_friendly_name=watched.function.service,
            add_fault_count_alarm=_page(ErrorCountThreshold, watched.on_errors, max_error_count=0),
            add_throttles_count_alarm=_page(ErrorCountThreshold, watched.on_throttles, max_error_count=0),
        )

    def _watch_table(self, watched: WatchedTable) -> None:
        self.facade.monitor_dynamo_table(
            table=watched.table,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            human_readable_name=f"{watched.name} table",
            alarm_friendly_name=f"{watched.name.lower()}-table",
            add_read_throttled_events_count_alarm=_page(
                ThrottledEventsThreshold, watched.on_throttles, max_throttled_events_threshold=0
            ),
            add_write_throttled_events_count_alarm=_page(
                ThrottledEventsThreshold, watched.on_throttles, max_throttled_events_threshold=0
            ),
        )

    def _watch_api(self, api: apigateway.RestApi, settings: StageSettings, services: Sequence[str]) -> None:
        # Requests, 4xx and 5xx (counts and rates) and latency p50/p99, for the whole stage.
        self.facade.monitor_api_gateway(
            api=api,
            api_stage=api.deployment_stage.stage_name,
            human_readable_name="HTTP API",
            alarm_friendly_name="api",
            latency_types_to_render=[LatencyType.P50, LatencyType.P99],
        )
        # The 5xx rate as 5XXError / Count, judged only over enough requests: an average of
        # 5XXError would page on one failed request out of three at night.
        limits = settings.api
        dimensions = {"ApiName": api.rest_api_name, "Stage": api.deployment_stage.stage_name}
        requests, errors = (
            cloudwatch.Metric(
                namespace=API_NAMESPACE,
                metric_name=name,
                dimensions_map=dimensions,
                period=_FIVE_MINUTES,
                statistic=cloudwatch.Stats.SUM,
            )
            for name in ("Count", "5XXError")
        )
        rate = cloudwatch.MathExpression(
            expression=(
                f"IF(requests >= {limits.server_error_alarm_min_requests}, "
                "100 * FILL(errors, 0) / requests, 0)"
            ),
            using_metrics={"requests": requests, "errors": errors},
            label="5xx answers (% of requests)",
            period=_FIVE_MINUTES,
        )
        server_errors = CustomMetricWithAlarm(
            metric=rate,
            alarm_friendly_name="server-error-rate",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.API_SERVER_ERRORS,
                    f"More than {limits.server_error_alarm_percent:g}% of API requests got a 5xx answer "
                    f"in 5 minutes (judged once {limits.server_error_alarm_min_requests} or more "
                    "requests came in). "
                    "Nothing a client sends may cause one: read the API functions' logs and the API "
                    "access logs (errorType, integrationStatus) for the failing route.",
                ),
                threshold=limits.server_error_alarm_percent,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
        )
        # Any failure nothing anticipated pages at once, whichever function met it: each is a
        # 500 a client got, and a bug to find by its error_id.
        by_service = {
            f"unhandled_{n}": _service_metric(name, Metric.UNHANDLED_ERRORS)
            for n, name in enumerate(services)
        }
        unhandled = CustomMetricWithAlarm(
            metric=cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({metric_id}, 0)" for metric_id in by_service),
                using_metrics=by_service,
                label=f"{Metric.UNHANDLED_ERRORS} (all API functions)",
                period=_FIVE_MINUTES,
            ),
            alarm_friendly_name="unhandled-errors",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.API_UNHANDLED_ERRORS,
                    "An API function met a failure nothing anticipated and answered 500 "
                    "INTERNAL_ERROR with an error_id: a bug, or a dependency failing in a way no "
                    "code maps. Find the log line with that error_id for its type and code location.",
                ),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )
        self.facade.monitor_custom(
            human_readable_name="HTTP API server errors",
            alarm_friendly_name="api-errors",
            metric_groups=[
                CustomMetricGroup(title="5xx answers (% of requests)", metrics=[server_errors]),
                CustomMetricGroup(title="Unhandled errors (500 INTERNAL_ERROR)", metrics=[unhandled]),
            ],
        )

    def _watch_email_delivery(self, service: str, settings: StageSettings) -> None:
        thresholds = settings.observability
        provider_failing = CustomMetricWithAlarm(
            metric=_service_metric(service, Metric.EMAIL_TRANSIENT_FAILURE),
            alarm_friendly_name="provider-failing",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.EMAIL_PROVIDER_FAILING,
                    f"The email provider failed transiently {thresholds.provider_failure_alarm_threshold} "
                    "times or more in 5 minutes (5xx, timeouts, or 401/403: a wrong or rotated API "
                    "key). Emails are retried with backoff and dead-lettered after five receives: "
                    "check the provider's status and the provider secret.",
                ),
                threshold=thresholds.provider_failure_alarm_threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )
        not_configured = CustomMetricWithAlarm(
            metric=_service_metric(service, Metric.EMAIL_PROVIDER_NOT_CONFIGURED).with_(
                label=Metric.EMAIL_PROVIDER_NOT_CONFIGURED
            ),
            alarm_friendly_name="provider-not-configured",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.EMAIL_PROVIDER_NOT_CONFIGURED,
                    "The email consumer could not send for want of provider credentials: the "
                    "provider secret is missing, still the placeholder the deploy wrote, not a JSON "
                    "object, lacks its api_key, or cannot be read. No email goes out; each is "
                    "retried and dead-lettered with provider_not_configured after five receives.",
                ),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )
        outcomes: list[cloudwatch.IMetric | CustomMetricWithAlarm] = [
            provider_failing if name == Metric.EMAIL_TRANSIENT_FAILURE else _service_metric(service, name)
            for name in EMAIL_OUTCOMES
        ]
        skipped = [_service_metric(service, name).with_(label=name) for name in EMAIL_SKIPS]
        anomalies = [_service_metric(service, name).with_(label=name) for name in EMAIL_ANOMALIES]
        dead_letters = [
            _service_metric(service, Metric.EMAIL_DEAD_LETTERED, reason).with_(label=reason)
            for reason in FAILURE_REASONS
        ]
        lag_seconds = thresholds.delivery_lag_p99_alarm_seconds
        lag_p99 = CustomMetricWithAlarm(
            metric=_service_metric(
                service, Metric.EMAIL_DELIVERY_LAG_MS, statistic=cloudwatch.Stats.p(99)
            ).with_(label="p99"),
            alarm_friendly_name="delivery-lag-p99",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.EMAIL_DELIVERY_LAG,
                    f"For {LAG_ALARM_PERIODS * 5} minutes, the slowest 1% of emails went out more than "
                    f"{lag_seconds} s after their deliver_at: guests get booking emails late. Retries "
                    "(provider failures, throttling) or a consumer that cannot keep up are the usual "
                    "causes.",
                ),
                threshold=lag_seconds * 1000,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=LAG_ALARM_PERIODS,
                datapoints_to_alarm=LAG_ALARM_PERIODS,
            ),
        )
        lag_p50 = _service_metric(
            service, Metric.EMAIL_DELIVERY_LAG_MS, statistic=cloudwatch.Stats.p(50)
        ).with_(label="p50")
        self.facade.monitor_custom(
            human_readable_name="Email delivery",
            alarm_friendly_name="email-delivery",
            metric_groups=[
                CustomMetricGroup(title="Email outcomes", metrics=outcomes),
                CustomMetricGroup(title="Acknowledged without sending; leases lost", metrics=skipped),
                CustomMetricGroup(
                    title="Provider not configured (no credentials to send with)", metrics=[not_configured]
                ),
                CustomMetricGroup(title="Unexpected failures; sent but not recorded", metrics=anomalies),
                CustomMetricGroup(title="Dead-lettered, by failure_reason", metrics=dead_letters),
                CustomMetricGroup(title="Delivery lag (ms after deliver_at)", metrics=[lag_p99, lag_p50]),
            ],
        )

    def _watch_holds(self, service: str, sweep_service: str, settings: StageSettings) -> None:
        events = [_service_metric(service, name).with_(label=name) for name in HOLD_EVENTS]
        metadata_threshold = settings.observability.hold_metadata_rejected_alarm_threshold
        metadata_rejected = CustomMetricWithAlarm(
            metric=_service_metric(service, Metric.HOLD_METADATA_REJECTED).with_(
                label=Metric.HOLD_METADATA_REJECTED
            ),
            alarm_friendly_name="hold-metadata-rejected",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.HOLD_METADATA_REJECTED,
                    f"{metadata_threshold} or more confirmations in 5 minutes were refused with 422 "
                    "HOLD_METADATA_INCOMPLETE: the holds lack their policy hash, tables or snapshot "
                    "(imported holds not backfilled yet, or a regression in the hold writer). The "
                    "guests of those holds are not booked.",
                ),
                threshold=metadata_threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )
        refused = [
            _service_metric(service, Metric.NO_AVAILABILITY, reason).with_(label=reason)
            for reason in NO_AVAILABILITY_REASONS
        ]
        unrecovered_by_reason = {
            f"unrecovered_{reason}": _service_metric(service, Metric.POLICY_DRIFT_UNRECOVERED, reason)
            for reason in POLICY_DRIFT_REASONS
        }
        swept = _service_metric(sweep_service, Metric.POLICY_DRIFT_UNRECOVERED, SWEPT_DRIFT_REASON)
        drift = [
            *(_service_metric(service, name).with_(label=name) for name in POLICY_DRIFT_EVENTS),
            *(
                metric.with_(label=f"PolicyDriftUnrecovered: {reason}")
                for reason, metric in zip(POLICY_DRIFT_REASONS, unrecovered_by_reason.values(), strict=True)
            ),
            swept.with_(label=f"PolicyDriftUnrecovered: {SWEPT_DRIFT_REASON} (ended by the sweep)"),
        ]
        unrecovered_by_reason[f"swept_{SWEPT_DRIFT_REASON}"] = swept
        # Every reason counts: one sum over the reason dimension (alarms cannot use SEARCH).
        unrecovered = CustomMetricWithAlarm(
            metric=cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({metric_id}, 0)" for metric_id in unrecovered_by_reason),
                using_metrics=unrecovered_by_reason,
                label="PolicyDriftUnrecovered (all reasons)",
                period=_FIVE_MINUTES,
            ),
            alarm_friendly_name="policy-drift-unrecovered",
            add_alarm=_page(
                CustomThreshold,
                Page(
                    AlarmKey.POLICY_DRIFT_UNRECOVERED,
                    "A confirmation met a changed seating policy and could not be recovered (reason "
                    f"{', '.join(POLICY_DRIFT_REASONS)}; interrupted ones ended by the request's repeat "
                    "or by the drift sweep): the guest has no booking (409 POLICY_CHANGED). The "
                    "admins are notified per event; check that they were and that the booking app "
                    "offered the guest another time.",
                ),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )
        self.facade.monitor_custom(
            human_readable_name="Holds and bookings",
            alarm_friendly_name="holds",
            metric_groups=[
                CustomMetricGroup(
                    title="Holds created, confirmed, released; bookings cancelled", metrics=events
                ),
                CustomMetricGroup(
                    title="Confirmations refused for missing hold metadata", metrics=[metadata_rejected]
                ),
                CustomMetricGroup(title="No availability, by reason", metrics=refused),
                CustomMetricGroup(title="Policy drift at confirmation, unrecovered by reason", metrics=drift),
                CustomMetricGroup(title="Policy drift unrecovered (all reasons)", metrics=[unrecovered]),
            ],
        )

    def _watch_admin_notifications(self, service: str, pipe_name: str) -> None:
        sent = [
            _service_metric(service, Metric.ADMIN_NOTIFICATION_SENT, channel).with_(label=channel)
            for channel in NOTIFICATION_CHANNELS
        ]
        failed = [
            _service_metric(service, Metric.ADMIN_NOTIFICATION_FAILED, reason).with_(label=reason)
            for reason in NOTIFICATION_FAILURE_REASONS
        ]
        pipe = [
            cloudwatch.Metric(
                namespace=PIPES_NAMESPACE,
                metric_name=name,
                dimensions_map={"PipeName": pipe_name},
                period=_FIVE_MINUTES,
                statistic=cloudwatch.Stats.SUM,
                label=name,
            )
            for name in PIPE_METRICS
        ]
        self.facade.monitor_custom(
            human_readable_name="Admin notifications",
            alarm_friendly_name="admin-notifications",
            metric_groups=[
                CustomMetricGroup(title="Sent, by channel", metrics=sent),
                CustomMetricGroup(title="Dead-lettered, by failure_reason", metrics=failed),
                CustomMetricGroup(
                    title="Outbox pipe (reservations stream to notifications queue)", metrics=pipe
                ),
            ],
        )

    def _dashboard(self, settings: StageSettings) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=settings.stack_name, default_interval=Duration.hours(3)
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=18, height=4),
            cloudwatch.TextWidget(markdown=_reading_guide(settings), width=6, height=4),
        )
        for section in self.facade.created_monitorings():
            dashboard.add_widgets(*section.widgets())
        return dashboard


def _reading_guide(settings: StageSettings) -> str:
    """The dashboard's note: where each alarm is explained, and the thresholds derived at synth."""
    api = settings.api
    return (
        f"**Runbook:** each alarm's description ends with its section of `{RUNBOOK_PATH}`.\n\n"
        f"Oldest email message: alarm above {settings.email_age_alarm_seconds} s (one delay hop, "
        f"every retry backoff, one invocation per receive). Delivery lag p99: above "
        f"{settings.observability.delivery_lag_p99_alarm_seconds} s for {LAG_ALARM_PERIODS * 5} min. "
        f"API 5xx: above {api.server_error_alarm_percent:g}% of at least "
        f"{api.server_error_alarm_min_requests} requests in 5 min."
    )


def _page(kind: Callable[..., _Threshold], page: Page, **values: Any) -> dict[str, _Threshold]:
    """One alarm that pages, described by ``page``: what it means and its runbook section.

    No data is not an alarm: an idle queue or function reports nothing, and that is fine.
    """
    return {
        _PAGE: kind(
            **values,
            alarm_description_override=page.description,
            treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    }


def _service_metric(
    service: str, metric: Metric, value: str | None = None, *, statistic: str = cloudwatch.Stats.SUM
) -> cloudwatch.Metric:
    """One of a function's own EMF metrics; Powertools adds the ``service`` dimension, and
    ``value`` is that of the metric's own dimension (``Metric.dimension``), if it has one."""
    dimensions = {"service": service}
    if value is not None:
        if metric.dimension is None:
            raise ValueError(f"{metric} is emitted without a dimension of its own")
        dimensions[metric.dimension] = value
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=metric,
        dimensions_map=dimensions,
        period=_FIVE_MINUTES,
        statistic=statistic,
    )
