"""Alarms, the topic they notify, and one dashboard, over every watched part of the service.

A facade over cdk-monitoring-constructs' ``MonitoringFacade``: each watched resource (a queue
with its DLQ, a function, a table, the API, the service's own metrics: ``stacks/watched.py``,
``stacks/service_metrics.py``) brings its own dashboard section and alarms; this construct gives
them one topic to notify, one way to make an alarm (one datapoint, missing data not breaching,
the topic notified on alarm and on recovery), and lays the dashboard out, alarms first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    DefaultDashboardFactory,
    MetricFactoryDefaults,
    MonitoringFacade,
    SnsAlarmActionStrategy,
)
from constructs import Construct

from stacks.function import removal_policy
from stacks.runbook import RUNBOOK_PATH
from stacks.service_metrics import LAG_ALARM_PERIODS
from stacks.settings import StageSettings
from stacks.watched import FIVE_MINUTES, Watched


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
        self, scope: Construct, construct_id: str, *, settings: StageSettings, watched: Sequence[Watched]
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._alarm_topic(settings)
        self.facade = self._facade(settings)
        for resource in watched:
            resource.watch(self.facade)
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
            metric_factory_defaults=MetricFactoryDefaults(period=FIVE_MINUTES),
            # The facade only collects the sections; self._dashboard lays them out, alarms first.
            dashboard_factory=DefaultDashboardFactory(
                self, "Dashboards", dashboard_name_prefix=settings.stack_name, create_dashboard=False
            ),
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
