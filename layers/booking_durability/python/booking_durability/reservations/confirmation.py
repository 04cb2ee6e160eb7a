"""Confirming a hold (``POST /v1/holds/{hold_id}/confirm``, CONTRACT §1), and recovering from a
seating policy that changed since the hold was quoted.

Checked in the contract's order: unknown → repeat → key reuse → metadata → expiry/activity →
policy. One transaction confirms: the hold, its tables becoming the booking's, the booking, the
answer stored for repeats (and the ``Idempotency-Key``), the drift event when there was one, and
a check that the venue still has the hold's policy, so a change between read and write is met as
drift and never committed past.

On drift, ``confirm_with_policy_retry`` re-quotes the same party, time and zone under the
current policy (the hold's own tables counted free), replaces the hold atomically and confirms
the replacement: at most two confirmation attempts in all. Each request that meets drift writes
exactly one event to the outbox, in the transaction that records its outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from booking_durability.drift_events import PolicyDriftData
from booking_durability.errors import Busy
from booking_durability.observability import count, count_with_dimension, logger
from booking_durability.reservations.allocator import NoAvailability, allocate, seats_party
from booking_durability.reservations.catalog import Venue, current_venue, quoted_policy
from booking_durability.reservations.errors import (
    BookingIdTaken,
    HoldExpired,
    HoldInvalid,
    HoldMetadataIncomplete,
    HoldNotActive,
    HoldNotFound,
    IdempotencyKeyReused,
    PolicyChanged,
)
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold, complete, new_hold
from booking_durability.reservations.intervals import Interval, ownership_interval
from booking_durability.reservations.ownership import (
    Slot,
    SlotRecord,
    busy_tables,
    claim,
    release,
)
from booking_durability.reservations.ports import (
    Booking,
    ConfirmedAnswer,
    ReservationStore,
    StoredHold,
    WriteConflict,
)
from booking_durability.times import iso

MAX_ATTEMPTS = 2  # confirmation attempts per request: the hold, then one replacement
# Re-reads after lost races (never counted as attempts), without a pause: the re-read mostly
# settles the request (a repeat, a hold no longer held, a key taken) rather than writing again.
MAX_ROUNDS = 8

DriftReason = Literal["no_availability", "drift_repeated"]


@dataclass(frozen=True)
class ConfirmRequest:
    hold_id: str
    booking_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class _Drift:
    """What the answer and the event say of the drift met."""

    original: StoredHold
    attempts: int


class _PolicyMoved(Exception):
    """The venue's policy is not the hold's (found at write time)."""


@dataclass(frozen=True)
class _Unavailable:
    """No table fits the re-quote; ``records`` are the ownership records it read, the original's
    among them (what recording the drift's end releases first)."""

    records: Mapping[Slot, SlotRecord]


def confirm_with_policy_retry(
    store: ReservationStore,
    request: ConfirmRequest,
    now: Callable[[], datetime],
    *,
    new_id: Callable[[], str] = lambda: f"hld_{uuid.uuid4().hex}",
) -> dict[str, Any]:
    """The confirmation's 200 body, or a ``DomainError`` as the contract lists them."""
    for _ in range(MAX_ROUNDS):
        stored, keyed = store.confirm_reads(request.hold_id, request.idempotency_key)
        if stored is None:
            raise HoldNotFound("no hold has this id")
        repeated = _repeat(store, stored, keyed, request)
        if repeated is not None:
            return repeated
        _check_confirmable(store, stored, now())
        try:
            return _confirm(store, stored, request, now())
        except _PolicyMoved:
            return _recover(store, stored, request, now, new_id)
        except WriteConflict:
            continue  # the hold, the key or a record changed: read again and decide again
    raise Busy("the hold kept changing while it was being confirmed")


def _repeat(
    store: ReservationStore, stored: StoredHold, keyed: ConfirmedAnswer | None, request: ConfirmRequest
) -> dict[str, Any] | None:
    """The first 200 body when this request repeats one that succeeded (CONTRACT §1 point 4):
    the same hold (or the original it replaced) with the same booking, or the same key; a key
    used for another hold or booking is refused."""
    if stored.booking_id == request.booking_id:
        answer = store.confirmed_answer(request.booking_id)
        if answer is not None:
            return answer.body
    if keyed is not None:
        if (keyed.hold_id, keyed.booking_id) == (request.hold_id, request.booking_id):
            return keyed.body
        raise IdempotencyKeyReused("this Idempotency-Key was used for another hold or booking")
    return None


def _check_confirmable(store: ReservationStore, stored: StoredHold, now: datetime) -> None:
    """Points 1 and 2 of the contract's order: metadata, seating, expiry, activity."""
    hold = stored.hold
    quoted = complete(hold)
    if isinstance(quoted, list):
        count("HoldMetadataRejected")
        logger.warning(
            "hold lacks metadata; not confirmed", extra={"hold_id": hold.hold_id, "missing": quoted}
        )
        raise HoldMetadataIncomplete(quoted)
    _check_seating(store, quoted)
    status = hold.effective_status(now)
    if status is HoldStatus.EXPIRED:
        raise HoldExpired("the hold expired before it was confirmed")
    if status is not HoldStatus.HELD:
        raise HoldNotActive("the hold is not held (released, superseded or confirmed for another booking)")


def _check_seating(store: ReservationStore, quoted: QuotedHold) -> None:
    """The hold's tables seat its party under the version it was quoted under, by the allocator's
    own rule, whatever wrote the hold (an import may not have checked). A hold whose policy no
    version has is left to the drift check: its re-quote is the allocator's."""
    hold = quoted.hold
    config = quoted_policy(store, hold.venue_id, quoted.policy_hash, hold.policy_version)
    if config is not None and not seats_party(config, hold.party_size, hold.table_ids, quoted.zone):
        logger.warning(
            "hold's tables cannot seat its party; not confirmed",
            extra={"hold_id": hold.hold_id, "venue_id": hold.venue_id, "policy_hash": quoted.policy_hash},
        )
        raise HoldInvalid()


def _confirm(
    store: ReservationStore,
    stored: StoredHold,
    request: ConfirmRequest,
    now: datetime,
    drift: _Drift | None = None,
    event: PolicyDriftData | None = None,
) -> dict[str, Any]:
    """One confirmation attempt; ``_PolicyMoved`` when the venue's policy is no longer the hold's."""
    hold = stored.hold
    booking = Booking(
        booking_id=request.booking_id,
        hold_id=hold.hold_id,
        venue_id=hold.venue_id,
        table_ids=hold.table_ids,
        starts_at=hold.starts_at,
        ends_at=hold.ends_at,
        status="confirmed",
        owns_until=stored.owns_until,
    )
    body = confirmation_body(hold, booking, drift)
    try:
        store.confirm(
            stored,
            booking,
            ConfirmedAnswer(request.hold_id, request.booking_id, body),
            now,
            idempotency_key=request.idempotency_key,
            event=event,
            original=None if drift is None else drift.original,
        )
    except WriteConflict as conflict:
        # DynamoDB names every refused condition: a booking id that is taken is answered before
        # any drift, so drift recovery never supersedes a hold it could not confirm anyway.
        if "booking" in conflict.refused:
            answer = conflict.booking
            if answer is None or answer.hold_id != request.hold_id:
                raise BookingIdTaken("another hold's booking has this booking_id") from None
            return answer.body
        if conflict.policy_moved:
            raise _PolicyMoved from None
        raise
    count("HoldConfirmed")
    logger.info(
        "hold confirmed",
        extra={
            "hold_id": hold.hold_id,
            "booking_id": booking.booking_id,
            "policy_version": hold.policy_version,
        },
    )
    return body


def confirmation_body(hold: Hold, booking: Booking, drift: _Drift | None) -> dict[str, Any]:
    return {
        "booking_id": booking.booking_id,
        "hold_id": hold.hold_id,
        "venue_id": hold.venue_id,
        "table_ids": list(hold.table_ids),
        "starts_at": iso(hold.starts_at),
        "ends_at": iso(hold.ends_at),
        "policy_hash": hold.policy_hash,
        "policy_version": hold.policy_version,
        "status": "confirmed",
        "policy_drift": None
        if drift is None
        else {
            "recovered": True,
            "attempts": drift.attempts,
            "original_hold_id": drift.original.hold.hold_id,
            "original_policy_hash": drift.original.hold.policy_hash,
        },
    }


# -- drift ------------------------------------------------------------------------------------


def _recover(
    store: ReservationStore,
    original: StoredHold,
    request: ConfirmRequest,
    now: Callable[[], datetime],
    new_id: Callable[[], str],
) -> dict[str, Any]:
    """The hold's policy is no longer the venue's: re-quote, replace, confirm the replacement."""
    count("PolicyDriftDetected")
    for _ in range(MAX_ROUNDS):
        venue = current_venue(store, original.hold.venue_id)
        _log_drift(original.hold, venue)
        moment = now()
        quote = _requote(store, original, venue, moment, new_id)
        if isinstance(quote, _Unavailable):
            return _unrecovered(
                store, original, None, venue, "no_availability", 1, now, records=quote.records
            )
        replacement, interval, writes = quote
        try:
            store.replace_hold(original, replacement, interval.end, writes, moment)
        except WriteConflict as conflict:
            if "hold" in conflict.refused:
                # Another request superseded, released or confirmed it meanwhile: answer as it stands.
                return _settled_elsewhere(store, request)
            continue  # the policy or a table moved during the re-quote: quote again
        stored_replacement = StoredHold(replacement, interval.end)
        drift = _Drift(original, MAX_ATTEMPTS)
        event = _event(original.hold, venue, MAX_ATTEMPTS, replacement.hold_id, None, moment)
        try:
            body = _confirm(store, stored_replacement, request, now(), drift, event)
        except _PolicyMoved:
            return _unrecovered(
                store, original, stored_replacement, None, "drift_repeated", MAX_ATTEMPTS, now
            )
        count("PolicyDriftRecovered")
        return body
    raise Busy("the venue kept changing while the hold was being re-quoted")


def _requote(
    store: ReservationStore, original: StoredHold, venue: Venue, now: datetime, new_id: Callable[[], str]
) -> tuple[Hold, Interval, list[Any]] | _Unavailable:
    """The replacement hold under the current policy, and the ownership writes that move it."""
    hold = original.hold
    snapshot = hold.selection_snapshot
    # Confirmation checked the metadata: a complete snapshot.
    assert snapshot is not None
    assert snapshot.starts_at is not None
    assert snapshot.ends_at is not None
    assert snapshot.party_size is not None
    policy = venue.config.policy
    interval = ownership_interval(snapshot.starts_at, snapshot.ends_at, policy.buffer_minutes)
    # The original's own records too, so the replacement frees what it does not take.
    records = store.slot_records(
        hold.venue_id, Interval(hold.starts_at, max(original.owns_until, interval.end))
    )
    busy = busy_tables(records.values(), interval, now, ignoring=hold.hold_id)
    chosen = allocate(venue.config, snapshot.party_size, snapshot.zone, busy)
    if isinstance(chosen, NoAvailability):
        return _Unavailable(records)
    replacement = new_hold(
        new_id(),
        (snapshot.starts_at, snapshot.ends_at),
        chosen,
        venue_id=hold.venue_id,
        party_size=snapshot.party_size,
        zone=snapshot.zone,
        policy=policy,
        policy_hash=venue.policy_hash,
        policy_version=venue.policy_version,
        now=now,
    )
    writes = claim(
        records,
        replacement.table_ids,
        interval,
        replacement.hold_id,
        replacement.expires_at,
        now,
        releasing=hold.hold_id,
    )
    return replacement, interval, writes


def _unrecovered(
    store: ReservationStore,
    original: StoredHold,
    replacement: StoredHold | None,
    venue: Venue | None,
    reason: DriftReason,
    attempts: int,
    now: Callable[[], datetime],
    *,
    records: Mapping[Slot, SlotRecord] | None = None,
) -> dict[str, Any]:
    """Record the drift's end: the original superseded, any replacement released, one event;
    then answer 409 ``POLICY_CHANGED``. ``records``, when given, hold every ownership record of
    the ending hold as just read: the first round writes from them without reading again."""
    # The hold the ending applies to: the original (no replacement was made) or the replacement.
    ending = replacement or original
    to_status = HoldStatus.RELEASED if replacement is not None else HoldStatus.SUPERSEDED
    for _ in range(MAX_ROUNDS):
        moment = now()
        current = venue or current_venue(store, original.hold.venue_id)
        event = _event(
            original.hold,
            current,
            attempts,
            None if replacement is None else replacement.hold.hold_id,
            reason,
            moment,
        )
        if records is None:
            records = store.slot_records(
                ending.hold.venue_id, Interval(ending.hold.starts_at, ending.owns_until)
            )
        try:
            store.end_hold(
                ending.hold, to_status, release(records, ending.hold.hold_id, moment), moment, event
            )
        except WriteConflict as conflict:
            if "hold" not in conflict.refused:
                records = None  # a record moved: read them again
                continue
            # The hold is no longer held (it expired meanwhile): the event is all there is to write.
            store.record_event(event)
        count_with_dimension("PolicyDriftUnrecovered", "reason", reason)
        logger.warning(
            "policy drift not recovered",
            extra={"hold_id": original.hold.hold_id, "reason": reason, "attempts": attempts},
        )
        raise PolicyChanged(attempts, reason)
    raise Busy("the hold's tables kept changing while the drift was recorded")


def _settled_elsewhere(store: ReservationStore, request: ConfirmRequest) -> dict[str, Any]:
    stored, keyed = store.confirm_reads(request.hold_id, request.idempotency_key)
    if stored is not None:
        repeated = _repeat(store, stored, keyed, request)
        if repeated is not None:
            return repeated
    raise HoldNotActive("the hold was settled by another request")


def _event(
    original: Hold,
    venue: Venue,
    attempts: int,
    hold_id: str | None,
    reason: DriftReason | None,
    now: datetime,
) -> PolicyDriftData:
    """The CONTRACT §4 body: ids and hashes only."""
    assert original.policy_hash is not None
    return PolicyDriftData(
        type="policy_drift.unrecovered" if reason else "policy_drift.recovered",
        event_id=uuid.uuid4(),
        occurred_at=now,
        venue_id=original.venue_id,
        original_hold_id=original.hold_id,
        hold_id=hold_id,
        original_policy_hash=original.policy_hash,
        policy_hash=venue.policy_hash,
        policy_version=venue.policy_version,
        attempts=attempts,
        reason=reason,
    )


def _log_drift(hold: Hold, venue: Venue) -> None:
    logger.warning(
        "seating policy drift met at confirmation",
        extra={
            "hold_id": hold.hold_id,
            "venue_id": hold.venue_id,
            "hold_policy_hash": hold.policy_hash,
            "hold_policy_version": hold.policy_version,
            "policy_hash": venue.policy_hash,
            "policy_version": venue.policy_version,
        },
    )
