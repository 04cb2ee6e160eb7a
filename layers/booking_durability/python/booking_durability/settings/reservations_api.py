"""The reservation routes' settings."""

from __future__ import annotations

from booking_durability.settings import Settings


class ReservationsApiSettings(Settings):
    """The venue, hold and booking routes' function."""

    reservations_table: str
