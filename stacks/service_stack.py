"""One small stack per stage: the service's constructs, composed."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from stacks.deliveries_table import DeliveriesTable
from stacks.email_pipeline import CONSUMER_SERVICE, EmailPipeline
from stacks.function import lambda_runtime
from stacks.layers import SharedLayers
from stacks.monitoring import Monitoring
from stacks.settings import SERVICE_NAME, StageSettings


class ServiceStack(Stack):
    """``BookingDurability-<stage>``: durable guest emails for the booking platform."""

    def __init__(self, scope: Construct, settings: StageSettings, *, env: Environment | None = None) -> None:
        super().__init__(
            scope,
            settings.stack_name,
            env=env,
            description=f"Booking durability service ({settings.name}): durable, deduplicated guest emails",
            tags={"service": SERVICE_NAME, "stage": settings.name},
        )
        self.settings = settings
        layers = SharedLayers(self, "Layers", runtime=lambda_runtime())
        self.deliveries = DeliveriesTable(self, "Deliveries", settings=settings)
        self.email_pipeline = EmailPipeline(
            self,
            "EmailPipeline",
            settings=settings,
            layers=layers.all,
            deliveries_table=self.deliveries.table,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            settings=settings,
            email_queue=self.email_pipeline.queue,
            email_dlq=self.email_pipeline.dlq,
            consumer=self.email_pipeline.consumer.function,
            consumer_service=CONSUMER_SERVICE,
        )

        # What producers, operators' tools and the local stack look up.
        CfnOutput(self, "EmailQueueUrl", value=self.email_pipeline.queue.queue_url)
        CfnOutput(self, "EmailDlqUrl", value=self.email_pipeline.dlq.queue_url)
        CfnOutput(self, "DeliveriesTableName", value=self.deliveries.table.table_name)
        CfnOutput(
            self, "EmailConsumerFunctionName", value=self.email_pipeline.consumer.function.function_name
        )
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
