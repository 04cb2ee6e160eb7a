"""Holding tables (``POST``/``GET``/``DELETE /v1/holds``) and cancelling bookings
(docs/reference/http-api.md#holds, docs/reference/http-api.md#bookings).

A hold is quoted under the venue's current policy: its tables come from the pure allocator over
the tables no live owner holds during ``[starts_at, ends_at + buffer)``, and are written in one
transaction with the hold, conditioned on every ownership record read and on the venue still
having that policy. A lost race is re-read and allocated again, so contention never answers
``NO_AVAILABILITY`` while a fitting table is free; only a bounded number of rounds is tried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from booking_durability.errors import Busy
from booking_durability.metric_names import Dimension, Metric
from booking_durability.observability import count, count_with_dimension, logger
from booking_durability.reservations.allocator import NoAvailability, allocate
from booking_durability.reservations.catalog import current_venue
from booking_durability.reservations.holds import (
    Hold,
    HoldRequest,
    HoldStatus,
    check_hold_timing,
    new_hold,
    new_hold_id,
)
from booking_durability.reservations.intervals import Interval, ownership_interval
from booking_durability.reservations.ownership import (
    busy_tables,
    claim,
    release,
    rounds,
)
from booking_durability.reservations.ports import (
    Booking,
    BookingStatus,
    BookingStore,
    HoldStore,
    ReservationStore,
    WriteConflict,
)
from booking_durability.reservations.refusals import (
    BookingNotFound,
    HoldNotActive,
    HoldNotFound,
    NoAvailabilityError,
)

# Rounds of re-read and re-allocate when a write loses a race. Each round at least one of the
# racing writers lands, so this bounds how many may race for one table at once.
MAX_ROUNDS = 12


def hold_tables(
    store: ReservationStore,
    request: HoldRequest,
    now: Callable[[], datetime],
    *,
    new_id: Callable[[], str] = new_hold_id,
) -> Hold:
    """Hold the best free tables for ``request``; ``NoAvailabilityError`` when none fit."""
    for _ in rounds(MAX_ROUNDS):
        moment = now()
        venue = current_venue(store, request.venue_id)
        policy = venue.config.policy
        timing = check_hold_timing(request, policy, moment)
        interval = ownership_interval(*timing, policy.buffer_minutes)
        records = store.slot_records(venue.venue_id, interval)
        chosen = allocate(
            venue.config, request.party_size, request.zone, busy_tables(records.values(), interval, moment)
        )
        if isinstance(chosen, NoAvailability):
            count_with_dimension(Metric.NO_AVAILABILITY, Dimension.REASON, chosen.reason.value)
            raise NoAvailabilityError(chosen.reason)
        quoted = new_hold(
            new_id(),
            timing,
            chosen,
            venue_id=venue.venue_id,
            party_size=request.party_size,
            zone=request.zone,
            policy=policy,
            policy_hash=venue.policy_hash,
            policy_version=venue.policy_version,
            now=moment,
        )
        hold = quoted.hold
        writes = claim(records, hold.table_ids, interval, hold.hold_id, hold.expires_at, moment)
        try:
            store.create_hold(quoted, interval.end, writes)
        except WriteConflict:
            continue
        count(Metric.HOLD_CREATED)
        logger.info(
            "hold created",
            extra={"hold_id": hold.hold_id, "venue_id": hold.venue_id, "table_ids": list(hold.table_ids)},
        )
        return hold
    raise Busy("the venue's tables kept changing while they were being held")


def find_hold(store: HoldStore, hold_id: str) -> Hold:
    found = store.hold(hold_id)
    if found is None:
        raise HoldNotFound("no hold has this id")
    return found.hold


def release_hold(store: HoldStore, hold_id: str, now: Callable[[], datetime]) -> Hold:
    """Release a live ``held`` hold and free its tables; ``HOLD_NOT_ACTIVE`` for any other."""
    for _ in rounds(MAX_ROUNDS):
        moment = now()
        found = store.hold(hold_id)
        if found is None:
            raise HoldNotFound("no hold has this id")
        hold, owns_until = found.hold, found.owns_until
        if hold.effective_status(moment) is not HoldStatus.HELD:
            raise HoldNotActive("only a held hold can be released")
        records = store.slot_records(hold.venue_id, Interval(hold.starts_at, owns_until))
        try:
            store.end_hold(hold, HoldStatus.RELEASED, release(records, hold.hold_id, moment), moment)
        except WriteConflict:
            continue
        count(Metric.HOLD_RELEASED)
        logger.info("hold released", extra={"hold_id": hold.hold_id, "venue_id": hold.venue_id})
        return hold.model_copy(update={"status": HoldStatus.RELEASED})
    raise Busy("the hold's tables kept changing while it was being released")


def find_booking(store: BookingStore, booking_id: str) -> Booking:
    booking = store.booking(booking_id)
    if booking is None:
        raise BookingNotFound("no booking has this id")
    return booking


def cancel_booking(store: ReservationStore, booking_id: str, now: Callable[[], datetime]) -> Booking:
    """Cancel a booking and free its tables; cancelling it again answers the same."""
    for _ in rounds(MAX_ROUNDS):
        moment = now()
        booking = find_booking(store, booking_id)
        if booking.status is BookingStatus.CANCELLED:
            return booking
        records = store.slot_records(booking.venue_id, Interval(booking.starts_at, booking.owns_until))
        try:
            store.cancel_booking(booking, release(records, booking.hold_id, moment), moment)
        except WriteConflict:
            continue
        count(Metric.BOOKING_CANCELLED)
        logger.info("booking cancelled", extra={"booking_id": booking_id, "venue_id": booking.venue_id})
        return replace(booking, status=BookingStatus.CANCELLED)
    raise Busy("the booking's tables kept changing while it was being cancelled")
