"""What the reservation logic needs from its store, as an interface, so that it imports no AWS
code.

``adapters.reservations_table.ReservationsTable`` implements it on DynamoDB (tests use it too, on
moto, subclassing it where they stage a race).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from booking_durability.drift_events import PolicyDriftData
from booking_durability.reservations.holds import Hold
from booking_durability.reservations.intervals import Interval
from booking_durability.reservations.ownership import Slot, SlotRecord, SlotWrite
from booking_durability.times import iso


@dataclass(frozen=True)
class StoredVenue:
    venue_id: str
    config_json: str  # the canonical JSON the policy hash is taken of
    policy_hash: str
    policy_version: int


@dataclass(frozen=True)
class Booking:
    booking_id: str
    hold_id: str
    venue_id: str
    table_ids: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    status: str  # confirmed | cancelled
    owns_until: datetime  # end of the ownership interval (ends_at + the buffer it was quoted with)

    def to_response(self) -> dict[str, Any]:
        return {
            "booking_id": self.booking_id,
            "hold_id": self.hold_id,
            "venue_id": self.venue_id,
            "table_ids": list(self.table_ids),
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "status": self.status,
        }


@dataclass(frozen=True)
class StoredHold:
    """A hold with what the store keeps beside it."""

    hold: Hold
    owns_until: datetime  # end of the ownership interval (ends_at + the buffer it was quoted with)
    booking_id: str | None = None  # the booking that confirmed it (or its replacement)


@dataclass(frozen=True)
class ConfirmedAnswer:
    """A confirmation's stored 200 body, and what it answered (for repeats)."""

    hold_id: str  # the hold the request named
    booking_id: str
    body: dict[str, Any]


class WriteConflict(Exception):
    """A write lost a race: another writer changed what it read. Re-read and try again.

    ``refused`` names the conditions that failed (``policy``: the venue's policy changed since it
    was read; ``hold``, ``booking``, ``idempotency``, ``venue``...); empty for a plain conflict.
    What a refused condition found comes with it, so that nobody reads it again: when a
    confirmation's ``booking`` is refused, ``booking`` is the answer stored with the booking that
    already has the id (None when that booking has no stored answer); when a venue save's
    ``venue`` is refused, ``venue`` is the venue's current version (None when it has none).
    """

    def __init__(
        self,
        refused: frozenset[str] = frozenset(),
        *,
        booking: ConfirmedAnswer | None = None,
        venue: StoredVenue | None = None,
    ) -> None:
        super().__init__(f"write conflict: {sorted(refused)}")
        self.refused = refused
        self.booking = booking
        self.venue = venue

    @property
    def policy_moved(self) -> bool:
        return "policy" in self.refused


class VenueReads(Protocol):
    """A venue's versions, as every store of reservations reads them."""

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        """The current version, or version ``version``; None when there is none."""
        ...

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        """Every version of the venue, any order (none when the venue does not exist)."""
        ...


class ReservationStore(VenueReads, Protocol):
    def save_venue(self, venue: StoredVenue, previous_version: int | None, now: datetime) -> None:
        """Write version ``venue.policy_version``; ``WriteConflict`` when the current one is no
        longer ``previous_version`` (another writer got there first)."""
        ...

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]: ...

    def create_hold(self, hold: Hold, owns_until: datetime, writes: Sequence[SlotWrite]) -> None:
        """Store the hold and its ownership at once, if the venue still has the hold's policy
        and every record is still as read; else ``WriteConflict``."""
        ...

    def hold(self, hold_id: str) -> StoredHold | None: ...

    def end_hold(
        self,
        hold: Hold,
        status: str,
        writes: Sequence[SlotWrite],
        now: datetime,
        event: PolicyDriftData | None = None,
    ) -> None:
        """Move a live ``held`` hold to ``status`` and write its ownership away (and ``event`` to
        the outbox), all at once; ``WriteConflict`` when the hold or a record changed meanwhile."""
        ...

    def replace_hold(
        self,
        original: StoredHold,
        replacement: Hold,
        owns_until: datetime,
        writes: Sequence[SlotWrite],
        now: datetime,
    ) -> None:
        """Supersede ``original`` by ``replacement`` and move its ownership, at once, only while
        the venue has the replacement's policy."""
        ...

    def confirm_reads(
        self, hold_id: str, idempotency_key: str | None
    ) -> tuple[StoredHold | None, ConfirmedAnswer | None]:
        """The hold, and what the ``Idempotency-Key`` answered before, in one round trip."""
        ...

    def confirmed_answer(self, booking_id: str) -> ConfirmedAnswer | None: ...

    def confirm(
        self,
        stored: StoredHold,
        booking: Booking,
        answer: ConfirmedAnswer,
        now: datetime,
        *,
        idempotency_key: str | None = None,
        event: PolicyDriftData | None = None,
        original: StoredHold | None = None,
    ) -> None:
        """Confirm a live hold as ``booking`` and store ``answer`` for repeats (and ``event`` in the
        outbox), at once, only while the venue still has the hold's policy; ``WriteConflict``
        otherwise, carrying the stored answer of a booking that already had the id."""
        ...

    def record_event(self, event: PolicyDriftData) -> None:
        """Write ``event`` to the outbox alone (when nothing else is written with it)."""
        ...

    def booking(self, booking_id: str) -> Booking | None: ...

    def cancel_booking(self, booking: Booking, writes: Sequence[SlotWrite], now: datetime) -> None: ...
