"""Confirming a hold (``POST /v1/holds/{hold_id}/confirm``, docs/reference/http-api.md#confirmation).

Checked in the contract's order: unknown → repeat → key reuse → metadata → seating →
expiry/activity → policy. A fresh request is one transaction (``attempt.confirm_hold``): two
round trips in all with the read. When that transaction finds the venue's policy changed, the
request becomes a drift flow (``drift.begin``).

Every round reads the hold (and the key) and decides from what is stored, so a write that lost a
race, or a request that ended half-way (a 5xx or a timeout after the hold was replaced), is
decided again from the state it left: a repeat — the same hold, or the original its flow
replaced, with the same booking id, or the same ``Idempotency-Key`` — answers the first 200
body, or carries its drift flow on to the confirmation or the flow's ``POLICY_CHANGED``, never
``HOLD_NOT_ACTIVE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from booking_durability.errors import Busy
from booking_durability.metric_names import Metric
from booking_durability.observability import count, logger
from booking_durability.reservations import drift
from booking_durability.reservations.allocator import seats_party
from booking_durability.reservations.attempt import confirm_hold
from booking_durability.reservations.catalog import quoted_policy
from booking_durability.reservations.holds import HoldStatus, QuotedHold, complete, new_hold_id
from booking_durability.reservations.ports import (
    AnswerBody,
    KeyRecord,
    ReservationStore,
    StoredHold,
    WriteConflict,
)
from booking_durability.reservations.refusals import (
    BookingIdTaken,
    HoldExpired,
    HoldInvalid,
    HoldMetadataIncomplete,
    HoldNotActive,
    HoldNotFound,
    IdempotencyKeyReused,
)

# Reads and decisions again after a lost race, without a pause: the re-read mostly settles the
# request (a repeat, a hold no longer held, a key taken, a flow carried on) rather than writing.
MAX_ROUNDS = 8


@dataclass(frozen=True)
class ConfirmRequest:
    hold_id: str
    booking_id: str
    idempotency_key: str | None = None


def confirm_with_policy_retry(
    store: ReservationStore,
    request: ConfirmRequest,
    now: Callable[[], datetime],
    *,
    new_id: Callable[[], str] = new_hold_id,
) -> AnswerBody:
    """The confirmation's 200 body, or a ``DomainError`` as the contract lists them."""
    for _ in range(MAX_ROUNDS):
        stored, keyed = store.confirm_reads(request.hold_id, request.idempotency_key)
        if stored is None:
            raise HoldNotFound("no hold has this id")
        try:
            repeated = _repeat(store, stored, keyed, request)
            if isinstance(repeated, StoredHold):
                return drift.carry_on(store, repeated, now)
            if repeated is not None:
                return repeated
            quoted = _check_confirmable(store, stored, now())
            return _confirm(store, stored, quoted, request, now, new_id)
        except WriteConflict:
            continue  # the hold, the key, a record or a flow changed: read again and decide again
    raise Busy("the hold kept changing while it was being confirmed")


def _repeat(
    store: ReservationStore, stored: StoredHold, keyed: KeyRecord | None, request: ConfirmRequest
) -> AnswerBody | StoredHold | None:
    """What a repeat (docs/reference/http-api.md#repeats-and-idempotency-keys) is answered from: the first 200
    body, or the original hold whose drift flow this booking began (to carry on); None for a fresh request.
    A key bound to another hold or booking is refused."""
    booking_id = request.booking_id
    if stored.flow is not None and stored.flow.booking_id == booking_id:
        return stored
    if stored.booking_id == booking_id:
        answer = store.confirmed_answer(booking_id)
        if answer is not None:
            return answer.body
    if stored.replaces is not None:
        # Named by the replacement (an answer, an event or a read gave it out): its flow's own?
        origin = store.hold(stored.replaces)
        if origin is not None and origin.flow is not None and origin.flow.booking_id == booking_id:
            return origin
    if keyed is not None:
        if (keyed.hold_id, keyed.booking_id) != (request.hold_id, booking_id):
            raise IdempotencyKeyReused("this Idempotency-Key was used for another hold or booking")
        if keyed.body is not None:
            return keyed.body
    return None


def _check_confirmable(store: ReservationStore, stored: StoredHold, now: datetime) -> QuotedHold:
    """Points 1 and 2 of the contract's order: metadata, seating, expiry, activity."""
    hold = stored.hold
    quoted = complete(hold)
    if isinstance(quoted, list):
        count(Metric.HOLD_METADATA_REJECTED)
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
    return quoted


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
    quoted: QuotedHold,
    request: ConfirmRequest,
    now: Callable[[], datetime],
    new_id: Callable[[], str],
) -> AnswerBody:
    """The first confirmation attempt, on the hold as quoted; drift when its policy moved."""
    try:
        return confirm_hold(
            store,
            quoted,
            stored.owns_until,
            request.booking_id,
            now(),
            answered_hold_id=request.hold_id,
            idempotency_key=request.idempotency_key,
        )
    except WriteConflict as conflict:
        # DynamoDB names every refused condition: a booking id that is taken is answered before
        # any drift, so drift recovery never supersedes a hold it could not confirm anyway.
        if "booking" in conflict.refused:
            answer = conflict.booking
            if answer is None or answer.hold_id != request.hold_id:
                raise BookingIdTaken("another hold's booking has this booking_id") from None
            return answer.body
        if conflict.policy_moved and not conflict.refused & {"hold", "idempotency"}:
            claimant = drift.Claimant(request.booking_id, request.idempotency_key)
            return drift.begin(store, quoted, stored, claimant, now, new_id)
        raise
