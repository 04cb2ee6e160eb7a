"""Email routes of the HTTP API: API Gateway proxy event in, proxy response out.

What it runs is its entry point, ``booking_durability.entrypoints.email_api`` (in the domain layer).
"""

from booking_durability.entrypoints.email_api import handler

__all__ = ["handler"]
