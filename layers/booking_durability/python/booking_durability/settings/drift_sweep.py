"""The drift sweep's settings."""

from __future__ import annotations

from booking_durability.settings import Settings


class DriftSweepSettings(Settings):
    """The drift sweep's function: it ends interrupted drift flows in the reservations table."""

    reservations_table: str
