"""The reservations table: venues, holds, bookings and their outbox, in one table."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.monitoring import WatchedTable
from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.tables import service_table

PARTITION_KEY = "pk"
SORT_KEY = "sk"
#: Epoch seconds after which DynamoDB may delete an item (a held hold long past its expiry).
TTL_ATTRIBUTE = "expires_at"


class ReservationsTable(Construct):
    """Where the reservations API keeps venues (every policy version), holds and bookings.

    A single table with generic string keys (``pk``/``sk``): the runtime lays out its item types
    and writes what must change together in one transaction. Its stream carries each item's new
    image, from which an outbox item (a policy-drift notification) is published. Point-in-time
    recovery protects who owns which table when; in prod the table outlives the stack.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StageSettings) -> None:
        super().__init__(scope, construct_id)
        self.table = service_table(
            self,
            "Table",
            settings=settings,
            partition_key=PARTITION_KEY,
            sort_key=SORT_KEY,
            ttl_attribute=TTL_ATTRIBUTE,
            stream=dynamodb.StreamViewType.NEW_IMAGE,
        )
        self.watched = WatchedTable(
            name="Reservations",
            table=self.table,
            on_throttles=Page(
                AlarmKey.RESERVATIONS_TABLE_THROTTLES,
                "DynamoDB throttled requests to the reservations table: holds, confirmations, venue "
                "updates and cancellations fail with 5xx answers.",
            ),
        )
