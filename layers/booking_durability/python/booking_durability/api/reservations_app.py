"""The reservation routes' function: venues, holds and bookings, with health and the OpenAPI
document. It may touch the reservations table only."""

from booking_durability.api import reservations, service
from booking_durability.api.resolver import build_resolver

app = build_resolver([service.router, reservations.router])
