"""The deliveries (dedupe) table: one item per email the service has been asked to deliver."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.settings import StageSettings

PARTITION_KEY = "booking_id"
#: ``"{email_type}#{revision}"``: with the partition key, exactly the email's dedupe key.
SORT_KEY = "email_key"
TTL_ATTRIBUTE = "expires_at"


class DeliveriesTable(Construct):
    """Where the consumer claims each dedupe key before sending, and records how it ended.

    Items hold ids, status, attempts, lease and timestamps only: never the recipient's address
    or name, nor the rendered email (the runtime writes no personal data here), so the table can
    keep its records for the 30-day dedupe window (``expires_at``, a TTL) without becoming a
    store of guests' contact details. Point-in-time recovery protects the at-most-once record;
    in prod the table outlives the stack.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StageSettings) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        )
