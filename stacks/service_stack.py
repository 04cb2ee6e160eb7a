"""One small stack per stage: the service's constructs, composed."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from booking_durability.stack_outputs import StackOutput
from stacks.api import READ_ONLY_ROUTES, ROUTE_GROUPS, BookingApi
from stacks.caller_policies import CallerPolicies
from stacks.deliveries_table import DeliveriesTable
from stacks.drift_sweep import DriftSweep
from stacks.email_pipeline import EmailPipeline
from stacks.function import lambda_runtime
from stacks.layers import SharedLayers
from stacks.monitoring import Monitoring
from stacks.notifications import DriftNotifications
from stacks.reservations_table import ReservationsTable
from stacks.service_metrics import AdminNotifications, EmailDelivery, HoldsAndBookings
from stacks.settings import SERVICE_NAME, StageSettings
from stacks.watched import WatchedApi


class ServiceStack(Stack):
    """``BookingDurability-<stage>``: durable guest emails, policy-safe holds and drift notifications."""

    def __init__(self, scope: Construct, settings: StageSettings, *, env: Environment | None = None) -> None:
        settings.require_real_addresses()
        super().__init__(
            scope,
            settings.stack_name,
            env=env,
            description=(
                f"Booking durability service ({settings.name}): durable, deduplicated guest emails "
                "and policy-safe holds"
            ),
            tags={"service": SERVICE_NAME, "stage": settings.name},
        )
        self.settings = settings
        layers = SharedLayers(self, "Layers", runtime=lambda_runtime())
        self.deliveries = DeliveriesTable(self, "Deliveries", settings=settings)
        self.reservations = ReservationsTable(self, "Reservations", settings=settings)
        self.email_pipeline = EmailPipeline(
            self,
            "EmailPipeline",
            settings=settings,
            layers=layers.all,
            deliveries_table=self.deliveries.table,
        )
        self.notifications = DriftNotifications(
            self,
            "Notifications",
            settings=settings,
            layers=layers.all,
            reservations_table=self.reservations.table,
            email_queue=self.email_pipeline.queue,
        )
        self.api = BookingApi(
            self,
            "Api",
            settings=settings,
            layers=layers.all,
            email_queue=self.email_pipeline.queue,
            deliveries_table=self.deliveries.table,
            reservations_table=self.reservations.table,
        )
        self.drift_sweep = DriftSweep(
            self,
            "DriftSweep",
            settings=settings,
            layers=layers.all,
            reservations_table=self.reservations.table,
        )
        self.monitoring = self._monitoring(settings)
        self.caller_policies = CallerPolicies(
            self,
            "CallerPolicies",
            settings=settings,
            rest_api=self.api.rest_api,
            route_groups=ROUTE_GROUPS,
            read_only_routes=READ_ONLY_ROUTES,
            email_queue=self.email_pipeline.queue,
        )

        self._outputs()

    def _monitoring(self, settings: StageSettings) -> Monitoring:
        return Monitoring(
            self,
            "Monitoring",
            settings=settings,
            # The dashboard's order: queues and DLQs, functions, tables, the API, then the
            # service's own metrics.
            watched=[
                self.email_pipeline.watched_queue,
                self.notifications.watched_queue,
                self.notifications.watched_pipe_dlq,
                self.email_pipeline.watched_consumer,
                *self.api.watched_functions,
                self.notifications.watched_notifier,
                self.drift_sweep.watched,
                self.deliveries.watched,
                self.reservations.watched,
                WatchedApi(
                    self.api.rest_api,
                    services=[self.api.email_api.service, self.api.reservations_api.service],
                    limits=settings.api,
                ),
                EmailDelivery(self.email_pipeline.consumer.service, settings.observability),
                HoldsAndBookings(
                    self.api.reservations_api.service,
                    self.drift_sweep.function.service,
                    settings.observability,
                ),
                AdminNotifications(self.notifications.notifier.service, self.notifications.pipe.ref),
            ],
        )

    def _outputs(self) -> None:
        # What the booking app's stacks import: exported under names that never change.
        self._export(StackOutput.API_URL, self.api.rest_api.url, "The API's base URL (SigV4, execute-api)")
        self._export(
            StackOutput.EMAIL_QUEUE_URL,
            self.email_pipeline.queue.queue_url,
            "Where the booking app publishes email jobs",
        )
        for output_id, (policy, description) in self.caller_policies.outputs.items():
            self._export(output_id, policy.managed_policy_arn, description)
        # What operators' tools and the local stack look up (not exported: nothing imports them).
        CfnOutput(self, StackOutput.EMAIL_DLQ_URL, value=self.email_pipeline.dlq.queue_url)
        CfnOutput(self, StackOutput.NOTIFICATIONS_QUEUE_URL, value=self.notifications.queue.queue_url)
        CfnOutput(self, StackOutput.NOTIFICATIONS_DLQ_URL, value=self.notifications.dlq.queue_url)
        CfnOutput(self, StackOutput.NOTIFICATIONS_PIPE_DLQ_URL, value=self.notifications.pipe_dlq.queue_url)
        if self.email_pipeline.provider_secret is not None:
            # Where operators put the provider's API key (put-secret-value) once the stack exists.
            CfnOutput(
                self, StackOutput.PROVIDER_SECRET_ARN, value=self.email_pipeline.provider_secret.secret_arn
            )
        if self.notifications.webhook_secret is not None:
            # Where operators put the signing secret (put-secret-value) once the stack exists.
            CfnOutput(
                self, StackOutput.WEBHOOK_SECRET_ARN, value=self.notifications.webhook_secret.secret_arn
            )
        CfnOutput(self, StackOutput.DELIVERIES_TABLE_NAME, value=self.deliveries.table.table_name)
        CfnOutput(self, StackOutput.RESERVATIONS_TABLE_NAME, value=self.reservations.table.table_name)
        CfnOutput(
            self,
            StackOutput.EMAIL_CONSUMER_FUNCTION_NAME,
            value=self.email_pipeline.consumer.function.function_name,
        )
        CfnOutput(self, StackOutput.ALARM_TOPIC_ARN, value=self.monitoring.topic.topic_arn)

    def _export(self, output_id: str, value: str, description: str) -> None:
        """An output other stacks import as ``<stack name>-<output id>``: stable while the stage is."""
        CfnOutput(
            self,
            output_id,
            value=value,
            description=description,
            export_name=f"{self.settings.stack_name}-{output_id}",
        )
