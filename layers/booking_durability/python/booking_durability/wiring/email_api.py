"""The email routes' dependencies: the deliveries ledger and the email queue."""

from __future__ import annotations

from booking_durability.adapters import aws
from booking_durability.adapters.deliveries_table import EmailRecordsTable
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.emails.requests import EmailOutbox
from booking_durability.settings.email_api import EmailApiSettings
from booking_durability.wiring import Wired


def _build() -> EmailOutbox:
    settings = EmailApiSettings.from_environment()
    return EmailOutbox(
        records=EmailRecordsTable(DynamoTable(settings.deliveries_table, aws.client("dynamodb"))),
        queue=EmailQueue(settings.email_queue_url, aws.client("sqs")),
        max_hop_seconds=settings.max_delay_hop_seconds,
    )


outbox = Wired(_build)
