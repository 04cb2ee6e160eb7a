"""What the monitoring watches: each kind of resource brings its own dashboard section and alarms.

A watched resource is a small frozen record of what to watch and what its alarms mean to the
people they page (a :class:`~stacks.runbook.Page` each); :meth:`Watched.watch` adds it to
cdk-monitoring-constructs' ``MonitoringFacade``, which knows what to graph for a queue with a
DLQ, a Lambda function, a table or an API, and makes every alarm the same way. The constructs that
own a resource say how it is watched; :class:`~stacks.monitoring.Monitoring` only collects them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from cdk_monitoring_constructs import (
    CustomAlarmThreshold,
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    ErrorCountThreshold,
    LatencyType,
    MaxMessageAgeThreshold,
    MaxMessageCountThreshold,
    MonitoringFacade,
    ThrottledEventsThreshold,
)

from booking_durability.metric_names import NAMESPACE, Metric
from stacks.function import ServiceFunction
from stacks.queue_with_dlq import QueueWithDlq
from stacks.runbook import AlarmKey, Page
from stacks.settings import ApiSettings

API_NAMESPACE = "AWS/ApiGateway"
ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
# Every alarm of the service pages: one severity, one topic.
_PAGE = "Critical"
_Threshold = TypeVar("_Threshold", bound=CustomAlarmThreshold)


class Watched(Protocol):
    """A resource, or a set of the service's own metrics, that adds its section and alarms."""

    def watch(self, facade: MonitoringFacade) -> None: ...


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

    def watch(self, facade: MonitoringFacade) -> None:
        oldest = self.oldest_message
        facade.monitor_sqs_queue_with_dlq(
            queue=self.queues.queue,
            dead_letter_queue=self.queues.dlq,
            human_readable_name=f"{self.name} queue",
            alarm_friendly_name=f"{self.name.lower()}-queue",
            # One visible message is enough, within the minute.
            add_dead_letter_queue_max_size_alarm=page(
                MaxMessageCountThreshold, self.on_dead_letter, max_message_count=0, period=ONE_MINUTE
            ),
            add_queue_max_message_age_alarm=None
            if oldest is None
            else page(MaxMessageAgeThreshold, oldest.page, max_age_in_seconds=oldest.max_age_seconds),
        )


@dataclass(frozen=True)
class WatchedDeadLetterQueue:
    """A dead-letter queue of something other than a queue (a pipe), and what a message in it means."""

    name: str
    queue: sqs.IQueue
    on_dead_letter: Page

    def watch(self, facade: MonitoringFacade) -> None:
        facade.monitor_sqs_queue(
            queue=self.queue,
            human_readable_name=f"{self.name} DLQ",
            alarm_friendly_name=f"{self.name.lower().replace(' ', '-')}-dlq",
            # One visible message is enough, within the minute, as for the queues' own DLQs.
            add_queue_max_size_alarm=page(
                MaxMessageCountThreshold, self.on_dead_letter, max_message_count=0, period=ONE_MINUTE
            ),
        )


@dataclass(frozen=True)
class WatchedFunction:
    """A function, and what its failed invocations and throttles mean."""

    name: str
    function: ServiceFunction
    on_errors: Page
    on_throttles: Page

    def watch(self, facade: MonitoringFacade) -> None:
        # Errors count failed invocations (crashes, timeouts), not records a handler reported.
        # The section draws invocations, errors, throttles, duration p50/p90/p99 and concurrency.
        facade.monitor_lambda_function(
            lambda_function=self.function.function,
            human_readable_name=self.name,
            alarm_friendly_name=self.function.service,
            add_fault_count_alarm=page(ErrorCountThreshold, self.on_errors, max_error_count=0),
            add_throttles_count_alarm=page(ErrorCountThreshold, self.on_throttles, max_error_count=0),
        )


@dataclass(frozen=True)
class WatchedTable:
    """A table, and what its throttled requests (reads or writes) mean."""

    name: str
    table: dynamodb.ITable
    on_throttles: Page

    def watch(self, facade: MonitoringFacade) -> None:
        facade.monitor_dynamo_table(
            table=self.table,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            human_readable_name=f"{self.name} table",
            alarm_friendly_name=f"{self.name.lower()}-table",
            add_read_throttled_events_count_alarm=page(
                ThrottledEventsThreshold, self.on_throttles, max_throttled_events_threshold=0
            ),
            add_write_throttled_events_count_alarm=page(
                ThrottledEventsThreshold, self.on_throttles, max_throttled_events_threshold=0
            ),
        )


@dataclass(frozen=True)
class WatchedApi:
    """The REST API's stage, its rate of server errors, and failures no API function anticipated."""

    api: apigateway.RestApi
    #: The Powertools services of the functions behind it (their UnhandledErrors metric).
    services: Sequence[str]
    limits: ApiSettings

    def watch(self, facade: MonitoringFacade) -> None:
        # Requests, 4xx and 5xx (counts and rates) and latency p50/p99, for the whole stage.
        facade.monitor_api_gateway(
            api=self.api,
            api_stage=self.api.deployment_stage.stage_name,
            human_readable_name="HTTP API",
            alarm_friendly_name="api",
            latency_types_to_render=[LatencyType.P50, LatencyType.P99],
        )
        facade.monitor_custom(
            human_readable_name="HTTP API server errors",
            alarm_friendly_name="api-errors",
            metric_groups=[
                CustomMetricGroup(title="5xx answers (% of requests)", metrics=[self._server_error_rate()]),
                CustomMetricGroup(title="Unhandled errors (500 INTERNAL_ERROR)", metrics=[self._unhandled()]),
            ],
        )

    def _server_error_rate(self) -> CustomMetricWithAlarm:
        # The 5xx rate as 5XXError / Count, judged only over enough requests: an average of
        # 5XXError would page on one failed request out of three at night.
        limits = self.limits
        dimensions = {"ApiName": self.api.rest_api_name, "Stage": self.api.deployment_stage.stage_name}
        requests, errors = (
            cloudwatch.Metric(
                namespace=API_NAMESPACE,
                metric_name=name,
                dimensions_map=dimensions,
                period=FIVE_MINUTES,
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
            period=FIVE_MINUTES,
        )
        return CustomMetricWithAlarm(
            metric=rate,
            alarm_friendly_name="server-error-rate",
            add_alarm=page(
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

    def _unhandled(self) -> CustomMetricWithAlarm:
        # Any failure nothing anticipated pages at once, whichever function met it: each is a
        # 500 a client got, and a bug to find by its error_id.
        by_service = {
            f"unhandled_{n}": service_metric(name, Metric.UNHANDLED_ERRORS)
            for n, name in enumerate(self.services)
        }
        return CustomMetricWithAlarm(
            metric=cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({metric_id}, 0)" for metric_id in by_service),
                using_metrics=by_service,
                label=f"{Metric.UNHANDLED_ERRORS} (all API functions)",
                period=FIVE_MINUTES,
            ),
            alarm_friendly_name="unhandled-errors",
            add_alarm=page(
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


def page(kind: Callable[..., _Threshold], paged: Page, **values: Any) -> dict[str, _Threshold]:
    """One alarm that pages, described by ``paged``: what it means and its runbook section.

    No data is not an alarm: an idle queue or function reports nothing, and that is fine.
    """
    return {
        _PAGE: kind(
            **values,
            alarm_description_override=paged.description,
            treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    }


def service_metric(
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
        period=FIVE_MINUTES,
        statistic=statistic,
    )
