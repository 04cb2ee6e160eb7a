"""The service's own metrics on the dashboard: email delivery, holds and drift, admin notifications.

Each is a :class:`~stacks.watched.Watched` section over the EMF metrics the functions emit
(``booking_durability.metric_names``), with the alarms that page on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cloudwatch
from cdk_monitoring_constructs import (
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    MonitoringFacade,
)

from booking_durability.metric_names import (
    DriftReason,
    FailureReason,
    Metric,
    NoAvailabilityReason,
    NotificationChannel,
    NotificationFailureReason,
)
from stacks.runbook import AlarmKey, Page
from stacks.settings import ObservabilitySettings
from stacks.watched import FIVE_MINUTES, page, service_metric

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
#: Five-minute periods the delivery lag must stay high before it pages: one slow email is no trend.
LAG_ALARM_PERIODS = 3


@dataclass(frozen=True)
class EmailDelivery:
    """The email consumer's outcomes: the provider failing or unconfigured, late emails, dead letters."""

    service: str
    thresholds: ObservabilitySettings

    def watch(self, facade: MonitoringFacade) -> None:
        service = self.service
        provider_failing = self._provider_failing()
        outcomes: list[cloudwatch.IMetric | CustomMetricWithAlarm] = [
            provider_failing if name == Metric.EMAIL_TRANSIENT_FAILURE else service_metric(service, name)
            for name in EMAIL_OUTCOMES
        ]
        not_configured = self._provider_not_configured()
        skipped = [service_metric(service, name).with_(label=name) for name in EMAIL_SKIPS]
        anomalies = [service_metric(service, name).with_(label=name) for name in EMAIL_ANOMALIES]
        dead_letters = [
            service_metric(service, Metric.EMAIL_DEAD_LETTERED, reason).with_(label=reason)
            for reason in FAILURE_REASONS
        ]
        lag_p99 = self._lag_p99()
        lag_p50 = service_metric(
            service, Metric.EMAIL_DELIVERY_LAG_MS, statistic=cloudwatch.Stats.p(50)
        ).with_(label="p50")
        facade.monitor_custom(
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

    def _provider_failing(self) -> CustomMetricWithAlarm:
        threshold = self.thresholds.provider_failure_alarm_threshold
        return CustomMetricWithAlarm(
            metric=service_metric(self.service, Metric.EMAIL_TRANSIENT_FAILURE),
            alarm_friendly_name="provider-failing",
            add_alarm=page(
                CustomThreshold,
                Page(
                    AlarmKey.EMAIL_PROVIDER_FAILING,
                    f"The email provider failed transiently {threshold} "
                    "times or more in 5 minutes (5xx, timeouts, or 401/403: a wrong or rotated API "
                    "key). Emails are retried with backoff and dead-lettered after five receives: "
                    "check the provider's status and the provider secret.",
                ),
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )

    def _provider_not_configured(self) -> CustomMetricWithAlarm:
        return CustomMetricWithAlarm(
            metric=service_metric(self.service, Metric.EMAIL_PROVIDER_NOT_CONFIGURED).with_(
                label=Metric.EMAIL_PROVIDER_NOT_CONFIGURED
            ),
            alarm_friendly_name="provider-not-configured",
            add_alarm=page(
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

    def _lag_p99(self) -> CustomMetricWithAlarm:
        lag_seconds = self.thresholds.delivery_lag_p99_alarm_seconds
        return CustomMetricWithAlarm(
            metric=service_metric(
                self.service, Metric.EMAIL_DELIVERY_LAG_MS, statistic=cloudwatch.Stats.p(99)
            ).with_(label="p99"),
            alarm_friendly_name="delivery-lag-p99",
            add_alarm=page(
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


@dataclass(frozen=True)
class HoldsAndBookings:
    """What happened to holds and bookings, refusals, and policy drift the guest was not saved from."""

    service: str
    #: The drift sweep's service: it ends interrupted drift flows, and counts them.
    sweep_service: str
    thresholds: ObservabilitySettings

    def watch(self, facade: MonitoringFacade) -> None:
        service = self.service
        events = [service_metric(service, name).with_(label=name) for name in HOLD_EVENTS]
        metadata_rejected = self._metadata_rejected()
        refused = [
            service_metric(service, Metric.NO_AVAILABILITY, reason).with_(label=reason)
            for reason in NO_AVAILABILITY_REASONS
        ]
        unrecovered_by_reason = {
            f"unrecovered_{reason}": service_metric(service, Metric.POLICY_DRIFT_UNRECOVERED, reason)
            for reason in POLICY_DRIFT_REASONS
        }
        swept = service_metric(self.sweep_service, Metric.POLICY_DRIFT_UNRECOVERED, SWEPT_DRIFT_REASON)
        drift = [
            *(service_metric(service, name).with_(label=name) for name in POLICY_DRIFT_EVENTS),
            *(
                metric.with_(label=f"PolicyDriftUnrecovered: {reason}")
                for reason, metric in zip(POLICY_DRIFT_REASONS, unrecovered_by_reason.values(), strict=True)
            ),
            swept.with_(label=f"PolicyDriftUnrecovered: {SWEPT_DRIFT_REASON} (ended by the sweep)"),
        ]
        unrecovered_by_reason[f"swept_{SWEPT_DRIFT_REASON}"] = swept
        facade.monitor_custom(
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
                CustomMetricGroup(
                    title="Policy drift unrecovered (all reasons)",
                    metrics=[self._unrecovered(unrecovered_by_reason)],
                ),
            ],
        )

    def _metadata_rejected(self) -> CustomMetricWithAlarm:
        threshold = self.thresholds.hold_metadata_rejected_alarm_threshold
        return CustomMetricWithAlarm(
            metric=service_metric(self.service, Metric.HOLD_METADATA_REJECTED).with_(
                label=Metric.HOLD_METADATA_REJECTED
            ),
            alarm_friendly_name="hold-metadata-rejected",
            add_alarm=page(
                CustomThreshold,
                Page(
                    AlarmKey.HOLD_METADATA_REJECTED,
                    f"{threshold} or more confirmations in 5 minutes were refused with 422 "
                    "HOLD_METADATA_INCOMPLETE: the holds lack their policy hash, tables or snapshot "
                    "(imported holds not backfilled yet, or a regression in the hold writer). The "
                    "guests of those holds are not booked.",
                ),
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
        )

    @staticmethod
    def _unrecovered(by_reason: dict[str, cloudwatch.IMetric]) -> CustomMetricWithAlarm:
        # Every reason counts: one sum over the reason dimension (alarms cannot use SEARCH).
        return CustomMetricWithAlarm(
            metric=cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({metric_id}, 0)" for metric_id in by_reason),
                using_metrics=by_reason,
                label="PolicyDriftUnrecovered (all reasons)",
                period=FIVE_MINUTES,
            ),
            alarm_friendly_name="policy-drift-unrecovered",
            add_alarm=page(
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


@dataclass(frozen=True)
class AdminNotifications:
    """How the notifier told the admins of drift, what it could not deliver, and the outbox pipe."""

    service: str
    pipe_name: str

    def watch(self, facade: MonitoringFacade) -> None:
        sent = [
            service_metric(self.service, Metric.ADMIN_NOTIFICATION_SENT, channel).with_(label=channel)
            for channel in NOTIFICATION_CHANNELS
        ]
        failed = [
            service_metric(self.service, Metric.ADMIN_NOTIFICATION_FAILED, reason).with_(label=reason)
            for reason in NOTIFICATION_FAILURE_REASONS
        ]
        pipe = [
            cloudwatch.Metric(
                namespace=PIPES_NAMESPACE,
                metric_name=name,
                dimensions_map={"PipeName": self.pipe_name},
                period=FIVE_MINUTES,
                statistic=cloudwatch.Stats.SUM,
                label=name,
            )
            for name in PIPE_METRICS
        ]
        facade.monitor_custom(
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
