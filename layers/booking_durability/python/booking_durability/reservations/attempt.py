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
from typing import Literal

from pydantic import BaseModel

from booking_durability.drift_events import PolicyDriftData
from booking_durability.metric_names import Metric
from booking_durability.observability import count, logger
from booking_durability.reservations.holds import Hold, QuotedHold
from booking_durability.reservations.ports import (
    AnswerBody,
    Booking,
    BookingStatus,
    BookingStore,
    ConfirmedAnswer,
    StoredHold,
)
from booking_durability.times import iso


@dataclass(frozen=True)
class Recovery:
    """What a confirmation after drift says of it: the hold the flow began from, and the
    confirmation attempts the flow spent."""

    original: Hold
    attempts: int


def confirm_hold(
    store: BookingStore,
    quoted: QuotedHold,
    owns_until: datetime,
    booking_id: str,
    now: datetime,
    *,
    answered_hold_id: str,
    idempotency_key: str | None,
    recovery: Recovery | None = None,
    event: PolicyDriftData | None = None,
    origin: StoredHold | None = None,
) -> AnswerBody:
    """Confirm the hold (owning its tables until ``owns_until``) as ``booking_id``; the 200 body,
    kept for repeats under ``answered_hold_id`` (the hold the request named, or the original of a
    drift flow). With ``origin``, the hold is the replacement of ``origin``'s open drift flow,
    which ends with it."""
    hold = quoted.hold
    booking = Booking(
        booking_id=booking_id,
        hold_id=hold.hold_id,
        venue_id=hold.venue_id,
        table_ids=hold.table_ids,
        starts_at=hold.starts_at,
        ends_at=hold.ends_at,
        status=BookingStatus.CONFIRMED,
        owns_until=owns_until,
    )
    body = confirmation_body(hold, booking, recovery)
    store.confirm(
        quoted,
        booking,
        ConfirmedAnswer(answered_hold_id, booking_id, body),
        now,
        idempotency_key=idempotency_key,
        event=event,
        original=origin,
    )
    count(Metric.HOLD_CONFIRMED)
    logger.info(
        "hold confirmed",
        extra={"hold_id": hold.hold_id, "booking_id": booking_id, "policy_version": hold.policy_version},
    )
    return body


class _BookedTables(BaseModel):
    # What a booking and its confirmation both answer: whose tables, for when.
    booking_id: str
    hold_id: str
    venue_id: str
    table_ids: list[str]
    starts_at: str
    ends_at: str


class BookingView(_BookedTables):
    status: Literal["confirmed", "cancelled"]

    @classmethod
    def of(cls, booking: Booking) -> BookingView:
        """A booking as ``GET`` and ``DELETE /v1/bookings/{booking_id}`` answer it."""
        return cls(
            booking_id=booking.booking_id,
            hold_id=booking.hold_id,
            venue_id=booking.venue_id,
            table_ids=list(booking.table_ids),
            starts_at=iso(booking.starts_at),
            ends_at=iso(booking.ends_at),
            # As stored: anything but confirmed or cancelled is refused here, never answered.
            status=booking.status,
        )


class PolicyDrift(BaseModel):
    """How a confirmation met a changed policy: recovered on a replacement hold."""

    recovered: Literal[True]
    attempts: int
    original_hold_id: str
    original_policy_hash: str


class ConfirmationView(_BookedTables):
    """The confirmation's 200 body."""

    policy_hash: str
    policy_version: int | None  # an imported hold may have been quoted without one
    status: Literal["confirmed"]
    policy_drift: PolicyDrift | None


def confirmation_body(hold: Hold, booking: Booking, recovery: Recovery | None) -> AnswerBody:
    """The 200 body, serialized once: what is stored is what every answer sends."""
    drift = None
    if recovery is not None:
        drift = PolicyDrift(
            recovered=True,
            attempts=recovery.attempts,
            original_hold_id=recovery.original.hold_id,
            original_policy_hash=recovery.original.policy_hash,
        )
    view = ConfirmationView(
        booking_id=booking.booking_id,
        hold_id=hold.hold_id,
        venue_id=hold.venue_id,
        table_ids=list(hold.table_ids),
        starts_at=iso(hold.starts_at),
        ends_at=iso(hold.ends_at),
        policy_hash=hold.policy_hash,
        policy_version=hold.policy_version,
        status="confirmed",
        policy_drift=drift,
    )
    return AnswerBody(view.model_dump_json())
