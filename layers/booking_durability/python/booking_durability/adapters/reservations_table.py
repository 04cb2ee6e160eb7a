"""The reservations table: venues and their versions, holds, bookings and table ownership.

One table, keys ``pk``/``sk``:

- ``VENUE#{venue_id}`` / ``CURRENT`` and ``VERSION#{n:08d}``: the canonical config JSON, its
  ``policy_hash`` and ``policy_version``. A new version is written with the current item in
  one transaction, conditioned on the version read.
- ``OWN#{venue_id}#{YYYY-MM-DD}`` / ``{HH}#{table_id}``: who owns a table in an hour bucket
  (``reservations.ownership``), with a ``version`` every write is conditioned on. One query per
  day reads every table's records for the hours a request touches.
- ``HOLD#{hold_id}`` / ``HOLD`` and ``BOOKING#{booking_id}`` / ``BOOKING``: the hold or booking
  as JSON (``doc``), with ``status`` (the truth, and what conditions test) beside it.
- A drift flow (``ports.DriftFlow``) lives on the original hold it superseded: ``flow`` (its
  state), ``booking_id``, ``superseded_by`` (the replacement, which names the original in
  ``replaces``), ``flow_attempts``, ``flow_key``, ``flow_reason``. While it is open the hold also
  carries ``open_flow`` and ``flow_due`` (the replacement's expiry): the keys of the sparse index
  ``OPEN_FLOWS_INDEX``, which the sweep reads to end the flows nobody repeated. An open flow
  claims its booking id with a ``pending`` booking item, and its ``Idempotency-Key`` with a key
  item without an answer, so no other request can take either before the flow ends.
- ``IDEMPOTENCY#{key}`` / ``CONFIRM``: the hold and booking a key was first sent with, and the
  answer.
- ``OUTBOX#{event_id}`` / ``EVENT``: a drift event, written with the state change it reports.

No guest data is ever written here: holds and bookings carry ids, times and tables only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from booking_durability.adapters.dynamodb import DynamoTable, Expression, Item, Operation, TransactionRefused
from booking_durability.drift_events import PolicyDriftData
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold
from booking_durability.reservations.intervals import Interval, buckets
from booking_durability.reservations.ownership import Owner, Slot, SlotRecord, SlotWrite, epoch, slots
from booking_durability.reservations.ports import (
    AnswerBody,
    Booking,
    ConfirmedAnswer,
    DriftFlow,
    FlowState,
    KeyRecord,
    StoredHold,
    StoredVenue,
    WriteConflict,
)
from booking_durability.times import iso

# Holds, bookings and ownership records are kept this long after their time (TTL), for replays
# and for the operator; what they own is decided by time, never by TTL.
KEEP_AFTER = timedelta(days=30)
_CURRENT = "CURRENT"

#: The sparse index of open drift flows, as ``stacks/reservations_table.py`` declares it (an
#: infrastructure test keeps the two equal): partition ``open_flow`` (always ``OPEN_FLOW``),
#: sort ``flow_due`` (epoch seconds). Only holds with an open flow carry these attributes.
OPEN_FLOWS_INDEX = "open-flows"
OPEN_FLOW_ATTRIBUTE = "open_flow"
FLOW_DUE_ATTRIBUTE = "flow_due"
OPEN_FLOW = "open"
_PENDING = "pending"  # a booking id an open drift flow claimed


def venue_key(venue_id: str, sk: str) -> dict[str, str]:
    return {"pk": f"VENUE#{venue_id}", "sk": sk}


def _version_sk(version: int) -> str:
    return f"VERSION#{version:08d}"


def slot_key(venue_id: str, slot: Slot) -> dict[str, str]:
    return {"pk": f"OWN#{venue_id}#{slot.bucket:%Y-%m-%d}", "sk": f"{slot.bucket:%H}#{slot.table_id}"}


def hold_key(hold_id: str) -> dict[str, str]:
    return {"pk": f"HOLD#{hold_id}", "sk": "HOLD"}


def booking_key(booking_id: str) -> dict[str, str]:
    return {"pk": f"BOOKING#{booking_id}", "sk": "BOOKING"}


class ReservationsTable:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    # -- venues ------------------------------------------------------------------------------

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        sk = _CURRENT if version is None else _version_sk(version)
        item = self.table.get(venue_key(venue_id, sk))
        return None if item is None else _stored_venue(venue_id, item)

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        items = self.table.query(
            Expression(
                "pk = :pk AND begins_with(sk, :version)",
                {":pk": venue_key(venue_id, "")["pk"], ":version": "VERSION#"},
            )
        )
        return [_stored_venue(venue_id, item) for item in items]

    def save_venue(self, venue: StoredVenue, previous_version: int | None, now: datetime) -> None:
        values = {
            "venue_id": venue.venue_id,
            "config": venue.config_json,
            "policy_hash": venue.policy_hash,
            "policy_version": venue.policy_version,
            "updated_at": iso(now),
        }
        current = Expression(
            "attribute_not_exists(pk)" if previous_version is None else "policy_version = :previous",
            {} if previous_version is None else {":previous": previous_version},
        )
        try:
            self.table.transact(
                [
                    Operation(
                        "venue",
                        "Put",
                        item={**venue_key(venue.venue_id, _CURRENT), **values},
                        condition=current,
                    ),
                    Operation(
                        "version",
                        "Put",
                        item={**venue_key(venue.venue_id, _version_sk(venue.policy_version)), **values},
                        condition=Expression("attribute_not_exists(pk)"),
                    ),
                ]
            )
        except TransactionRefused as refused:
            # A refused current version comes back as it now is: the caller goes on from it.
            found = refused.refused.get("venue")
            venue_now = _stored_venue(venue.venue_id, found) if found else None
            raise WriteConflict(frozenset(refused.refused), venue=venue_now) from None

    # -- ownership ---------------------------------------------------------------------------

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]:
        """Every existing record of the venue's tables in the buckets ``interval`` touches."""
        hours = buckets(interval)
        records: dict[Slot, SlotRecord] = {}
        for day in sorted({hour.date() for hour in hours}):
            in_day = [hour for hour in hours if hour.date() == day]
            items = self.table.query(
                Expression(
                    "pk = :pk AND sk BETWEEN :first AND :last",
                    {
                        ":pk": f"OWN#{venue_id}#{day:%Y-%m-%d}",
                        ":first": f"{in_day[0]:%H}#",
                        ":last": f"{in_day[-1]:%H}#\uffff",
                    },
                )
            )
            for record in _slot_records(items, day):
                records[record.slot] = record
        return records

    def _slot_operations(self, venue_id: str, writes: Sequence[SlotWrite]) -> list[Operation]:
        operations = []
        for write in writes:
            key = slot_key(venue_id, write.slot)
            owners = {
                owner_id: {"s": o.start, "e": o.end, "x": o.until} for owner_id, o in write.owners.items()
            }
            latest_end = max((o.end for o in write.owners.values()), default=epoch(write.slot.bucket))
            if write.expected_version is None:
                condition = Expression("attribute_not_exists(pk)")
                next_version = 1
            else:
                condition = Expression("version = :expected", {":expected": write.expected_version})
                next_version = write.expected_version + 1
            operations.append(
                Operation(
                    f"slot {write.slot.table_id}@{write.slot.bucket:%Y-%m-%dT%H}",
                    "Update",
                    key=key,
                    update=Expression(
                        "SET owners = :owners, version = :version, expires_at = :expires_at",
                        {
                            ":owners": owners,
                            ":version": next_version,
                            ":expires_at": latest_end + int(KEEP_AFTER.total_seconds()),
                        },
                    ),
                    condition=condition,
                )
            )
        return operations

    # -- holds -------------------------------------------------------------------------------

    def create_hold(self, quoted: QuotedHold, owns_until: datetime, writes: Sequence[SlotWrite]) -> None:
        hold = quoted.hold
        operations = [
            self._policy_check(hold.venue_id, quoted.policy_hash),
            Operation(
                "hold",
                "Put",
                item=hold_item(hold, owns_until),
                condition=Expression("attribute_not_exists(pk)"),
            ),
            *self._slot_operations(hold.venue_id, writes),
        ]
        self._transact(operations)

    def hold(self, hold_id: str) -> StoredHold | None:
        item = self.table.get(hold_key(hold_id))
        return None if item is None else stored_hold(item)

    def end_hold(self, hold: Hold, status: str, writes: Sequence[SlotWrite], now: datetime) -> None:
        self._transact(
            [
                self._move_hold(hold.hold_id, HoldStatus.HELD, status, now, live=True),
                *self._slot_operations(hold.venue_id, writes),
            ]
        )

    def replace_hold(
        self,
        original: StoredHold,
        quoted: QuotedHold,
        owns_until: datetime,
        writes: Sequence[SlotWrite],
        now: datetime,
        *,
        flow: DriftFlow,
    ) -> None:
        replacement = quoted.hold
        original_id = original.hold.hold_id
        due = epoch(replacement.expires_at)
        claims = {**_flow_attributes(flow), OPEN_FLOW_ATTRIBUTE: OPEN_FLOW, FLOW_DUE_ATTRIBUTE: due}
        retention = epoch(max(replacement.ends_at, replacement.expires_at) + KEEP_AFTER)
        self._transact(
            [
                self._policy_check(replacement.venue_id, quoted.policy_hash),
                self._move_hold(
                    original_id,
                    HoldStatus.HELD,
                    HoldStatus.SUPERSEDED,
                    now,
                    live=True,
                    sets={"superseded_by": replacement.hold_id, **claims},
                ),
                Operation(
                    "replacement",
                    "Put",
                    item={**hold_item(replacement, owns_until), "replaces": original_id},
                    condition=Expression("attribute_not_exists(pk)"),
                ),
                *self._slot_operations(replacement.venue_id, writes),
                Operation(
                    "booking",
                    "Put",
                    item={
                        **booking_key(flow.booking_id),
                        "status": _PENDING,
                        "booking_id": flow.booking_id,
                        "flow": original_id,
                        "venue_id": replacement.venue_id,
                        "expires_at": retention,
                    },
                    condition=Expression("attribute_not_exists(pk)"),
                ),
                *self._claim_key(flow, original_id, retention),
            ]
        )

    def end_drifted(
        self,
        original: Hold,
        writes: Sequence[SlotWrite],
        now: datetime,
        flow: DriftFlow,
        event: PolicyDriftData,
    ) -> None:
        retention = epoch(max(original.ends_at, original.expires_at) + KEEP_AFTER)
        self._transact(
            [
                self._move_hold(
                    original.hold_id,
                    HoldStatus.HELD,
                    HoldStatus.SUPERSEDED,
                    now,
                    live=True,
                    sets=_flow_attributes(flow),
                ),
                *self._slot_operations(original.venue_id, writes),
                *self._claim_key(flow, original.hold_id, retention),
                self._outbox(event),
            ]
        )

    def end_flow(
        self,
        original_id: str,
        flow: DriftFlow,
        replacement: Hold | None,
        writes: Sequence[SlotWrite],
        now: datetime,
        event: PolicyDriftData,
    ) -> None:
        operations = [
            self._close_flow(original_id, flow, now),
            Operation(
                "booking",
                "Delete",
                key=booking_key(flow.booking_id),
                condition=Expression(
                    "#status = :pending AND flow = :original",
                    {":pending": _PENDING, ":original": original_id},
                    {"#status": "status"},
                ),
            ),
            self._outbox(event),
        ]
        if replacement is not None:
            # Expired or not: a flow's replacement never stays held once the flow has ended.
            operations.append(
                self._move_hold(
                    replacement.hold_id,
                    HoldStatus.HELD,
                    HoldStatus.RELEASED,
                    now,
                    live=False,
                    label="replacement",
                )
            )
            operations.extend(self._slot_operations(replacement.venue_id, writes))
        self._transact(operations)

    def due_flows(self, now: datetime) -> list[str]:
        items = self.table.query(
            Expression(
                "#open = :open AND #due <= :now",
                {":open": OPEN_FLOW, ":now": epoch(now)},
                {"#open": OPEN_FLOW_ATTRIBUTE, "#due": FLOW_DUE_ATTRIBUTE},
            ),
            index=OPEN_FLOWS_INDEX,
        )
        return [str(item["pk"]).removeprefix("HOLD#") for item in items]

    def _close_flow(self, original_id: str, flow: DriftFlow, now: datetime) -> Operation:
        """The original's open flow takes ``flow``'s state and leaves the open-flows index."""
        values: dict[str, Any] = {":state": flow.state.value, ":now_iso": iso(now)}
        assignments = ["flow = :state", "updated_at = :now_iso"]
        if flow.reason is not None:
            assignments.append("flow_reason = :reason")
            values[":reason"] = flow.reason
        return Operation(
            "original",
            "Update",
            key=hold_key(original_id),
            update=Expression(
                f"SET {', '.join(assignments)} REMOVE #open, #due",
                values,
                {"#open": OPEN_FLOW_ATTRIBUTE, "#due": FLOW_DUE_ATTRIBUTE},
            ),
            condition=Expression("flow = :open", {":open": FlowState.OPEN.value}),
        )

    def _claim_key(self, flow: DriftFlow, original_id: str, retention: int) -> list[Operation]:
        """The flow's ``Idempotency-Key`` bound to it, without an answer yet (none without a key)."""
        if flow.idempotency_key is None:
            return []
        return [
            Operation(
                "idempotency",
                "Put",
                item={
                    **idempotency_record_key(flow.idempotency_key),
                    "answered_hold_id": original_id,
                    "booking_id": flow.booking_id,
                    "expires_at": retention,
                },
                condition=Expression("attribute_not_exists(pk)"),
            )
        ]

    def _move_hold(
        self,
        hold_id: str,
        from_status: str,
        to_status: str,
        now: datetime,
        *,
        live: bool,
        sets: dict[str, Any] | None = None,
        label: str = "hold",
    ) -> Operation:
        """The hold goes from ``from_status`` (and, when ``live``, not yet expired) to ``to_status``."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":to": to_status, ":now_iso": iso(now)}
        assignments = ["#status = :to", "updated_at = :now_iso"]
        for i, (name, value) in enumerate((sets or {}).items()):
            names[f"#a{i}"] = name
            assignments.append(f"#a{i} = :v{i}")
            values[f":v{i}"] = value
        condition = Expression("#status = :from", {":from": from_status}, names)
        if live:
            condition = condition & Expression("expires_epoch > :now", {":now": epoch(now)})
        return Operation(
            label,
            "Update",
            key=hold_key(hold_id),
            update=Expression("SET " + ", ".join(assignments), values, names),
            condition=condition,
        )

    def _policy_check(self, venue_id: str, policy_hash: str) -> Operation:
        return Operation(
            "policy",
            "ConditionCheck",
            key=venue_key(venue_id, _CURRENT),
            condition=Expression("policy_hash = :hash", {":hash": policy_hash}),
        )

    # -- confirmation ------------------------------------------------------------------------

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
        stored_answer = {
            "answer": answer.body.text,
            "answered_hold_id": answer.hold_id,
        }
        confirmed = {"booking_id": booking.booking_id}
        unclaimed = Expression("attribute_not_exists(pk)")
        booking_free, key_free = unclaimed, unclaimed
        if original is not None:
            # The flow claimed the booking id and the key: they are its to take.
            original_id = original.hold.hold_id
            booking_free = Expression(
                "#status = :pending AND flow = :original",
                {":pending": _PENDING, ":original": original_id},
                {"#status": "status"},
            )
            key_free = Expression(
                "attribute_not_exists(answer) AND answered_hold_id = :original AND booking_id = :booking",
                {":original": original_id, ":booking": booking.booking_id},
            )
        operations = [
            self._policy_check(hold.venue_id, quoted.policy_hash),
            self._move_hold(
                hold.hold_id, HoldStatus.HELD, HoldStatus.CONFIRMED, now, live=True, sets=confirmed
            ),
            Operation(
                "booking",
                "Put",
                item={**self._booking_item(booking), **stored_answer},
                condition=booking_free,
            ),
            *self._keep_ownership(hold, booking.owns_until),
        ]
        if idempotency_key is not None:
            operations.append(
                Operation(
                    "idempotency",
                    "Put",
                    item={
                        **idempotency_record_key(idempotency_key),
                        **stored_answer,
                        "booking_id": booking.booking_id,
                        "expires_at": epoch(booking.owns_until + KEEP_AFTER),
                    },
                    condition=key_free,
                )
            )
        if original is not None and original.flow is not None:
            operations.append(
                self._close_flow(original.hold.hold_id, original.flow.ended(FlowState.RECOVERED), now)
            )
        if event is not None:
            operations.append(self._outbox(event))
        try:
            self.table.transact(operations)
        except TransactionRefused as refused:
            # The refused booking comes back as it is: its stored answer spares a read.
            taken = refused.refused.get("booking")
            found = _answer(taken) if taken and "answer" in taken else None
            raise WriteConflict(frozenset(refused.refused), booking=found) from None

    def _outbox(self, event: PolicyDriftData) -> Operation:
        """The drift event as an outbox item: the table's stream publishes it to the notifier."""
        return Operation(
            "outbox",
            "Put",
            item={
                "pk": f"OUTBOX#{event.event_id}",
                "sk": "EVENT",
                "event_type": event.type,
                "body": event.model_dump_json(exclude_none=True),
                "expires_at": epoch(event.occurred_at + KEEP_AFTER),
            },
            condition=Expression("attribute_not_exists(pk)"),
        )

    def _keep_ownership(self, hold: Hold, owns_until: datetime) -> list[Operation]:
        """The hold's owner entries stop expiring: no read needed, every entry is there (a live
        hold's entries are never dropped) and the version moves so racing writers re-read."""
        interval = Interval(hold.starts_at, owns_until)
        return [
            Operation(
                f"slot {slot.table_id}@{slot.bucket:%Y-%m-%dT%H}",
                "Update",
                key=slot_key(hold.venue_id, slot),
                update=Expression(
                    "SET owners.#owner.x = :forever ADD version :one",
                    {":forever": 0, ":one": 1},
                    {"#owner": hold.hold_id},
                ),
                condition=Expression("attribute_exists(owners.#owner)", names={"#owner": hold.hold_id}),
            )
            for slot in slots(hold.table_ids, interval)
        ]

    def _booking_item(self, booking: Booking) -> Item:
        doc = booking.to_response()
        doc.pop("status")
        return {
            **booking_key(booking.booking_id),
            "doc": json.dumps(doc, sort_keys=True, separators=(",", ":")),
            "status": booking.status,
            "booking_id": booking.booking_id,
            "venue_id": booking.venue_id,
            "hold_id": booking.hold_id,
            "owns_until": epoch(booking.owns_until),
            "expires_at": epoch(booking.owns_until + KEEP_AFTER),
        }

    # -- bookings ----------------------------------------------------------------------------

    def booking(self, booking_id: str) -> Booking | None:
        item = self.table.get(booking_key(booking_id))
        if item is None or item["status"] == _PENDING:  # claimed by a drift flow: no booking yet
            return None
        doc = json.loads(item["doc"])
        return Booking(
            booking_id=booking_id,
            hold_id=doc["hold_id"],
            venue_id=doc["venue_id"],
            table_ids=tuple(doc["table_ids"]),
            starts_at=datetime.fromisoformat(doc["starts_at"]),
            ends_at=datetime.fromisoformat(doc["ends_at"]),
            status=item["status"],
            owns_until=datetime.fromtimestamp(int(item["owns_until"]), UTC),
        )

    def cancel_booking(self, booking: Booking, writes: Sequence[SlotWrite], now: datetime) -> None:
        self._transact(
            [
                Operation(
                    "booking",
                    "Update",
                    key=booking_key(booking.booking_id),
                    update=Expression(
                        "SET #status = :cancelled, updated_at = :now_iso",
                        {":cancelled": "cancelled", ":now_iso": iso(now)},
                        {"#status": "status"},
                    ),
                    condition=Expression(
                        "#status = :confirmed", {":confirmed": "confirmed"}, {"#status": "status"}
                    ),
                ),
                *self._slot_operations(booking.venue_id, writes),
            ]
        )

    def _transact(self, operations: list[Operation]) -> None:
        try:
            self.table.transact(operations)
        except TransactionRefused as refused:
            raise WriteConflict(frozenset(refused.refused)) from None


