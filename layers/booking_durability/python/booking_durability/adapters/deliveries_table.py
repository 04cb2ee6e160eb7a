"""The deliveries table: one item per dedupe key, the ledger that makes delivery exactly-once.

Item: ``booking_id`` (partition), ``email_key`` = ``{email_type}#{revision}`` (sort),
``dedupe_key``, ``email_type``, ``revision``, ``status``, ``attempts``, ``job_id``,
``lease_token``/``lease_until`` while a worker sends, ``failure_reason``, ``throttle_deferrals``
and ``not_before`` (a throttle's retry-after), ``updated_at``, ``sent_at`` and ``expires_at``
(TTL, epoch seconds). Never an address or a name.

Every status change is one conditional write whose condition comes from ``TRANSITIONS``: which
states each change may start from. A refused write returns the item as it was, so the caller
learns why without a read; an accepted one returns the item as it was too (nothing, for a new
key), and the record it wrote is that item with the write's changes (``_Write.applied``), so
DynamoDB sends no item back for a key claimed the first time. DynamoDB deletes TTL-expired items
lazily (and moto never does), so an item past ``expires_at`` counts as no item.

Retention never shrinks (README.md, "How delivery stays exactly-once"): a record lives at least
30 days past the latest of every write's time and every ``deliver_at`` it was written for,
whatever order the writes come in. DynamoDB has no ``max`` in an update expression, so each
write says so in its condition: it sets its own retention only where that does not lower the
stored one, and otherwise (a second write, only then) changes the status and leaves the
retention be; a refused write still raises a shorter retention to its own (``_keep_at_least``,
conditional too). A claim covers its holder's later writes (its retention counts from the end of
its lease, and the lease outlasts the invocation), so those never need a second write.
Retention is computed in whole epoch seconds, never by date arithmetic: no instant a message can
carry overflows it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from booking_durability.adapters.dynamodb import DynamoTable, Expression, Item, Written
from booking_durability.emails.guest import RETENTION, EmailRef, EmailStatus
from booking_durability.emails.ledger import Change, DeliveryRecord, StatusWrite
from booking_durability.errors import StoreUnavailable
from booking_durability.times import iso


class State(StrEnum):
    """The states a transition may start from, as the conditions test them."""

    NOBODY = "nobody"  # no item, or its retention ran out
    QUEUED = "queued"
    QUEUED_READY = "queued_ready"  # queued, and no throttle asked to hold off until later
    FAILED = "failed"
    ABANDONED = "abandoned"  # sending, but the sender's lease expired (it died)
    OURS = "ours"  # sending under the caller's lease token
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


#: change → (status it writes, the states it may start from). ``sent`` is written without a
#: condition: once the provider accepted an email, that is the truth whatever else happened.
TRANSITIONS: Mapping[Change, tuple[EmailStatus, frozenset[State]]] = {
    Change.CLAIM: (
        EmailStatus.SENDING,
        frozenset({State.NOBODY, State.QUEUED_READY, State.FAILED, State.ABANDONED}),
    ),
    Change.EXPIRE_UNSENT: (
        EmailStatus.EXPIRED,
        frozenset({State.NOBODY, State.QUEUED_READY, State.FAILED, State.ABANDONED}),
    ),
    Change.QUEUE: (EmailStatus.QUEUED, frozenset({State.NOBODY, State.QUEUED, State.FAILED})),
    Change.CANCEL: (
        EmailStatus.CANCELLED,
        frozenset(
            {
                State.NOBODY,
                State.QUEUED,
                State.FAILED,
                State.ABANDONED,
                State.CANCELLED,
                State.SUPPRESSED,
                State.EXPIRED,
            }
        ),
    ),
    Change.FAIL: (EmailStatus.FAILED, frozenset({State.OURS})),
    Change.SUPPRESS: (EmailStatus.SUPPRESSED, frozenset({State.OURS})),
    Change.EXPIRE: (EmailStatus.EXPIRED, frozenset({State.OURS})),
    Change.RELEASE: (EmailStatus.QUEUED, frozenset({State.OURS})),
}

_STATUS = {"#status": "status"}
RETENTION_SECONDS = int(RETENTION / timedelta(seconds=1))
# A write sets its retention only where that lowers nothing; otherwise the record is kept longer.
_NOT_SHORTER = Expression("attribute_not_exists(expires_at) OR expires_at <= :floor")
_LONGER = Expression("expires_at > :floor")


def retention_floor(now: datetime, deliver_at: datetime | None = None, *, held_seconds: int = 0) -> int:
    """Epoch seconds a record must be kept to at least: ``RETENTION`` past the later of now
    (plus ``held_seconds``, a claim's lease) and ``deliver_at``."""
    latest = math.ceil(now.timestamp()) + held_seconds
    if deliver_at is not None:
        latest = max(latest, math.ceil(deliver_at.timestamp()))
    return latest + RETENTION_SECONDS


def _state_condition(state: State, now: int, token: str | None) -> Expression:
    def status_is(status: EmailStatus, extra: str = "", **values: Any) -> Expression:
        text = f"#status = :{status.value}" + (f" AND {extra}" if extra else "")
        return Expression(text, {f":{status.value}": status.value, **values}, _STATUS)

    match state:
        case State.NOBODY:
            return Expression("attribute_not_exists(booking_id) OR expires_at < :now", {":now": now})
        case State.QUEUED_READY:
            return status_is(
                EmailStatus.QUEUED,
                "(attribute_not_exists(not_before) OR not_before <= :now)",
                **{":now": now},
            )
        case State.ABANDONED:
            return status_is(EmailStatus.SENDING, "lease_until < :now", **{":now": now})
        case State.OURS:
            return Expression("lease_token = :token", {":token": token})
        case _:
            return status_is(EmailStatus(state.value))


def transition_condition(change: Change, now: datetime, token: str | None = None) -> Expression:
    """The condition of ``change``: any of the states it may start from, built from TRANSITIONS."""
    states = sorted(TRANSITIONS[change][1])
    moment = int(now.timestamp())
    condition = _state_condition(states[0], moment, token)
    for state in states[1:]:
        condition = condition | _state_condition(state, moment, token)
    return condition


def record_of(item: Item) -> DeliveryRecord:
    """The ledger's record of an item."""
    return DeliveryRecord(
        status=EmailStatus(item.get("status", EmailStatus.QUEUED)),
        dedupe_key=str(item.get("dedupe_key", "")),
        attempts=int(item.get("attempts", 0)),
        throttle_deferrals=int(item.get("throttle_deferrals", 0)),
        lease_token=item.get("lease_token"),
        lease_until=float(item["lease_until"]) if "lease_until" in item else None,
        not_before=float(item["not_before"]) if "not_before" in item else None,
        updated_at=item.get("updated_at"),
        job_id=item.get("job_id"),
    )


class _StatusWrites:
    """Status changes as single conditional writes, their conditions taken from ``TRANSITIONS``."""

    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def retain(self, ref: EmailRef, now: datetime, deliver_at: datetime) -> None:
        """Keep an existing record at least until ``retention_floor(now, deliver_at)``; creates
        none (a job published straight to SQS gets its record when first claimed)."""
        self._keep_at_least(ref, retention_floor(now, deliver_at), None)

    def _change(
        self,
        ref: EmailRef,
        change: Change,
        now: datetime,
        floor: int,
        *,
        sets: Mapping[str, Any] | None = None,
        counted: bool = False,
        removes: tuple[str, ...] = (),
    ) -> StatusWrite:
        """A change of a key someone may hold: it also (re)writes the key's identity, and its
        retention where that lowers nothing (else a second write leaves the retention be)."""
        identity = {"dedupe_key": ref.dedupe_key, "email_type": ref.email_type, "revision": ref.revision}
        write = _Write(ref, change, now, None, {**identity, **(sets or {})}, floor, counted, removes)
        written = self._write(write, "expires_at = :floor", _NOT_SHORTER, item_before=True)
        stored = _expiry(written.item)
        if not written.accepted:
            if stored is None or stored <= floor:
                return self._outcome(write, written)
            written = self._write(write, "", _LONGER, item_before=True)
            if not written.accepted:
                return self._outcome(write, written)
            return self._outcome(write, Written(True, write.applied(written.item, retention=False)))
        return self._outcome(write, Written(True, write.applied(written.item, retention=True)))

    def _held_change(
        self,
        ref: EmailRef,
        token: str,
        change: Change,
        now: datetime,
        *,
        sets: Mapping[str, Any],
        removes: tuple[str, ...],
        add: str = "",
    ) -> StatusWrite:
        # The claim's retention covers its holder's writes: only an item without one gets one.
        # Only the lease holder makes these: on success nothing new needs reading back.
        write = _Write(ref, change, now, token, sets, retention_floor(now), False, removes, add)
        retention = "expires_at = if_not_exists(expires_at, :floor)"
        return self._outcome(write, self._write(write, retention, return_item=False))

    def _write(
        self,
        write: _Write,
        retention: str,
        kept: Expression | None = None,
        *,
        return_item: bool = True,
        item_before: bool = False,
    ) -> Written:
        """One UpdateItem of ``write``: the status it writes, on the condition it starts from
        (TRANSITIONS) and ``kept``, setting the retention as ``retention`` says (or not at all)."""
        status, _ = TRANSITIONS[write.change]
        values: dict[str, Any] = {":status": status.value, ":now_iso": iso(write.now)}
        assignments = ["#status = :status", "updated_at = :now_iso"]
        if retention:
            assignments.append(retention)
            values[":floor"] = write.floor
        for i, (name, value) in enumerate(write.sets.items()):
            assignments.append(f"{name} = :v{i}")
            values[f":v{i}"] = value
        if write.counted:
            assignments.append(_COUNTED)
            values.update({":zero": 0, ":one": 1})
        text = "SET " + ", ".join(assignments)
        if write.removes:
            text += " REMOVE " + ", ".join(write.removes)
        if write.add:
            text += " ADD " + write.add
            values[":one"] = 1
        condition = transition_condition(write.change, write.now, write.token)
        if kept is not None:
            condition = condition & Expression(kept.text, {":floor": write.floor})
        update = Expression(text, values, _STATUS)
        return self.table.update(
            ref_key(write.ref), update, condition=condition, return_item=return_item, item_before=item_before
        )

    def _outcome(self, write: _Write, written: Written) -> StatusWrite:
        if not written.accepted and not written.item:
            # Refused with no item returned: we cannot tell who holds the key. Try again later.
            raise StoreUnavailable("condition refused without the item")
        if not written.accepted:
            # Refused, yet the key was written for: its record is kept at least as long.
            self._keep_at_least(write.ref, write.floor, written.item)
        status, _ = TRANSITIONS[write.change]
        record = record_of(written.item) if written.item else DeliveryRecord(status)
        return StatusWrite(done=written.accepted, record=record)

    def _keep_at_least(self, ref: EmailRef, floor: int, item: Item | None) -> None:
        """Raise the record's retention to ``floor`` if it is shorter (``item``: as last read,
        None when unknown); never lowers it, never creates a record."""
        if item is not None:
            stored = _expiry(item)
            if stored is None or stored >= floor:  # none: never expires, nothing to raise
                return
        self.table.update(
            ref_key(ref),
            Expression("SET expires_at = :floor", {":floor": floor}),
            # False for a missing item or attribute: nothing to raise.
            condition=Expression("expires_at < :floor", {":floor": floor}),
            return_item=False,
        )


@dataclass(frozen=True)
class _Write:
    """One status change, as ``_StatusWrites._write`` sends it."""

    ref: EmailRef
    change: Change
    now: datetime
    token: str | None
    sets: Mapping[str, Any]
    floor: int
    counted: bool = False  # one more attempt, and a throttle deferral count (0 when none)
    removes: tuple[str, ...] = ()
    add: str = ""

    def applied(self, before: Item, *, retention: bool) -> Item:
        """The item this write stored, from the item as it was (``{}``: none): what ``_write``'s
        expression does, for a write without ``add`` (``retention``: it set ``:floor``)."""
        item = {
            **before,
            **self.sets,
            "status": TRANSITIONS[self.change][0].value,
            "updated_at": iso(self.now),
        }
        if retention:
            item["expires_at"] = self.floor
        if self.counted:
            item["attempts"] = int(before.get("attempts", 0)) + 1
            item["throttle_deferrals"] = before.get("throttle_deferrals", 0)
        for name in self.removes:
            item.pop(name, None)
        return item


_COUNTED = (
    "attempts = if_not_exists(attempts, :zero) + :one,"
    " throttle_deferrals = if_not_exists(throttle_deferrals, :zero)"
)


def _expiry(item: Item) -> int | None:
    """The item's retention (epoch seconds), None when it has none."""
    value = item.get("expires_at")
    return None if value is None else int(value)


class DeliveryLedger(_StatusWrites):
    """The deliveries table as the consumer uses it: claim a key, then say what became of it."""

    # -- taking a key ------------------------------------------------------------------------

    def claim(
        self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime, lease_seconds: int
    ) -> StatusWrite:
        """Take the key for sending with a lease; one conditional write, no read.

        Its retention counts from the end of the lease, so the holder's own writes need none.
        """
        return self._change(
            ref,
            Change.CLAIM,
            now,
            retention_floor(now, deliver_at, held_seconds=lease_seconds),
            sets={
                "lease_token": uuid.uuid4().hex,
                "lease_until": int(now.timestamp()) + lease_seconds,
                "job_id": job_id,
            },
            counted=True,
            removes=("failure_reason", "not_before"),
        )

    def expire_unsent(self, ref: EmailRef, now: datetime, deliver_at: datetime) -> StatusWrite:
        """Record ``expired`` for an email found past its ``not_after`` before anyone sent it."""
        return self._change(
            ref,
            Change.EXPIRE_UNSENT,
            now,
            retention_floor(now, deliver_at),
            removes=("failure_reason", "not_before", *_LEASE),
        )

    # -- what became of a key we hold --------------------------------------------------------

    def mark_sent(self, ref: EmailRef, now: datetime) -> None:
        """The provider accepted the email. Unconditional: once sent, always sent (its
        retention is the claim's, which covers this write; see ``claim``)."""
        self.table.update(
            ref_key(ref),
            Expression(
                "SET #status = :status, sent_at = :now_iso, updated_at = :now_iso,"
                " expires_at = if_not_exists(expires_at, :floor)"
                f" REMOVE {', '.join(_LEASE)}, failure_reason, throttle_deferrals, not_before",
                {":status": EmailStatus.SENT.value, ":now_iso": iso(now), ":floor": retention_floor(now)},
                _STATUS,
            ),
            return_item=False,
        )

    def finish(
        self, ref: EmailRef, token: str, change: Change, now: datetime, reason: str | None = None
    ) -> StatusWrite:
        """End our hold on the key: ``FAIL`` (with ``reason``), ``SUPPRESS`` or ``EXPIRE``.

        A failed email may be redriven: it starts again with a fresh throttle budget.
        """
        return self._held_change(
            ref,
            token,
            change,
            now,
            sets={"failure_reason": reason} if reason is not None else {},
            removes=(*_LEASE, "throttle_deferrals", "not_before"),
        )

    def release(
        self, ref: EmailRef, token: str, now: datetime, *, throttled_until: datetime | None = None
    ) -> StatusWrite:
        """Give the key back to ``queued`` after a retryable failure.

        After a throttle, ``throttled_until`` counts one more deferral and keeps the key from
        being claimed before then, whichever copy of the message comes first.
        """
        sets: dict[str, Any] = {}
        add = ""
        if throttled_until is not None:
            sets = {"not_before": math.ceil(throttled_until.timestamp())}
            add = "throttle_deferrals :one"
        return self._held_change(ref, token, Change.RELEASE, now, sets=sets, removes=_LEASE, add=add)

    # -- reads -------------------------------------------------------------------------------

    def sent_or_sending(
        self, booking_id: str, email_types: Iterable[str], now: datetime, exclude: str
    ) -> bool:
        """Whether any revision of these types went out, or is going out, for the booking."""
        types = sorted(set(email_types))
        if not types:
            return False
        type_values = {f":t{i}": t for i, t in enumerate(types)}
        matching = Expression(
            f"email_type IN ({', '.join(type_values)}) AND dedupe_key <> :self AND"
            " (#status = :sent OR (#status = :sending AND lease_until >= :now))"
            " AND (attribute_not_exists(expires_at) OR expires_at >= :now)",
            {
                ":self": exclude,
                ":sent": EmailStatus.SENT.value,
                ":sending": EmailStatus.SENDING.value,
                ":now": int(now.timestamp()),
                **type_values,
            },
            _STATUS,
        )
        items = self.table.query(
            Expression("booking_id = :b", {":b": booking_id}), filter=matching, projection="dedupe_key"
        )
        return next(items, None) is not None


_LEASE = ("lease_token", "lease_until")


class EmailRecordsTable(DeliveryLedger):
    """The deliveries table as the email routes use it, besides what the consumer does."""

    def queue(self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime) -> StatusWrite:
        """Record ``queued`` for a published job, unless the key is sent, finished or being sent."""
        return self._change(
            ref,
            Change.QUEUE,
            now,
            retention_floor(now, deliver_at),
            sets={"job_id": job_id},
            removes=("failure_reason",),
        )

    def cancel(self, ref: EmailRef, now: datetime) -> StatusWrite:
        """Record ``cancelled`` (a tombstone when the key is unknown), unless sent or being sent."""
        return self._change(ref, Change.CANCEL, now, retention_floor(now), removes=("not_before", *_LEASE))

    def record(self, ref: EmailRef, now: datetime) -> DeliveryRecord | None:
        """The key's record, or None when there is none (or its retention ran out)."""
        item = self.table.get(ref_key(ref))
        return record_of(item) if item is not None and _retained(item, now) else None

    def records_of_booking(self, booking_id: str, now: datetime) -> list[DeliveryRecord]:
        """Every live record of a booking (a query on its partition)."""
        items = self.table.query(Expression("booking_id = :b", {":b": booking_id}))
        return [record_of(item) for item in items if _retained(item, now)]


def _retained(item: Item, now: datetime) -> bool:
    """Whether the item is still within its retention (TTL deletes lazily, moto never)."""
    return "expires_at" not in item or int(item["expires_at"]) >= now.timestamp()


def ref_key(ref: EmailRef) -> dict[str, str]:
    return {"booking_id": ref.booking_id, "email_key": f"{ref.email_type}#{ref.revision}"}
