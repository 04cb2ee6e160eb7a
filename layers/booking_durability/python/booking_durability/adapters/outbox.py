"""The outbox: a drift event written in the transaction of the state change it reports; the
table's stream publishes it to the notifier."""

from __future__ import annotations

from booking_durability.adapters.dynamodb import Expression, Operation
from booking_durability.adapters.reservation_keys import outbox_key
from booking_durability.adapters.table_store import KEEP_AFTER
from booking_durability.drift_events import PolicyDriftData
from booking_durability.reservations.ownership import epoch


def outbox_event(event: PolicyDriftData) -> Operation:
    """``event`` as an outbox item, written once (refused as ``outbox`` if its id is taken)."""
    return Operation(
        "outbox",
        "Put",
        item={
            **outbox_key(str(event.event_id)),
            "event_type": event.type,
            "body": event.model_dump_json(exclude_none=True),
            "expires_at": epoch(event.occurred_at + KEEP_AFTER),
        },
        condition=Expression("attribute_not_exists(pk)"),
    )