def hold_item(hold: Hold, owns_until: datetime) -> Item:
    """A hold as stored: its JSON (a snapshot's missing fields stay missing) and ``status`` beside it."""
    doc = hold.model_dump(mode="json", exclude={"status", "selection_snapshot"}, exclude_none=True)
    if hold.selection_snapshot is not None:
        doc["selection_snapshot"] = hold.selection_snapshot.model_dump(mode="json", exclude_unset=True)
    return {
        **hold_key(hold.hold_id),
        "doc": json.dumps(doc, sort_keys=True, separators=(",", ":")),
        "status": hold.status.value,
        "venue_id": hold.venue_id,
        "expires_epoch": epoch(hold.expires_at),
        "owns_until": epoch(owns_until),
        "expires_at": epoch(max(hold.ends_at, hold.expires_at) + KEEP_AFTER),
    }


def idempotency_record_key(key: str) -> dict[str, str]:
    return {"pk": f"IDEMPOTENCY#{key}", "sk": "CONFIRM"}


def _stored_venue(venue_id: str, item: Item) -> StoredVenue:
    return StoredVenue(
        venue_id=venue_id,
        config_json=item["config"],
        policy_hash=item["policy_hash"],
        policy_version=int(item["policy_version"]),
    )


def _answer(item: Item) -> ConfirmedAnswer:
    return ConfirmedAnswer(
        hold_id=item["answered_hold_id"], booking_id=item["booking_id"], body=AnswerBody(item["answer"])
    )


