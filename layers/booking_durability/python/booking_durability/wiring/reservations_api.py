"""The reservation routes' dependencies: the reservations table."""

from __future__ import annotations

from booking_durability.adapters import aws
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.settings.reservations_api import ReservationsApiSettings
from booking_durability.wiring import Wired


def _build() -> ReservationsTable:
    settings = ReservationsApiSettings.from_environment()
    return ReservationsTable(DynamoTable(settings.reservations_table, aws.client("dynamodb")))


store = Wired(_build)
