"""The reservations table: every store of reservations on the one DynamoDB table.

``ReservationsTable`` is ``reservations.ports.ReservationStore``: the stores of venues
(``venues_table``), holds and table ownership (``holds_table``), bookings and confirmations
(``bookings_table``) and drift flows (``drift_flows_table``), each writing its drift events to
the outbox (``outbox``), sharing the table; ``reservation_keys`` lays out its items.
"""

from __future__ import annotations

from booking_durability.adapters.bookings_table import BookingsTable
from booking_durability.adapters.drift_flows_table import DriftFlowsTable
from booking_durability.adapters.holds_table import HoldsTable
from booking_durability.adapters.venues_table import VenuesTable


class ReservationsTable(VenuesTable, HoldsTable, BookingsTable, DriftFlowsTable):
    """Every store at once, on ``table`` (``ReservationsTable(DynamoTable(name, client))``)."""
