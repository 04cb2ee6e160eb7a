"""Alarms, the topic they notify, and a small dashboard for the email pipeline."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.settings import METRICS_NAMESPACE, StageSettings

# CONTRACT §2: why a message reached the DLQ (the EmailDeadLettered metric's dimension).
FAILURE_REASONS = (
    "invalid_json",
    "schema_invalid",
    "provider_rejected",
    "render_failed",
    "transient_exhausted",
    "throttle_exhausted",
)
_ONE_MINUTE = Duration.minutes(1)
_FIVE_MINUTES = Duration.minutes(5)


class Monitoring(Construct):
    """What tells an operator that guests are not getting their emails.

    First of all, any message in the DLQ: each one is an email that will not go out until
    someone redrives it. Then consumer errors (crashes: SQS redelivers and, after five, dead-letters)
    and throttles (the function cannot keep up). Every alarm notifies ``topic`` on alarm and on
    recovery; operators subscribe to it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        email_queue: sqs.IQueue,
        email_dlq: sqs.IQueue,
        consumer: lambda_.IFunction,
        consumer_service: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # A key of our own: CloudWatch cannot publish to a topic under the AWS-managed SNS key.
        topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the booking durability alarm topic ({settings.name})",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        topic_key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"Booking durability alarms ({settings.name})",
            master_key=topic_key,
            enforce_ssl=True,
        )

        def alarm(
            construct_id: str,
            description: str,
            metric: cloudwatch.IMetric,
            threshold: float = 0,
            comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        ) -> cloudwatch.Alarm:
            # One evaluation period, and no data means nothing is wrong (an idle pipeline is fine).
            return cloudwatch.Alarm(
                self,
                construct_id,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )

        def delivery_metric(
            name: str, statistic: str = cloudwatch.Stats.SUM, **dimensions: str
        ) -> cloudwatch.Metric:
            # The consumer's own EMF metrics; Powertools adds the "service" dimension.
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": consumer_service, **dimensions},
                period=_FIVE_MINUTES,
                statistic=statistic,
            )

        self.dlq_not_empty = alarm(
            "EmailDlqNotEmpty",
            "Emails are in the DLQ and will not be delivered until redriven: read their "
            "failure_reason attribute, fix the cause, then redrive.",
            email_dlq.metric_approximate_number_of_messages_visible(
                period=_ONE_MINUTE, statistic=cloudwatch.Stats.MAXIMUM
            ),
        )
        self.consumer_errors = alarm(
            "ConsumerErrors",
            "The email consumer failed whole invocations (not single records): SQS redelivers "
            "the batch and dead-letters it after five receives.",
            consumer.metric_errors(period=_FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
        )
        self.consumer_throttles = alarm(
            "ConsumerThrottles",
            "Lambda throttled the email consumer: account concurrency is exhausted, so emails "
            "wait in the queue.",
            consumer.metric_throttles(period=_FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
        )
        self.provider_failing = alarm(
            "ProviderFailing",
            "The email provider keeps failing transiently (5xx, timeouts, or 401/403: a wrong or "
            "rotated API key). Emails are retried with backoff and dead-lettered after five "
            "receives: check the provider's status and the provider secret.",
            delivery_metric("EmailTransientFailure"),
            threshold=settings.observability.provider_failure_alarm_threshold,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        alarms = [self.dlq_not_empty, self.consumer_errors, self.consumer_throttles, self.provider_failing]
        notify = cloudwatch_actions.SnsAction(self.topic)
        for each in alarms:
            each.add_alarm_action(notify)
            each.add_ok_action(notify)

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"BookingDurability-{settings.name}",
            default_interval=Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=3),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Email queue",
                left=[
                    email_queue.metric_approximate_number_of_messages_visible(period=_ONE_MINUTE),
                    email_queue.metric_approximate_number_of_messages_not_visible(period=_ONE_MINUTE),
                ],
                right=[email_queue.metric_approximate_age_of_oldest_message(period=_ONE_MINUTE)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Email DLQ depth",
                left=[
                    email_dlq.metric_approximate_number_of_messages_visible(
                        period=_ONE_MINUTE, statistic=cloudwatch.Stats.MAXIMUM
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Email consumer",
                left=[
                    consumer.metric_invocations(period=_FIVE_MINUTES),
                    consumer.metric_errors(period=_FIVE_MINUTES),
                    consumer.metric_throttles(period=_FIVE_MINUTES),
                ],
                right=[consumer.metric_duration(period=_FIVE_MINUTES, statistic=cloudwatch.Stats.p(99))],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Email outcomes",
                left=[
                    delivery_metric(name)
                    for name in (
                        "EmailSent",
                        "EmailDuplicateSkipped",
                        "EmailDeferred",
                        "EmailTransientFailure",
                        "EmailThrottled",
                        "EmailPermanentFailure",
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-lettered, by failure_reason",
                left=[
                    delivery_metric("EmailDeadLettered", failure_reason=reason).with_(label=reason)
                    for reason in FAILURE_REASONS
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Delivery lag (ms after deliver_at)",
                left=[delivery_metric("EmailDeliveryLagMs", cloudwatch.Stats.p(99))],
                right=[delivery_metric("EmailDeliveryLagMs", cloudwatch.Stats.p(50))],
                width=12,
            ),
        )
