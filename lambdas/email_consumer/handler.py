"""Email consumer Lambda: SQS batch in, partial batch response out.

What it runs is its entry point, ``booking_durability.entrypoints.email_consumer`` (in the domain layer).
"""

from booking_durability.entrypoints.email_consumer import handler

__all__ = ["handler"]
