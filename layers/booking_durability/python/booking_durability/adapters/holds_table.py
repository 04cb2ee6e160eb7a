"""Holds and the table ownership they take, on the reservations table.

A hold is its JSON (``doc``) with ``status`` (the truth, and what conditions test) beside it. An
ownership record (``reservations.ownership``) maps each owner of a table in an hour bucket to
what it owns, with a ``version`` every write is conditioned on; one query per day reads every
table's records for the hours a request touches. A drift flow (``ports.DriftFlow``) lives on the
original hold it superseded: ``flow`` (its state), ``booking_id``, ``superseded_by`` (the
replacement, which names the original in ``replaces``), ``flow_attempts``, ``flow_key``,
``flow_reason`` (``drift_flows_table`` writes them). No guest data is ever written here: holds
carry ids, times and tables only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from booking_durability.adapters.dynamodb import Expression, Item, Operation
from booking_durability.adapters.reservation_keys import (
    hold_key,
    slot_day_partition,
    slot_hour_prefix,
    slot_key,
    slot_label,
    slot_of,
)
from booking_durability.adapters.table_store import KEEP_AFTER, KEEP_AFTER_SECONDS, TableStore, transact
from booking_durability.adapters.venues_table import policy_check
from booking_durability.metric_names import DriftReason
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold
from booking_durability.reservations.intervals import Interval, buckets
from booking_durability.reservations.ownership import Owner, Slot, SlotRecord, SlotWrite, epoch, slots
from booking_durability.reservations.ports import DriftFlow, FlowState, StoredHold
from booking_durability.times import iso


class HoldsTable(TableStore):
    """``reservations.ports.HoldStore`` on DynamoDB."""

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]:
        hours = buckets(interval)
        records: dict[Slot, SlotRecord] = {}
        for day in sorted({hour.date() for hour in hours}):
            in_day = [hour for hour in hours if hour.date() == day]
            items = self.table.query(
                Expression(
                    "pk = :pk AND sk BETWEEN :first AND :last",
                    {
                        ":pk": slot_day_partition(venue_id, day),
                        ":first": slot_hour_prefix(in_day[0]),
                        ":last": f"{slot_hour_prefix(in_day[-1])}\uffff",
                    },
                )
            )
            for record in slot_records_of(items, day):
                records[record.slot] = record
        return records

    def create_hold(self, quoted: QuotedHold, owns_until: datetime, writes: Sequence[SlotWrite]) -> None:
        hold = quoted.hold
        operations = [
            policy_check(hold.venue_id, quoted.policy_hash),
            Operation(
                "hold",
                "Put",
                item=hold_item(hold, owns_until),
                condition=Expression("attribute_not_exists(pk)"),
            ),
            *slot_operations(hold.venue_id, writes),
        ]
        transact(self.table, operations)

    def hold(self, hold_id: str) -> StoredHold | None:
        item = self.table.get(hold_key(hold_id))
        return None if item is None else stored_hold(item)

    def end_hold(self, hold: Hold, status: HoldStatus, writes: Sequence[SlotWrite], now: datetime) -> None:
        moved = move_hold(hold.hold_id, HoldStatus.HELD, status, now, live=True)
        transact(self.table, [moved, *slot_operations(hold.venue_id, writes)])


def slot_operations(venue_id: str, writes: Sequence[SlotWrite]) -> list[Operation]:
    """Each record written as ``writes`` says, if it is still at the version read (``slot ...``)."""
    return [_slot_operation(venue_id, write) for write in writes]


def _slot_operation(venue_id: str, write: SlotWrite) -> Operation:
    owners = {owner_id: {"s": o.start, "e": o.end, "x": o.until} for owner_id, o in write.owners.items()}
    latest_end = max((o.end for o in write.owners.values()), default=epoch(write.slot.bucket))
    if write.expected_version is None:
        condition = Expression("attribute_not_exists(pk)")
        next_version = 1
    else:
        condition = Expression("version = :expected", {":expected": write.expected_version})
        next_version = write.expected_version + 1
    return Operation(
        slot_label(write.slot),
        "Update",
        key=slot_key(venue_id, write.slot),
        update=Expression(
            "SET owners = :owners, version = :version, expires_at = :expires_at",
            {":owners": owners, ":version": next_version, ":expires_at": latest_end + KEEP_AFTER_SECONDS},
        ),
        condition=condition,
    )


def keep_ownership(hold: Hold, owns_until: datetime) -> list[Operation]:
    """The hold's owner entries stop expiring: no read needed, every entry is there (a live
    hold's entries are never dropped) and the version moves so racing writers re-read."""
    interval = Interval(hold.starts_at, owns_until)
    return [
        Operation(
            slot_label(slot),
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


def move_hold(
    hold_id: str,
    from_status: HoldStatus,
    to_status: HoldStatus,
    now: datetime,
    *,
    live: bool,
    sets: dict[str, Any] | None = None,
    label: str = "hold",
    unchanged: Expression | None = None,
) -> Operation:
    """The hold goes from ``from_status`` (and, when ``live``, not yet expired; with
    ``unchanged``, still meeting it) to ``to_status``, setting ``sets`` beside."""
    names = {"#status": "status"}
    values: dict[str, Any] = {":to": to_status.value, ":now_iso": iso(now)}
    assignments = ["#status = :to", "updated_at = :now_iso"]
    for i, (name, value) in enumerate((sets or {}).items()):
        names[f"#a{i}"] = name
        assignments.append(f"#a{i} = :v{i}")
        values[f":v{i}"] = value
    condition = Expression("#status = :from", {":from": from_status.value}, names)
    if live:
        condition = condition & Expression("expires_epoch > :now", {":now": epoch(now)})
    if unchanged is not None:
        condition = condition & unchanged
    return Operation(
        label,
        "Update",
        key=hold_key(hold_id),
        update=Expression("SET " + ", ".join(assignments), values, names),
        condition=condition,
    )


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


def stored_hold(item: Item) -> StoredHold:
    return StoredHold(
        hold=Hold.model_validate({**json.loads(item["doc"]), "status": item["status"]}),
        owns_until=datetime.fromtimestamp(int(item["owns_until"]), UTC),
        booking_id=item.get("booking_id"),
        flow=_flow(item),
        replaces=item.get("replaces"),
    )


def flow_attributes(flow: DriftFlow) -> dict[str, Any]:
    """A drift flow as the original hold's item carries it."""
    attributes: dict[str, Any] = {
        "booking_id": flow.booking_id,
        "flow": flow.state.value,
        "flow_attempts": flow.attempts,
    }
    optional = {
        "superseded_by": flow.replacement_id,
        "flow_key": flow.idempotency_key,
        "flow_reason": None if flow.reason is None else flow.reason.value,
    }
    attributes.update({name: value for name, value in optional.items() if value is not None})
    return attributes


def _flow(item: Item) -> DriftFlow | None:
    if "flow" not in item:
        return None
    reason = item.get("flow_reason")
    return DriftFlow(
        booking_id=item["booking_id"],
        state=FlowState(item["flow"]),
        attempts=int(item["flow_attempts"]),
        replacement_id=item.get("superseded_by"),
        idempotency_key=item.get("flow_key"),
        reason=None if reason is None else DriftReason(reason),
    )


def slot_records_of(items: Iterable[Item], day: date) -> Iterator[SlotRecord]:
    for item in items:
        owners = {
            owner_id: Owner(int(entry["s"]), int(entry["e"]), int(entry.get("x", 0)))
            for owner_id, entry in dict(item.get("owners", {})).items()
        }
        yield SlotRecord(slot_of(day, str(item["sk"])), int(item["version"]), owners)
