"""Bookings and their confirmations on the reservations table.

A booking is its JSON (``doc``) with ``status`` beside it, and the 200 body its confirmation
answered (``answer``), so that a repeat gets the very bytes of the first answer. An
``Idempotency-Key`` item keeps the hold and booking the key was first sent with, and the answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from booking_durability.adapters.drift_flows_table import claimed_booking, close_flow
from booking_durability.adapters.dynamodb import Expression, Item, Operation, TransactionRefused
from booking_durability.adapters.holds_table import keep_ownership, move_hold, slot_operations, stored_hold
from booking_durability.adapters.outbox import outbox_event
from booking_durability.adapters.reservation_keys import booking_key, hold_key, idempotency_record_key
from booking_durability.adapters.table_store import KEEP_AFTER, TableStore, transact
from booking_durability.adapters.venues_table import policy_check
from booking_durability.drift_events import PolicyDriftData
from booking_durability.reservations.holds import HoldStatus, QuotedHold
from booking_durability.reservations.ownership import SlotWrite, epoch
from booking_durability.reservations.ports import (
    AnswerBody,
    Booking,
    BookingStatus,
    ConfirmedAnswer,
    FlowState,
    KeyRecord,
    StoredHold,
    WriteConflict,
)
from booking_durability.times import iso

_UNCLAIMED = Expression("attribute_not_exists(pk)")


class BookingsTable(TableStore):
    """``reservations.ports.BookingStore`` on DynamoDB."""

    def booking(self, booking_id: str) -> Booking | None:
        item = self.table.get(booking_key(booking_id))
        if item is None or item["status"] == BookingStatus.PENDING:  # only claimed by a drift flow
            return None
        doc = json.loads(item["doc"])
        return Booking(
            booking_id=booking_id,
            hold_id=doc["hold_id"],
            venue_id=doc["venue_id"],
            table_ids=tuple(doc["table_ids"]),
            starts_at=datetime.fromisoformat(doc["starts_at"]),
            ends_at=datetime.fromisoformat(doc["ends_at"]),
            status=BookingStatus(item["status"]),
            owns_until=datetime.fromtimestamp(int(item["owns_until"]), UTC),
        )

    def cancel_booking(self, booking: Booking, writes: Sequence[SlotWrite], now: datetime) -> None:
        cancelled = Operation(
            "booking",
            "Update",
            key=booking_key(booking.booking_id),
            update=Expression(
                "SET #status = :cancelled, updated_at = :now_iso",
                {":cancelled": BookingStatus.CANCELLED.value, ":now_iso": iso(now)},
                {"#status": "status"},
            ),
            condition=Expression(
                "#status = :confirmed", {":confirmed": BookingStatus.CONFIRMED.value}, {"#status": "status"}
            ),
        )
        transact(self.table, [cancelled, *slot_operations(booking.venue_id, writes)])

    def confirm_reads(
        self, hold_id: str, idempotency_key: str | None
    ) -> tuple[StoredHold | None, KeyRecord | None]:
        keys = [hold_key(hold_id)] + ([idempotency_record_key(idempotency_key)] if idempotency_key else [])
        items = {item["pk"]: item for item in self.table.get_many(keys)}
        hold = items.get(hold_key(hold_id)["pk"])
        keyed = items.get(idempotency_record_key(idempotency_key)["pk"]) if idempotency_key else None
        return (
            None if hold is None else stored_hold(hold),
            None if keyed is None else _key_record(keyed),
        )

    def confirmed_answer(self, booking_id: str) -> ConfirmedAnswer | None:
        item = self.table.get(booking_key(booking_id))
        return None if item is None or "answer" not in item else _answer(item)

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
        stored_answer = {"answer": answer.body.text, "answered_hold_id": answer.hold_id}
        claim = _Claim(original.hold.hold_id if original is not None else None, booking.booking_id)
        operations = [
            policy_check(hold.venue_id, quoted.policy_hash),
            move_hold(
                hold.hold_id,
                HoldStatus.HELD,
                HoldStatus.CONFIRMED,
                now,
                live=True,
                sets={"booking_id": booking.booking_id},
            ),
            Operation(
                "booking", "Put", item={**_booking_item(booking), **stored_answer}, condition=claim.booking()
            ),
            *keep_ownership(hold, booking.owns_until),
        ]
        if idempotency_key is not None:
            keyed = {
                **idempotency_record_key(idempotency_key),
                **stored_answer,
                "booking_id": booking.booking_id,
                "expires_at": epoch(booking.owns_until + KEEP_AFTER),
            }
            operations.append(Operation("idempotency", "Put", item=keyed, condition=claim.key()))
        if original is not None and original.flow is not None:
            recovered = original.flow.ended(FlowState.RECOVERED)
            operations.append(close_flow(original.hold.hold_id, recovered, now))
        if event is not None:
            operations.append(outbox_event(event))
        try:
            self.table.transact(operations)
        except TransactionRefused as refused:
            # The refused booking comes back as it is: its stored answer spares a read.
            taken = refused.refused.get("booking")
            found = _answer(taken) if taken and "answer" in taken else None
            raise WriteConflict(frozenset(refused.refused), booking=found) from None


class _Claim:
    """What a confirmation may take: a booking id and key nobody has, or, for the replacement of
    an open drift flow (``original_id``), those the flow claimed."""

    def __init__(self, original_id: str | None, booking_id: str) -> None:
        self.original_id = original_id
        self.booking_id = booking_id

    def booking(self) -> Expression:
        return _UNCLAIMED if self.original_id is None else claimed_booking(self.original_id)

    def key(self) -> Expression:
        if self.original_id is None:
            return _UNCLAIMED
        return Expression(
            "attribute_not_exists(answer) AND answered_hold_id = :original AND booking_id = :booking",
            {":original": self.original_id, ":booking": self.booking_id},
        )


def _booking_item(booking: Booking) -> Item:
    doc = booking.to_response()
    doc.pop("status")
    return {
        **booking_key(booking.booking_id),
        "doc": json.dumps(doc, sort_keys=True, separators=(",", ":")),
        "status": booking.status.value,
        "booking_id": booking.booking_id,
        "venue_id": booking.venue_id,
        "hold_id": booking.hold_id,
        "owns_until": epoch(booking.owns_until),
        "expires_at": epoch(booking.owns_until + KEEP_AFTER),
    }


def _answer(item: Item) -> ConfirmedAnswer:
    return ConfirmedAnswer(
        hold_id=item["answered_hold_id"], booking_id=item["booking_id"], body=AnswerBody(item["answer"])
    )


def _key_record(item: Item) -> KeyRecord:
    body = AnswerBody(item["answer"]) if "answer" in item else None
    return KeyRecord(hold_id=item["answered_hold_id"], booking_id=item["booking_id"], body=body)
