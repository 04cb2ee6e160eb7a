"""What the reservation logic needs from its stores, as interfaces, so that it imports no AWS
code: a store per aggregate (venues; holds and the table ownership they take; bookings with their
confirmations and drift flows), and ``ReservationStore`` where logic needs them all.

``adapters.reservations_table.ReservationsTable`` implements every one on DynamoDB; tests also
hand the logic ``tests/fakes/reservations.py``, which keeps them in memory and passes the same
contract tests (tests/unit/reservations/test_store_contract.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from booking_durability.drift_events import DriftReason, PolicyDriftData
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold
from booking_durability.reservations.intervals import Interval
from booking_durability.reservations.ownership import Slot, SlotRecord, SlotWrite
from booking_durability.times import iso


@dataclass(frozen=True)
class StoredVenue:
    venue_id: str
    config_json: str  # the canonical JSON the policy hash is taken of
    policy_hash: str
    policy_version: int


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    #: Not a booking yet: the id an open drift flow claimed (the store's, never answered).
    PENDING = "pending"


@dataclass(frozen=True)
class Booking:
    booking_id: str
    hold_id: str
    venue_id: str
    table_ids: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    status: BookingStatus
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


class FlowState(StrEnum):
    OPEN = "open"  # the replacement is stored and neither confirmed nor released yet
    RECOVERED = "recovered"  # the replacement was confirmed
    UNRECOVERED = "unrecovered"  # the flow ended in 409 POLICY_CHANGED (``reason``)


@dataclass(frozen=True)
class DriftFlow:
    """A confirm request that met drift, with all its repeats: kept on the original hold it
    superseded, so that a repeat (or the sweep, once the replacement expired) carries it on.

    It begins in the transaction that replaces the hold (``OPEN``), or, when nothing fits, in the
    one that supersedes it and writes the event (``UNRECOVERED`` at once). It ends, with its one
    event, in the transaction that confirms the replacement or releases it.
    """

    booking_id: str
    state: FlowState
    attempts: int  # confirmation attempts the flow spends: 1, or 2 once there is a replacement
    replacement_id: str | None = None
    idempotency_key: str | None = None  # the request's, claimed for the flow when it began
    reason: DriftReason | None = None  # why it ended unrecovered

    def ended(self, state: FlowState, reason: DriftReason | None = None) -> DriftFlow:
        return replace(self, state=state, reason=reason)


@dataclass(frozen=True)
class StoredHold:
    """A hold with what the store keeps beside it."""

    hold: Hold
    owns_until: datetime  # end of the ownership interval (ends_at + the buffer it was quoted with)
    booking_id: str | None = None  # the booking that confirmed it, or whose drift flow superseded it
    flow: DriftFlow | None = None  # on a hold a drift flow superseded
    replaces: str | None = None  # on a replacement: the hold whose flow made it


class AnswerBody(Mapping[str, Any]):
    """A 200 body as it was first answered: its JSON text, stored and answered verbatim, so that
    a repeat gets the very bytes of the first answer; read by field like the object it is."""

    __slots__ = ("_fields", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._fields: dict[str, Any] = json.loads(text)

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> AnswerBody:
        return cls(json.dumps(fields, ensure_ascii=False))

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"AnswerBody({self.text!r})"


@dataclass(frozen=True)
class ConfirmedAnswer:
    """A confirmation's stored 200 body, and what it answered (for repeats)."""

    hold_id: str  # the hold the request named (the original, for a drift flow)
    booking_id: str
    body: AnswerBody


@dataclass(frozen=True)
class KeyRecord:
    """What an ``Idempotency-Key`` is bound to: the hold and booking it was first sent with, and
    the 200 body it answered; no body while the drift flow it began has not recovered."""

    hold_id: str
    booking_id: str
    body: AnswerBody | None


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


class VenueStore(VenueReads, Protocol):
    """Venues and every version of their seating policy."""

    def save_venue(self, venue: StoredVenue, previous_version: int | None, now: datetime) -> None:
        """Write version ``venue.policy_version``; ``WriteConflict`` when the current one is no
        longer ``previous_version`` (another writer got there first)."""
        ...


