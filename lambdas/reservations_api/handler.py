"""Venue, hold and booking routes of the HTTP API, with health and the OpenAPI document.

What it runs is its entry point, ``booking_durability.entrypoints.reservations_api`` (in the domain layer).
"""

from booking_durability.entrypoints.reservations_api import handler

__all__ = ["handler"]
