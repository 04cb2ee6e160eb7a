"""The deliveries ledger in memory (``emails.ports.Ledger`` and ``EmailRecords``): the items
``adapters.deliveries_table`` keeps, judged by the same ``TRANSITIONS``, with the same retention
that never shrinks and the same expiry by time."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from booking_durability.adapters.deliveries_table import TRANSITIONS, State, record_of, retention_floor
from booking_durability.emails.ledger import Change, DeliveryRecord, StatusWrite
from booking_durability.emails.models import EmailRef, EmailStatus
from booking_durability.errors import StoreUnavailable
from booking_durability.times import iso

Item = dict[str, Any]
_LEASE = ("lease_token", "lease_until")


def in_state(item: Item | None, state: State, now: int, token: str | None) -> bool:
    """Whether ``item`` is in ``state`` at ``now`` (epoch seconds), as the table's conditions say."""
    if state is State.NOBODY:
        return item is None or ("expires_at" in item and item["expires_at"] < now)
    if item is None:
        return False
    status = item.get("status")
    if state is State.QUEUED_READY:
        return status == EmailStatus.QUEUED and item.get("not_before", now) <= now
    if state is State.ABANDONED:
        return status == EmailStatus.SENDING and item.get("lease_until", now) < now
    if state is State.OURS:
        return token is not None and item.get("lease_token") == token
    return status == state.value


