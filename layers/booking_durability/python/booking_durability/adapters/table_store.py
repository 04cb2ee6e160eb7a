"""What every store on the reservations table shares: the table, how long items are kept, and
a transaction whose refusal is a ``WriteConflict`` naming what was refused.

The stores (``venues_table``, ``holds_table``, ``bookings_table``, ``drift_flows_table``, with
``outbox``) each keep one aggregate, on the one table, with keys from ``reservation_keys``; what
must change together across them is one transaction of their operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from booking_durability.adapters.dynamodb import DynamoTable, Operation, TransactionRefused
from booking_durability.reservations.ports import WriteConflict

# Holds, bookings and ownership records are kept this long after their time (TTL), for replays
# and for the operator; what they own is decided by time, never by TTL.
KEEP_AFTER = timedelta(days=30)
KEEP_AFTER_SECONDS = int(KEEP_AFTER.total_seconds())


class TableStore:
    """A store on the reservations table."""

    def __init__(self, table: DynamoTable) -> None:
        self.table = table


def transact(table: DynamoTable, operations: Sequence[Operation]) -> None:
    """All of ``operations`` or none; ``WriteConflict`` naming the refused ones."""
    try:
        table.transact(operations)
    except TransactionRefused as refused:
        raise WriteConflict(frozenset(refused.refused)) from None