def _key_record(item: Item) -> KeyRecord:
    body = AnswerBody(item["answer"]) if "answer" in item else None
    return KeyRecord(hold_id=item["answered_hold_id"], booking_id=item["booking_id"], body=body)


def _flow_attributes(flow: DriftFlow) -> dict[str, Any]:
    """A drift flow as the original hold's item carries it."""
    attributes: dict[str, Any] = {
        "booking_id": flow.booking_id,
        "flow": flow.state.value,
        "flow_attempts": flow.attempts,
    }
    optional = {
        "superseded_by": flow.replacement_id,
        "flow_key": flow.idempotency_key,
        "flow_reason": flow.reason,
    }
    attributes.update({name: value for name, value in optional.items() if value is not None})
    return attributes


def _flow(item: Item) -> DriftFlow | None:
    if "flow" not in item:
        return None
    return DriftFlow(
        booking_id=item["booking_id"],
        state=FlowState(item["flow"]),
        attempts=int(item["flow_attempts"]),
        replacement_id=item.get("superseded_by"),
        idempotency_key=item.get("flow_key"),
        reason=item.get("flow_reason"),
    )


def stored_hold(item: Item) -> StoredHold:
    return StoredHold(
        hold=Hold.model_validate({**json.loads(item["doc"]), "status": item["status"]}),
        owns_until=datetime.fromtimestamp(int(item["owns_until"]), UTC),
        booking_id=item.get("booking_id"),
        flow=_flow(item),
        replaces=item.get("replaces"),
    )


def _slot_records(items: Iterator[Item], day: Any) -> Iterator[SlotRecord]:
    for item in items:
        hour, _, table_id = str(item["sk"]).partition("#")
        bucket = datetime(day.year, day.month, day.day, int(hour), tzinfo=UTC)
        owners = {
            owner_id: Owner(int(entry["s"]), int(entry["e"]), int(entry.get("x", 0)))
            for owner_id, entry in dict(item.get("owners", {})).items()
        }
        yield SlotRecord(Slot(bucket, table_id), int(item["version"]), owners)