@dataclass
class InMemoryLedger:
    """The deliveries table in memory, as both the consumer and the email routes use it."""

    items: dict[tuple[str, str], Item] = field(default_factory=dict)

    # -- the consumer's writes ---------------------------------------------------------------

    def claim(
        self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime, lease_seconds: int
    ) -> StatusWrite:
        def counted(item: Item) -> None:
            item["attempts"] = item.get("attempts", 0) + 1
            item.setdefault("throttle_deferrals", 0)

        sets = {
            "lease_token": uuid.uuid4().hex,
            "lease_until": int(now.timestamp()) + lease_seconds,
            "job_id": job_id,
        }
        floor = retention_floor(now, deliver_at, held_seconds=lease_seconds)
        return self._change(ref, Change.CLAIM, now, floor, sets, ("failure_reason", "not_before"), counted)

    def expire_unsent(self, ref: EmailRef, now: datetime, deliver_at: datetime) -> StatusWrite:
        removes = ("failure_reason", "not_before", *_LEASE)
        return self._change(ref, Change.EXPIRE_UNSENT, now, retention_floor(now, deliver_at), {}, removes)

    def retain(self, ref: EmailRef, now: datetime, deliver_at: datetime) -> None:
        self._keep_at_least(ref, retention_floor(now, deliver_at))

    def mark_sent(self, ref: EmailRef, now: datetime) -> None:
        item = self.items.setdefault(_key(ref), {"booking_id": ref.booking_id, "email_key": _key(ref)[1]})
        item.update(status=EmailStatus.SENT.value, sent_at=iso(now), updated_at=iso(now))
        item.setdefault("expires_at", retention_floor(now))
        for name in (*_LEASE, "failure_reason", "throttle_deferrals", "not_before"):
            item.pop(name, None)

    def finish(
        self, ref: EmailRef, token: str, change: Change, now: datetime, reason: str | None = None
    ) -> StatusWrite:
        sets = {"failure_reason": reason} if reason is not None else {}
        return self._held_change(ref, token, change, now, sets, (*_LEASE, "throttle_deferrals", "not_before"))

    def release(
        self, ref: EmailRef, token: str, now: datetime, *, throttled_until: datetime | None = None
    ) -> StatusWrite:
        sets = {} if throttled_until is None else {"not_before": math.ceil(throttled_until.timestamp())}
        return self._held_change(
            ref, token, Change.RELEASE, now, sets, _LEASE, deferred=throttled_until is not None
        )

    def sent_or_sending(
        self, booking_id: str, email_types: Iterable[str], now: datetime, exclude: str
    ) -> bool:
        moment = int(now.timestamp())
        types = set(email_types)
        return any(
            item.get("email_type") in types
            and item.get("dedupe_key") != exclude
            and (
                item.get("status") == EmailStatus.SENT
                or (item.get("status") == EmailStatus.SENDING and item.get("lease_until", 0) >= moment)
            )
            and item.get("expires_at", moment) >= moment
            for (booking, _), item in self.items.items()
            if booking == booking_id
        )

    # -- the email routes' ---------------------------------------------------------------------

    def queue(self, ref: EmailRef, job_id: str, now: datetime, deliver_at: datetime) -> StatusWrite:
        floor = retention_floor(now, deliver_at)
        return self._change(ref, Change.QUEUE, now, floor, {"job_id": job_id}, ("failure_reason",))

    def cancel(self, ref: EmailRef, now: datetime) -> StatusWrite:
        return self._change(ref, Change.CANCEL, now, retention_floor(now), {}, ("not_before", *_LEASE))

    def record(self, ref: EmailRef, now: datetime) -> DeliveryRecord | None:
        item = self.items.get(_key(ref))
        return record_of(item) if item is not None and _retained(item, now) else None

    def records_of_booking(self, booking_id: str, now: datetime) -> list[DeliveryRecord]:
        return [
            record_of(item)
            for (booking, _), item in sorted(self.items.items())
            if booking == booking_id and _retained(item, now)
        ]

    # -- how a status changes --------------------------------------------------------------------

    def _allowed(self, item: Item | None, change: Change, now: datetime, token: str | None) -> bool:
        moment = int(now.timestamp())
        return any(in_state(item, state, moment, token) for state in TRANSITIONS[change][1])

    def _change(
        self,
        ref: EmailRef,
        change: Change,
        now: datetime,
        floor: int,
        sets: Mapping[str, Any],
        removes: tuple[str, ...],
        counted: Any = None,
    ) -> StatusWrite:
        """A change of a key someone may hold: its identity (re)written, its retention raised to
        ``floor`` where that lowers nothing, or else left be."""
        item = self.items.get(_key(ref))
        if not self._allowed(item, change, now, None):
            return self._refused(ref, item, floor)
        written = {**(item or {}), "booking_id": ref.booking_id, "email_key": _key(ref)[1]}
        identity = {"dedupe_key": ref.dedupe_key, "email_type": ref.email_type, "revision": ref.revision}
        written.update(status=TRANSITIONS[change][0].value, updated_at=iso(now), **identity, **sets)
        written["expires_at"] = max(written.get("expires_at", floor), floor)
        if counted is not None:
            counted(written)
        for name in removes:
            written.pop(name, None)
        self.items[_key(ref)] = written
        return StatusWrite(done=True, record=record_of(written))

    def _held_change(
        self,
        ref: EmailRef,
        token: str,
        change: Change,
        now: datetime,
        sets: Mapping[str, Any],
        removes: tuple[str, ...],
        *,
        deferred: bool = False,
    ) -> StatusWrite:
        """A change only the lease holder makes; its claim's retention covers it."""
        item = self.items.get(_key(ref))
        if not self._allowed(item, change, now, token):
            return self._refused(ref, item, retention_floor(now))
        if item is None:
            raise StoreUnavailable("no item under the holder's lease")
        item.update(status=TRANSITIONS[change][0].value, updated_at=iso(now), **sets)
        item.setdefault("expires_at", retention_floor(now))
        for name in removes:
            item.pop(name, None)
        if deferred:
            item["throttle_deferrals"] = item.get("throttle_deferrals", 0) + 1
        return StatusWrite(done=True, record=DeliveryRecord(TRANSITIONS[change][0]))

    def _refused(self, ref: EmailRef, item: Item | None, floor: int) -> StatusWrite:
        if item is None:
            # As the table answers it: refused with no item, nobody can tell who holds the key.
            raise StoreUnavailable("condition refused without the item")
        record = record_of(item)
        self._keep_at_least(ref, floor)
        return StatusWrite(done=False, record=record)

    def _keep_at_least(self, ref: EmailRef, floor: int) -> None:
        item = self.items.get(_key(ref))
        if item is not None and "expires_at" in item and item["expires_at"] < floor:
            item["expires_at"] = floor


def _key(ref: EmailRef) -> tuple[str, str]:
    return ref.booking_id, f"{ref.email_type}#{ref.revision}"


def _retained(item: Item, now: datetime) -> bool:
    return "expires_at" not in item or int(item["expires_at"]) >= now.timestamp()
