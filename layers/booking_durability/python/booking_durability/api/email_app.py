"""The email routes' function: its resolver, made at import like every Powertools resolver.

It serves the email routes only (the email queue and the deliveries table are all it may touch).
"""

from booking_durability.api import emails
from booking_durability.api.resolver import build_resolver

app = build_resolver([emails.router])
