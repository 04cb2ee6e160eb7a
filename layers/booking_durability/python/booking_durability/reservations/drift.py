"""Policy drift met at confirmation: the flow that re-quotes a hold under the venue's current
policy, replaces it and confirms the replacement, and tells the admins once
(docs/reference/http-api.md#policy-drift).

A flow is stored on the original hold it supersedes (``ports.DriftFlow``), from the transaction
that replaces the hold; that transaction also claims the request's booking id and
``Idempotency-Key`` for the flow, so nobody else can take them before it ends. Whoever comes next
carries the flow on from what is stored: the request itself; its repeat, after the request ended
in a 5xx or a timeout (``carry_on``); or, when nobody repeats it, the sweep, once the replacement
has expired (``finish_interrupted_flows``, scheduled: DynamoDB's TTL is not a clock). Each ending
is one transaction that writes the flow's one event and holds only while the flow is still open,
so racing repeats and sweeps never write two. At most two confirmation attempts in all: the
original, then its one replacement; a repeat never quotes again.

How a flow ends:

- recovered: the replacement confirmed (200, ``policy_drift`` set);
- ``no_availability``: nothing fits under the current policy; the original is superseded and
  its tables freed with the event, no replacement is made (attempts 1);
- ``drift_repeated``: the policy changed again before the replacement was confirmed; the
  replacement is released (attempts 2);
- ``interrupted``: the replacement expired (or was released, or confirmed for someone else)
  before the flow was carried on; it is released if still held (attempts 2).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from booking_durability.drift_events import DriftReason, PolicyDriftData
from booking_durability.errors import Busy
from booking_durability.metric_names import Dimension, Metric
from booking_durability.observability import count, count_with_dimension, logger
from booking_durability.reservations.allocator import NoAvailability, allocate
from booking_durability.reservations.attempt import Recovery, confirm_hold
from booking_durability.reservations.catalog import Venue, current_venue
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold, complete, new_hold
from booking_durability.reservations.intervals import Interval, ownership_interval
from booking_durability.reservations.ownership import Slot, SlotRecord, SlotWrite, busy_tables, claim, release
from booking_durability.reservations.ports import (
    AnswerBody,
    DriftFlow,
    FlowState,
    ReservationStore,
    StoredHold,
    WriteConflict,
)
from booking_durability.reservations.refusals import PolicyChanged

MAX_ATTEMPTS = 2  # confirmation attempts per flow: the hold, then one replacement
# Re-reads after lost races (never counted as attempts), without a pause: the re-read mostly
# settles the request (a repeat, a hold no longer held, a flow ended) rather than writing again.
MAX_ROUNDS = 8

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Claimant:
    """What a flow claims from the request that began it."""

    booking_id: str
    idempotency_key: str | None


@dataclass(frozen=True)
class _Unavailable:
    """No table fits the re-quote; ``records`` are the ownership records it read, the original's
    among them (what ending the flow frees)."""

    records: Mapping[Slot, SlotRecord]


def begin(
    store: ReservationStore,
    quoted: QuotedHold,
    stored: StoredHold,
    claimant: Claimant,
    now: Clock,
    new_id: Callable[[], str],
) -> AnswerBody:
    """The hold's policy is no longer the venue's: re-quote, replace, confirm the replacement.

    The confirmation's 200 body, or ``PolicyChanged``. ``WriteConflict`` when the hold, the
    booking id or the key changed meanwhile (another request, or expiry): the caller reads again.
    """
    count(Metric.POLICY_DRIFT_DETECTED)
    original = stored.hold
    for _ in range(MAX_ROUNDS):
        venue = current_venue(store, original.venue_id)
        _log_drift_met(quoted, venue)
        moment = now()
        quote = _requote(store, stored, quoted, venue, moment, new_id)
        if isinstance(quote, _Unavailable):
            _end_unavailable(store, original, quote, venue, claimant, moment)
            continue  # a record moved: quote again
        quoted_replacement, interval, writes = quote
        replacement = quoted_replacement.hold
        flow = DriftFlow(
            claimant.booking_id,
            FlowState.OPEN,
            attempts=MAX_ATTEMPTS,
            replacement_id=replacement.hold_id,
            idempotency_key=claimant.idempotency_key,
        )
        try:
            store.replace_hold(stored, quoted_replacement, interval.end, writes, moment, flow=flow)
        except WriteConflict as conflict:
            if conflict.refused & {"hold", "booking", "idempotency"}:
                raise  # settled or taken by another request: decide again from a fresh read
            continue  # the policy or a table moved during the re-quote: quote again
        origin = StoredHold(
            original.model_copy(update={"status": HoldStatus.SUPERSEDED}),
            stored.owns_until,
            booking_id=claimant.booking_id,
            flow=flow,
        )
        made = StoredHold(replacement, interval.end, replaces=original.hold_id)
        return carry_on(store, origin, now, replacement=made)
    raise Busy("the venue kept changing while the hold was being re-quoted")


def _end_unavailable(
    store: ReservationStore,
    original: Hold,
    quote: _Unavailable,
    venue: Venue,
    claimant: Claimant,
    moment: datetime,
) -> None:
    """No table fits: the flow ends at once, unrecovered, with ``PolicyChanged``; returns only
    when an ownership record moved meanwhile (quote again). ``WriteConflict`` when the hold or
    the key changed."""
    flow = DriftFlow(
        claimant.booking_id,
        FlowState.UNRECOVERED,
        attempts=1,
        idempotency_key=claimant.idempotency_key,
        reason=DriftReason.NO_AVAILABILITY,
    )
    event = _event(original, venue.policy_hash, venue.policy_version, flow, moment)
    try:
        store.end_drifted(original, release(quote.records, original.hold_id, moment), moment, flow, event)
    except WriteConflict as conflict:
        if conflict.refused & {"hold", "idempotency"}:
            raise
        return
    _report(event, original)
    raise PolicyChanged(flow.attempts, DriftReason.NO_AVAILABILITY)


def carry_on(
    store: ReservationStore, origin: StoredHold, now: Clock, *, replacement: StoredHold | None = None
) -> AnswerBody:
    """Answer, or carry on, the drift flow stored on ``origin``: its first 200 body once
    recovered, its ``PolicyChanged`` once ended; while open, confirm its replacement (or end it
    ``drift_repeated``), or end it ``interrupted`` when the replacement is no longer a live hold.
    ``WriteConflict`` when the flow moved meanwhile: the caller reads again."""
    flow = _flow_of(origin)
    if flow.state is FlowState.RECOVERED:
        answer = store.confirmed_answer(flow.booking_id)
        if answer is None:  # written with the flow's end: only a read racing that write misses it
            raise WriteConflict()
        return answer.body
    if flow.state is FlowState.UNRECOVERED:
        raise PolicyChanged(flow.attempts, flow.reason or DriftReason.INTERRUPTED)
    if replacement is None and flow.replacement_id is not None:
        replacement = store.hold(flow.replacement_id)
    moment = now()
    if replacement is None or replacement.hold.effective_status(moment) is not HoldStatus.HELD:
        raise _end(store, origin, replacement, DriftReason.INTERRUPTED, now)
    event = _event(origin.hold, *_policy_of(replacement.hold), flow.ended(FlowState.RECOVERED), moment)
    try:
        body = confirm_hold(
            store,
            _quoted(replacement.hold),
            replacement.owns_until,
            flow.booking_id,
            moment,
            answered_hold_id=origin.hold.hold_id,
            idempotency_key=flow.idempotency_key,
            recovery=Recovery(origin.hold, flow.attempts),
            event=event,
            origin=origin,
        )
    except WriteConflict as conflict:
        if conflict.policy_moved and not conflict.refused & {"hold", "original"}:
            raise _end(store, origin, replacement, DriftReason.DRIFT_REPEATED, now) from None
        raise
    _report(event, origin.hold)
    return body


def finish_interrupted_flows(store: ReservationStore, now: Clock) -> dict[str, int]:
    """End every open flow whose replacement expired and that nobody carried on (the sweep).

    ``{"due", "finished"}``: the flows the index named, and those this run ended (the others
    ended meanwhile, or are not due after all). A flow whose records kept changing is left to
    the next run; a failing store fails the run.
    """
    due = store.due_flows(now())
    finished = 0
    for original_id in due:
        try:
            finished += _finish(store, original_id, now)
        except Busy:
            logger.warning("drift flow kept changing; left to the next sweep", extra={"hold_id": original_id})
    # A line per run only when there was something to do: the schedule runs every minute.
    log = logger.info if due else logger.debug
    log("interrupted drift flows swept", extra={"due": len(due), "finished": finished})
    return {"due": len(due), "finished": finished}


def _finish(store: ReservationStore, original_id: str, now: Clock) -> int:
    """1 when this call ended the flow as ``interrupted``, 0 when it was not due or had ended."""
    for _ in range(MAX_ROUNDS):
        origin = store.hold(original_id)
        if origin is None or origin.flow is None or origin.flow.state is not FlowState.OPEN:
            return 0
        replacement_id = origin.flow.replacement_id
        replacement = None if replacement_id is None else store.hold(replacement_id)
        if replacement is not None and replacement.hold.effective_status(now()) is HoldStatus.HELD:
            return 0  # still live: its own request may yet confirm it
        try:
            _end(store, origin, replacement, DriftReason.INTERRUPTED, now)
        except WriteConflict:
            continue  # the flow moved: read it again
        return 1
    raise Busy("the drift flow kept changing while it was being finished")


def _end(
    store: ReservationStore,
    origin: StoredHold,
    replacement: StoredHold | None,
    reason: DriftReason,
    now: Clock,
) -> PolicyChanged:
    """End ``origin``'s open flow unrecovered: the replacement released (its tables freed while
    it still owns them), the booking id freed, the one event written. The error to answer with;
    ``WriteConflict`` when the flow ended meanwhile (its own end is then the answer)."""
    flow = _flow_of(origin)
    ended = flow.ended(FlowState.UNRECOVERED, reason)
    for _ in range(MAX_ROUNDS):
        moment = now()
        venue = current_venue(store, origin.hold.venue_id)
        held = replacement if replacement is not None and replacement.hold.status is HoldStatus.HELD else None
        writes: list[SlotWrite] = []
        if held is not None and held.hold.effective_status(moment) is HoldStatus.HELD:
            hold = held.hold
            records = store.slot_records(hold.venue_id, Interval(hold.starts_at, held.owns_until))
            writes = release(records, hold.hold_id, moment)
        event = _event(origin.hold, venue.policy_hash, venue.policy_version, ended, moment)
        try:
            store.end_flow(
                origin.hold.hold_id, ended, None if held is None else held.hold, writes, moment, event
            )
        except WriteConflict as conflict:
            if "original" in conflict.refused:
                raise
            if "replacement" in conflict.refused and flow.replacement_id is not None:
                replacement = store.hold(flow.replacement_id)  # confirmed or released meanwhile
            continue  # or a record moved: read again
        _report(event, origin.hold)
        return PolicyChanged(flow.attempts, reason)
    raise Busy("the replacement's tables kept changing while the drift flow was ended")


def _policy_of(replacement: Hold) -> tuple[str, int]:
    """The policy a replacement was quoted under (``new_hold`` always records both)."""
    if replacement.policy_hash is None or replacement.policy_version is None:
        raise ValueError("a replacement records the policy it was quoted under")
    return replacement.policy_hash, replacement.policy_version


def _quoted(replacement: Hold) -> QuotedHold:
    """A replacement as quoted (``new_hold`` always makes it complete)."""
    quoted = complete(replacement)
    if isinstance(quoted, list):
        raise ValueError(f"a replacement lacks {', '.join(quoted)}")
    return quoted


def _flow_of(origin: StoredHold) -> DriftFlow:
    if origin.flow is None:
        raise ValueError("the hold carries no drift flow")
    return origin.flow


def _requote(
    store: ReservationStore,
    original: StoredHold,
    quoted: QuotedHold,
    venue: Venue,
    now: datetime,
    new_id: Callable[[], str],
) -> tuple[QuotedHold, Interval, list[SlotWrite]] | _Unavailable:
    """The replacement hold under the current policy, and the ownership writes that move it."""
    hold = original.hold
    policy = venue.config.policy
    interval = ownership_interval(quoted.starts_at, quoted.ends_at, policy.buffer_minutes)
    # The original's own records too, so the replacement frees what it does not take.
    records = store.slot_records(
        hold.venue_id, Interval(hold.starts_at, max(original.owns_until, interval.end))
    )
    busy = busy_tables(records.values(), interval, now, ignoring=hold.hold_id)
    chosen = allocate(venue.config, quoted.party_size, quoted.zone, busy)
    if isinstance(chosen, NoAvailability):
        return _Unavailable(records)
    replacement = new_hold(
        new_id(),
        (quoted.starts_at, quoted.ends_at),
        chosen,
        venue_id=hold.venue_id,
        party_size=quoted.party_size,
        zone=quoted.zone,
        policy=policy,
        policy_hash=venue.policy_hash,
        policy_version=venue.policy_version,
        now=now,
    )
    writes = claim(
        records,
        replacement.hold.table_ids,
        interval,
        replacement.hold.hold_id,
        replacement.hold.expires_at,
        now,
        releasing=hold.hold_id,
    )
    return replacement, interval, writes


def _event(
    original: Hold, policy_hash: str, policy_version: int, flow: DriftFlow, now: datetime
) -> PolicyDriftData:
    """The event body (docs/reference/notifications.md#event-body) of ``flow``'s ending: ids and hashes only.
    ``policy_hash`` and ``policy_version``: the replacement's when recovered, else the venue's as
    the flow ends."""
    recovered = flow.state is FlowState.RECOVERED
    return PolicyDriftData(
        type="policy_drift.recovered" if recovered else "policy_drift.unrecovered",
        event_id=uuid.uuid4(),
        occurred_at=now,
        venue_id=original.venue_id,
        original_hold_id=original.hold_id,
        hold_id=flow.replacement_id,
        original_policy_hash=str(original.policy_hash),
        policy_hash=policy_hash,
        policy_version=policy_version,
        attempts=flow.attempts,
        reason=None if recovered else flow.reason,
    )


def _report(event: PolicyDriftData, original: Hold) -> None:
    """The metric and the log line of an event just committed: what
    docs/queries/policy-drift-events.logsinsights reads."""
    if event.reason is None:
        count(Metric.POLICY_DRIFT_RECOVERED)
        logger.info("policy drift recovered", extra=_drift_fields(event, original))
    else:
        count_with_dimension(Metric.POLICY_DRIFT_UNRECOVERED, Dimension.REASON, event.reason)
        logger.warning("policy drift not recovered", extra=_drift_fields(event, original))


def _drift_fields(event: PolicyDriftData, original: Hold) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "event_type": event.type,
        "venue_id": event.venue_id,
        "original_hold_id": event.original_hold_id,
        "hold_id": event.hold_id,
        "original_policy_hash": event.original_policy_hash,
        "original_policy_version": original.policy_version,
        "policy_hash": event.policy_hash,
        "policy_version": event.policy_version,
        "attempts": event.attempts,
        "reason": event.reason,
    }


def _log_drift_met(quoted: QuotedHold, venue: Venue) -> None:
    hold = quoted.hold
    logger.warning(
        "seating policy drift met at confirmation",
        extra={
            "venue_id": hold.venue_id,
            "original_hold_id": hold.hold_id,
            "original_policy_hash": quoted.policy_hash,
            "original_policy_version": hold.policy_version,
            "policy_hash": venue.policy_hash,
            "policy_version": venue.policy_version,
        },
    )
