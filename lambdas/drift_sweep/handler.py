"""Drift sweep Lambda, run on a schedule: ends the drift flows nobody repeated once their
replacement expired.

What it runs is its entry point, ``booking_durability.entrypoints.drift_sweep`` (in the domain layer).
"""

from booking_durability.entrypoints.drift_sweep import handler

__all__ = ["handler"]
