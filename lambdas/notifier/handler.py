"""Drift notifier Lambda: SQS batch of drift events in, partial batch response out.

What it runs is its entry point, ``booking_durability.entrypoints.notifier`` (in the domain layer).
"""

from booking_durability.entrypoints.notifier import handler

__all__ = ["handler"]
