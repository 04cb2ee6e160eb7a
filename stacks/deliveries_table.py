"""The deliveries (dedupe) table: one item per email the service has been asked to deliver."""

from __future__ import annotations

from constructs import Construct

from stacks.runbook import AlarmKey, Page
from stacks.settings import StageSettings
from stacks.tables import service_table
from stacks.watched import WatchedTable

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
        self.table = service_table(
            self,
            "Table",
            settings=settings,
            partition_key=PARTITION_KEY,
            sort_key=SORT_KEY,
            ttl_attribute=TTL_ATTRIBUTE,
        )
        self.watched = WatchedTable(
            name="Deliveries",
            table=self.table,
            on_throttles=Page(
                AlarmKey.DELIVERIES_TABLE_THROTTLES,
                "DynamoDB throttled requests to the deliveries table: claims and status reads fail, "
                "so emails are retried (and after five receives dead-lettered) and email API calls "
                "answer 5xx.",
            ),
        )
