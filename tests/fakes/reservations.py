"""The reservation stores in memory (``reservations.ports``): what ``ReservationsTable`` keeps
on DynamoDB, kept in dicts, with the same conditions, the same refused-operation labels and the
same all-or-nothing transactions, so logic tests run on it in a fraction of the time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from booking_durability.adapters.reservation_keys import slot_label
from booking_durability.drift_events import PolicyDriftData
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold
from booking_durability.reservations.intervals import Interval, buckets
from booking_durability.reservations.ownership import Slot, SlotRecord, SlotWrite, epoch, slots
from booking_durability.reservations.ports import (
    Booking,
    BookingStatus,
    ConfirmedAnswer,
    DriftFlow,
    FlowState,
    KeyRecord,
    StoredHold,
    StoredVenue,
)
from tests.fakes.transaction import Transaction


@dataclass
class BookingRow:
    """A booking id as the store keeps it: a booking, or only claimed by a drift flow."""

    status: BookingStatus
    booking: Booking | None = None
    answer: ConfirmedAnswer | None = None
    flow: str | None = None  # the original hold of the open flow that claimed it


@dataclass
class InMemoryReservations:
    """Every reservation store (``ports.ReservationStore``) in memory."""

    venues: dict[str, StoredVenue] = field(default_factory=dict)
    versions: dict[tuple[str, int], StoredVenue] = field(default_factory=dict)
    records: dict[tuple[str, Slot], SlotRecord] = field(default_factory=dict)
    holds: dict[str, StoredHold] = field(default_factory=dict)
    flow_due: dict[str, int] = field(default_factory=dict)  # open flows: when their replacement expires
    bookings: dict[str, BookingRow] = field(default_factory=dict)
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    outbox: dict[str, PolicyDriftData] = field(default_factory=dict)

    # -- venues ------------------------------------------------------------------------------

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        return self.venues.get(venue_id) if version is None else self.versions.get((venue_id, version))

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        return [v for (owner, _), v in self.versions.items() if owner == venue_id]

    def save_venue(self, venue: StoredVenue, previous_version: int | None, now: datetime) -> None:
        current = self.venues.get(venue.venue_id)
        unchanged = (
            current is None
            if previous_version is None
            else (current is not None and current.policy_version == previous_version)
        )
        txn = Transaction()
        txn.check("venue", unchanged, lambda: self.venues.__setitem__(venue.venue_id, venue), found=current)
        versioned = (venue.venue_id, venue.policy_version)
        txn.check(
            "version", versioned not in self.versions, lambda: self.versions.__setitem__(versioned, venue)
        )
        txn.commit()

    # -- holds and ownership -------------------------------------------------------------------

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]:
        hours = set(buckets(interval))
        return {
            slot: r for (owner, slot), r in self.records.items() if owner == venue_id and slot.bucket in hours
        }

    def create_hold(self, quoted: QuotedHold, owns_until: datetime, writes: Sequence[SlotWrite]) -> None:
        hold = quoted.hold
        txn = Transaction()
        self._policy_check(txn, hold.venue_id, quoted.policy_hash)
        self._put_hold(txn, "hold", StoredHold(hold, owns_until))
        self._slot_writes(txn, hold.venue_id, writes)
        txn.commit()

    def hold(self, hold_id: str) -> StoredHold | None:
        return self.holds.get(hold_id)

    def end_hold(self, hold: Hold, status: HoldStatus, writes: Sequence[SlotWrite], now: datetime) -> None:
        txn = Transaction()
        self._move_hold(txn, "hold", hold.hold_id, status, now, live=True)
        self._slot_writes(txn, hold.venue_id, writes)
        txn.commit()

    # -- bookings and confirmations -----------------------------------------------------------

    def booking(self, booking_id: str) -> Booking | None:
        row = self.bookings.get(booking_id)
        return None if row is None else row.booking

    def cancel_booking(self, booking: Booking, writes: Sequence[SlotWrite], now: datetime) -> None:
        row = self.bookings.get(booking.booking_id)
        txn = Transaction()

        def cancel() -> None:
            if row is not None and row.booking is not None:
                row.status = BookingStatus.CANCELLED
                row.booking = replace(row.booking, status=BookingStatus.CANCELLED)

        txn.check("booking", row is not None and row.status is BookingStatus.CONFIRMED, cancel)
        self._slot_writes(txn, booking.venue_id, writes)
        txn.commit()

    def confirm_reads(
        self, hold_id: str, idempotency_key: str | None
    ) -> tuple[StoredHold | None, KeyRecord | None]:
        return self.holds.get(hold_id), None if idempotency_key is None else self.keys.get(idempotency_key)

    def confirmed_answer(self, booking_id: str) -> ConfirmedAnswer | None:
        row = self.bookings.get(booking_id)
        return None if row is None else row.answer

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
        hold = quoted.hold
        original_id = None if original is None else original.hold.hold_id
        txn = Transaction()
        self._policy_check(txn, hold.venue_id, quoted.policy_hash)
        self._move_hold(
            txn, "hold", hold.hold_id, HoldStatus.CONFIRMED, now, live=True, booking_id=booking.booking_id
        )
        row = self.bookings.get(booking.booking_id)
        free = row is None if original_id is None else self._claimed(booking.booking_id, original_id)
        confirmed = BookingRow(BookingStatus.CONFIRMED, booking, answer)
        txn.check(
            "booking",
            free,
            lambda: self.bookings.__setitem__(booking.booking_id, confirmed),
            found=None if row is None else row.answer,
        )
        self._keep_ownership(txn, hold, booking.owns_until)
        if idempotency_key is not None:
            keyed = self.keys.get(idempotency_key)
            key_free = (
                keyed is None
                if original_id is None
                else (
                    keyed is not None
                    and keyed.body is None
                    and (keyed.hold_id, keyed.booking_id) == (original_id, booking.booking_id)
                )
            )
            record = KeyRecord(answer.hold_id, booking.booking_id, answer.body)
            txn.check("idempotency", key_free, lambda: self.keys.__setitem__(idempotency_key, record))
        if original is not None and original.flow is not None:
            self._close_flow(txn, original.hold.hold_id, original.flow.ended(FlowState.RECOVERED))
        if event is not None:
            self._put_event(txn, event)
        txn.commit()

    # -- drift flows -------------------------------------------------------------------------

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
        made = replacement.hold
        original_id = original.hold.hold_id
        txn = Transaction()
        self._policy_check(txn, made.venue_id, replacement.policy_hash)
        self._move_hold(
            txn,
            "hold",
            original_id,
            HoldStatus.SUPERSEDED,
            now,
            live=True,
            booking_id=flow.booking_id,
            flow=flow,
            flow_due=epoch(made.expires_at),
        )
        self._put_hold(txn, "replacement", StoredHold(made, owns_until, replaces=original_id))
        self._slot_writes(txn, made.venue_id, writes)
        claimed = BookingRow(BookingStatus.PENDING, flow=original_id)
        txn.check(
            "booking",
            flow.booking_id not in self.bookings,
            lambda: self.bookings.__setitem__(flow.booking_id, claimed),
        )
        self._claim_key(txn, flow, original_id)
        txn.commit()

    def end_drifted(
        self,
        original: Hold,
        writes: Sequence[SlotWrite],
        now: datetime,
        flow: DriftFlow,
        event: PolicyDriftData,
    ) -> None:
        txn = Transaction()
        self._move_hold(
            txn,
            "hold",
            original.hold_id,
            HoldStatus.SUPERSEDED,
            now,
            live=True,
            booking_id=flow.booking_id,
            flow=flow,
        )
        self._slot_writes(txn, original.venue_id, writes)
        self._claim_key(txn, flow, original.hold_id)
        self._put_event(txn, event)
        txn.commit()

    def end_flow(
        self,
        original_id: str,
        flow: DriftFlow,
        replacement: Hold | None,
        writes: Sequence[SlotWrite],
        now: datetime,
        event: PolicyDriftData,
    ) -> None:
        txn = Transaction()
        self._close_flow(txn, original_id, flow)
        claimed = self._claimed(flow.booking_id, original_id)
        txn.check("booking", claimed, lambda: self.bookings.pop(flow.booking_id, None))
        self._put_event(txn, event)
        if replacement is not None:
            self._move_hold(txn, "replacement", replacement.hold_id, HoldStatus.RELEASED, now, live=False)
            self._slot_writes(txn, replacement.venue_id, writes)
        txn.commit()

    def due_flows(self, now: datetime) -> list[str]:
        return [hold_id for hold_id, due in self.flow_due.items() if due <= epoch(now)]

    # -- the operations transactions are made of ------------------------------------------------

    def _policy_check(self, txn: Transaction, venue_id: str, policy_hash: str) -> None:
        current = self.venues.get(venue_id)
        txn.check("policy", current is not None and current.policy_hash == policy_hash)

    def _put_hold(self, txn: Transaction, label: str, stored: StoredHold) -> None:
        hold_id = stored.hold.hold_id
        txn.check(label, hold_id not in self.holds, lambda: self.holds.__setitem__(hold_id, stored))

    def _move_hold(
        self,
        txn: Transaction,
        label: str,
        hold_id: str,
        to: HoldStatus,
        now: datetime,
        *,
        live: bool,
        booking_id: str | None = None,
        flow: DriftFlow | None = None,
        flow_due: int | None = None,
    ) -> None:
        stored = self.holds.get(hold_id)
        held = stored is not None and stored.hold.status is HoldStatus.HELD
        alive = stored is not None and (not live or epoch(stored.hold.expires_at) > epoch(now))

        def move() -> None:
            if stored is not None:
                moved = replace(stored, hold=stored.hold.model_copy(update={"status": to}))
                if booking_id is not None:
                    moved = replace(moved, booking_id=booking_id)
                self.holds[hold_id] = moved if flow is None else replace(moved, flow=flow)
                if flow_due is not None:
                    self.flow_due[hold_id] = flow_due

        txn.check(label, held and alive, move)

    def _close_flow(self, txn: Transaction, original_id: str, flow: DriftFlow) -> None:
        stored = self.holds.get(original_id)
        current = None if stored is None else stored.flow
        is_open = current is not None and current.state is FlowState.OPEN

        def close() -> None:
            if stored is not None and current is not None:
                ended = current.ended(flow.state, flow.reason or current.reason)
                self.holds[original_id] = replace(stored, flow=ended)
                self.flow_due.pop(original_id, None)

        txn.check("original", is_open, close)

    def _claimed(self, booking_id: str, original_id: str) -> bool:
        row = self.bookings.get(booking_id)
        return row is not None and row.status is BookingStatus.PENDING and row.flow == original_id

    def _claim_key(self, txn: Transaction, flow: DriftFlow, original_id: str) -> None:
        key = flow.idempotency_key
        if key is not None:
            bound = KeyRecord(original_id, flow.booking_id, None)
            txn.check("idempotency", key not in self.keys, lambda: self.keys.__setitem__(key, bound))

    def _put_event(self, txn: Transaction, event: PolicyDriftData) -> None:
        event_id = str(event.event_id)
        txn.check("outbox", event_id not in self.outbox, lambda: self.outbox.__setitem__(event_id, event))

    def _slot_writes(self, txn: Transaction, venue_id: str, writes: Sequence[SlotWrite]) -> None:
        for write in writes:
            found = self.records.get((venue_id, write.slot))
            as_read = (
                found is None
                if write.expected_version is None
                else (found is not None and found.version == write.expected_version)
            )
            written = SlotRecord(write.slot, (write.expected_version or 0) + 1, dict(write.owners))
            txn.check(
                slot_label(write.slot),
                as_read,
                lambda key=(venue_id, write.slot), record=written: self.records.__setitem__(key, record),
            )

    def _keep_ownership(self, txn: Transaction, hold: Hold, owns_until: datetime) -> None:
        for slot in slots(hold.table_ids, Interval(hold.starts_at, owns_until)):
            key = (hold.venue_id, slot)
            found = self.records.get(key)

            def keep(key: tuple[str, Slot] = key, found: SlotRecord | None = found) -> None:
                if found is not None:
                    owners = {**found.owners, hold.hold_id: replace(found.owners[hold.hold_id], until=0)}
                    self.records[key] = SlotRecord(found.slot, (found.version or 0) + 1, owners)

            txn.check(slot_label(slot), found is not None and hold.hold_id in found.owners, keep)
