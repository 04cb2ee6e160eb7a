"""The drift sweep's dependencies: the reservations table."""

from __future__ import annotations

from booking_durability.adapters import aws
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.settings.drift_sweep import DriftSweepSettings
from booking_durability.wiring import Wired


def _build() -> ReservationsTable:
    settings = DriftSweepSettings.from_environment()
    return ReservationsTable(DynamoTable(settings.reservations_table, aws.client("dynamodb")))


store = Wired(_build)
