"""The email routes' settings."""

from __future__ import annotations

from booking_durability.settings.publishing import ProducerSettings


class EmailApiSettings(ProducerSettings):
    """The email routes' function: publishes jobs and records them in the deliveries ledger."""

    deliveries_table: str
