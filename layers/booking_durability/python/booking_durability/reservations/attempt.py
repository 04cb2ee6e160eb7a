"""One confirmation attempt: the transaction that makes a live hold a booking
(docs/reference/http-api.md#confirmation-request-and-answer).

It confirms the hold, turns its ownership into the booking's, writes the booking and the answer
kept for repeats (and the ``Idempotency-Key``), the drift event when there is one, and checks
that the venue still has the hold's policy, so a change between read and write is met as drift
and never committed past. Used for a hold as it was quoted, and for the replacement a drift flow
made (``drift.py``). A refused write is the caller's to decide on (``WriteConflict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from booking_durability.drift_events import PolicyDriftData
from booking_durability.observability import count, logger
from booking_durability.reservations.holds import Hold
from booking_durability.reservations.ports import Booking, ConfirmedAnswer, ReservationStore, StoredHold
from booking_durability.times import iso


@dataclass(frozen=True)
class Recovery:
    """What a confirmation after drift says of it: the hold the flow began from, and the
    confirmation attempts the flow spent."""

    original: Hold
    attempts: int


def confirm_hold(
    store: ReservationStore,
    stored: StoredHold,
    booking_id: str,
    now: datetime,
    *,
    answered_hold_id: str,
    idempotency_key: str | None,
    recovery: Recovery | None = None,
    event: PolicyDriftData | None = None,
    origin: StoredHold | None = None,
) -> dict[str, Any]:
    """Confirm ``stored`` as ``booking_id``; the 200 body, kept for repeats under
    ``answered_hold_id`` (the hold the request named, or the original of a drift flow). With
    ``origin``, the hold is the replacement of ``origin``'s open drift flow, which ends with it."""
    hold = stored.hold
    booking = Booking(
        booking_id=booking_id,
        hold_id=hold.hold_id,
        venue_id=hold.venue_id,
        table_ids=hold.table_ids,
        starts_at=hold.starts_at,
        ends_at=hold.ends_at,
        status="confirmed",
        owns_until=stored.owns_until,
    )
    body = confirmation_body(hold, booking, recovery)
    store.confirm(
        stored,
        booking,
        ConfirmedAnswer(answered_hold_id, booking_id, body),
        now,
        idempotency_key=idempotency_key,
        event=event,
        original=origin,
    )
    count("HoldConfirmed")
    logger.info(
        "hold confirmed",
        extra={"hold_id": hold.hold_id, "booking_id": booking_id, "policy_version": hold.policy_version},
    )
    return body


def confirmation_body(hold: Hold, booking: Booking, recovery: Recovery | None) -> dict[str, Any]:
    return {
        "booking_id": booking.booking_id,
        "hold_id": hold.hold_id,
        "venue_id": hold.venue_id,
        "table_ids": list(hold.table_ids),
        "starts_at": iso(hold.starts_at),
        "ends_at": iso(hold.ends_at),
        "policy_hash": hold.policy_hash,
        "policy_version": hold.policy_version,
        "status": "confirmed",
        "policy_drift": None
        if recovery is None
        else {
            "recovered": True,
            "attempts": recovery.attempts,
            "original_hold_id": recovery.original.hold_id,
            "original_policy_hash": recovery.original.policy_hash,
        },
    }
