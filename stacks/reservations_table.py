"""The reservations table: venues, holds, bookings and their outbox, in one table."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.tables import service_table
from stacks.watched import WatchedTable

PARTITION_KEY = "pk"
SORT_KEY = "sk"
#: Epoch seconds after which DynamoDB may delete an item (a held hold long past its expiry).
TTL_ATTRIBUTE = "expires_at"
#: The sparse index of drift flows still open, by when their replacement expires: what the drift
#: sweep queries (the runtime's ``adapters.reservation_keys.OPEN_FLOWS_INDEX`` and its keys;
#: an infrastructure test keeps them equal).
OPEN_FLOWS_INDEX = "open-flows"
OPEN_FLOW_ATTRIBUTE = "open_flow"
FLOW_DUE_ATTRIBUTE = "flow_due"
#: The partition keys of booking items (the runtime's ``adapters.reservation_keys.booking_key``;
#: an infrastructure test keeps them equal).
BOOKING_KEY_PREFIX = "BOOKING#"
#: Ending a drift flow unrecovered frees the booking id the flow claimed: the one item any
#: function deletes, a booking still ``pending`` (a condition of the write). The grant is held to
#: booking items by their partition key, so no role can delete a venue, a hold or an outbox item.
FREE_CLAIMED_BOOKING_ID = ("dynamodb:DeleteItem",)
BOOKING_ITEMS_ONLY = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{BOOKING_KEY_PREFIX}*"]}}


class ReservationsTable(Construct):
    """Where the reservations API keeps venues (every policy version), holds and bookings.

    A single table with generic string keys (``pk``/``sk``): the runtime lays out its item types
    and writes what must change together in one transaction. One sparse index lists the drift
    flows still open (``OPEN_FLOWS_INDEX``), so the sweep that ends interrupted ones never scans.
    Its stream carries each item's new image, from which an outbox item (a policy-drift
    notification) is published. Point-in-time
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
        # Keys only: the sweep reads each flow's hold itself, consistently, before it acts.
        self.table.add_global_secondary_index(
            index_name=OPEN_FLOWS_INDEX,
            partition_key=dynamodb.Attribute(name=OPEN_FLOW_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=FLOW_DUE_ATTRIBUTE, type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
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
