"""Drift flows on the reservations table (``ports.DriftFlow``), kept on the original hold they
superseded.

While a flow is open the hold also carries ``open_flow`` and ``flow_due`` (the replacement's
expiry): the keys of the sparse index ``OPEN_FLOWS_INDEX``, which the sweep reads to end the
flows nobody repeated. An open flow claims its booking id with a ``pending`` booking item, and
its ``Idempotency-Key`` with a key item without an answer, so no other request can take either
before the flow ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from booking_durability.adapters.dynamodb import Expression, Operation
from booking_durability.adapters.holds_table import flow_attributes, hold_item, move_hold, slot_operations
from booking_durability.adapters.outbox import outbox_event
from booking_durability.adapters.reservation_keys import (
    FLOW_DUE_ATTRIBUTE,
    OPEN_FLOW,
    OPEN_FLOW_ATTRIBUTE,
    OPEN_FLOWS_INDEX,
    booking_key,
    hold_id_of,
    hold_key,
    idempotency_record_key,
)
from booking_durability.adapters.table_store import KEEP_AFTER, TableStore, transact
from booking_durability.adapters.venues_table import policy_check
from booking_durability.drift_events import PolicyDriftData
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold
from booking_durability.reservations.ownership import SlotWrite, epoch
from booking_durability.reservations.ports import BookingStatus, DriftFlow, FlowState, StoredHold
from booking_durability.times import iso


class DriftFlowsTable(TableStore):
    """``reservations.ports.DriftFlowStore`` on DynamoDB."""

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
        claims = {
            **flow_attributes(flow),
            OPEN_FLOW_ATTRIBUTE: OPEN_FLOW,
            FLOW_DUE_ATTRIBUTE: epoch(replacement.expires_at),
        }
        retention = epoch(max(replacement.ends_at, replacement.expires_at) + KEEP_AFTER)
        superseded = move_hold(
            original_id,
            HoldStatus.HELD,
            HoldStatus.SUPERSEDED,
            now,
            live=True,
            sets={"superseded_by": replacement.hold_id, **claims},
        )
        made = Operation(
            "replacement",
            "Put",
            item={**hold_item(replacement, owns_until), "replaces": original_id},
            condition=Expression("attribute_not_exists(pk)"),
        )
        transact(
            self.table,
            [
                policy_check(replacement.venue_id, quoted.policy_hash),
                superseded,
                made,
                *slot_operations(replacement.venue_id, writes),
                _claim_booking(flow, original_id, replacement.venue_id, retention),
                *_claim_key(flow, original_id, retention),
            ],
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
        superseded = move_hold(
            original.hold_id,
            HoldStatus.HELD,
            HoldStatus.SUPERSEDED,
            now,
            live=True,
            sets=flow_attributes(flow),
        )
        transact(
            self.table,
            [
                superseded,
                *slot_operations(original.venue_id, writes),
                *_claim_key(flow, original.hold_id, retention),
                outbox_event(event),
            ],
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
            close_flow(original_id, flow, now),
            Operation(
                "booking",
                "Delete",
                key=booking_key(flow.booking_id),
                condition=claimed_booking(original_id),
            ),
            outbox_event(event),
        ]
        if replacement is not None:
            # Expired or not: a flow's replacement never stays held once the flow has ended.
            released = move_hold(
                replacement.hold_id,
                HoldStatus.HELD,
                HoldStatus.RELEASED,
                now,
                live=False,
                label="replacement",
            )
            operations.extend([released, *slot_operations(replacement.venue_id, writes)])
        transact(self.table, operations)

    def due_flows(self, now: datetime) -> list[str]:
        items = self.table.query(
            Expression(
                "#open = :open AND #due <= :now",
                {":open": OPEN_FLOW, ":now": epoch(now)},
                {"#open": OPEN_FLOW_ATTRIBUTE, "#due": FLOW_DUE_ATTRIBUTE},
            ),
            index=OPEN_FLOWS_INDEX,
        )
        return [hold_id_of(str(item["pk"])) for item in items]


def close_flow(original_id: str, flow: DriftFlow, now: datetime) -> Operation:
    """The original's open flow takes ``flow``'s state and leaves the open-flows index (``original``)."""
    values: dict[str, Any] = {":state": flow.state.value, ":now_iso": iso(now)}
    assignments = ["flow = :state", "updated_at = :now_iso"]
    if flow.reason is not None:
        assignments.append("flow_reason = :reason")
        values[":reason"] = flow.reason.value
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


def claimed_booking(original_id: str) -> Expression:
    """The booking id is still claimed by the open flow of ``original_id``, and nothing more."""
    return Expression(
        "#status = :pending AND flow = :original",
        {":pending": BookingStatus.PENDING.value, ":original": original_id},
        {"#status": "status"},
    )


def _claim_booking(flow: DriftFlow, original_id: str, venue_id: str, retention: int) -> Operation:
    return Operation(
        "booking",
        "Put",
        item={
            **booking_key(flow.booking_id),
            "status": BookingStatus.PENDING.value,
            "booking_id": flow.booking_id,
            "flow": original_id,
            "venue_id": venue_id,
            "expires_at": retention,
        },
        condition=Expression("attribute_not_exists(pk)"),
    )


def _claim_key(flow: DriftFlow, original_id: str, retention: int) -> list[Operation]:
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