class HoldStore(Protocol):
    """Holds and the table ownership they take."""

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]:
        """Every existing record of the venue's tables in the buckets ``interval`` touches."""
        ...

    def create_hold(self, quoted: QuotedHold, owns_until: datetime, writes: Sequence[SlotWrite]) -> None:
        """Store the hold and its ownership at once, if the venue still has the hold's policy
        and every record is still as read; else ``WriteConflict``."""
        ...

    def hold(self, hold_id: str) -> StoredHold | None: ...

    def end_hold(self, hold: Hold, status: HoldStatus, writes: Sequence[SlotWrite], now: datetime) -> None:
        """Move a live ``held`` hold to ``status`` and write its ownership away, at once;
        ``WriteConflict`` when the hold or a record changed meanwhile."""
        ...


class BookingStore(Protocol):
    """Bookings, and the confirmations that make them (with their answers for repeats)."""

    def booking(self, booking_id: str) -> Booking | None:
        """The booking; None also while only a drift flow has claimed the id."""
        ...

    def cancel_booking(self, booking: Booking, writes: Sequence[SlotWrite], now: datetime) -> None:
        """Cancel a confirmed booking and write its ownership away, at once; ``WriteConflict``
        when it is no longer confirmed or a record changed meanwhile."""
        ...

    def confirm_reads(
        self, hold_id: str, idempotency_key: str | None
    ) -> tuple[StoredHold | None, KeyRecord | None]:
        """The hold, and what the ``Idempotency-Key`` is bound to, in one round trip."""
        ...

    def confirmed_answer(self, booking_id: str) -> ConfirmedAnswer | None: ...

    def confirm(
        self,
        quoted: QuotedHold,
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
        otherwise, carrying the stored answer of a booking that already had the id. With
        ``original`` the hold is the replacement of ``original``'s open drift flow: the booking id
        and key the flow claimed become the confirmation's, and the flow ends recovered."""
        ...


class DriftFlowStore(Protocol):
    """Drift flows: kept on the hold they superseded, claiming a booking id (and key) meanwhile."""

    def replace_hold(
        self,
        original: StoredHold,
        replacement: QuotedHold,
        owns_until: datetime,
        writes: Sequence[SlotWrite],
        now: datetime,
        *,
        flow: DriftFlow,
    ) -> None:
        """Begin ``flow``: supersede the live ``original`` by ``replacement`` and move its
        ownership, claim the flow's booking id (and key) for it, at once, only while the venue
        has the replacement's policy; ``WriteConflict`` naming what was refused (``hold``,
        ``booking``, ``idempotency``, ``policy``, a record)."""
        ...

    def end_drifted(
        self,
        original: Hold,
        writes: Sequence[SlotWrite],
        now: datetime,
        flow: DriftFlow,
        event: PolicyDriftData,
    ) -> None:
        """Supersede the live ``original`` with ``flow`` ended at once (no replacement: nothing
        fits), free its tables, claim the flow's key, and write ``event``, all at once."""
        ...

    def end_flow(
        self,
        original_id: str,
        flow: DriftFlow,
        replacement: Hold | None,
        writes: Sequence[SlotWrite],
        now: datetime,
        event: PolicyDriftData,
    ) -> None:
        """End the open ``flow`` of ``original_id`` as ``flow`` now says (unrecovered): release
        ``replacement`` when given (it is still held) and write ``writes`` away, free the flow's
        booking id, write ``event``, all at once; ``WriteConflict`` (``original``: the flow is no
        longer open; ``replacement``: it is no longer held)."""
        ...

    def due_flows(self, now: datetime) -> list[str]:
        """The holds whose open drift flow's replacement expired by ``now`` (an index read: it
        may lag a write by a moment, and may name a flow that has just ended)."""
        ...


class ReservationStore(VenueStore, HoldStore, BookingStore, DriftFlowStore, Protocol):
    """Every store at once: for the logic that reads a venue, moves holds and confirms."""
