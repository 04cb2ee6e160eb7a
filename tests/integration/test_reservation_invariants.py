"""Reservations keep their promises under any sequence of requests (docs/reference/http-api.md#holds,
docs/reference/notifications.md#drift-events).

A hypothesis state machine drives the reservation logic directly on a ``ReservationsTable`` over
moto (in-process, made atomic like DynamoDB), one fresh table per example built from the
synthesized template: venue PUTs that change the buffer, party limit, combinations, bookable
zones, tables, TTL or nothing at all; holds for random parties, zones and times in a window of a
few slots around midnight (so collisions are frequent and ownership spans two days); confirms of
known holds with random booking ids, repeats and ``Idempotency-Key``s, some meeting a policy change
injected mid-request (before the first write, or right after the replacement is made, so drift
can happen twice); releases, booking cancels, and a fake clock moved forward so holds expire.

The machine keeps a small model (venue versions, what each hold and booking should be, which
confirms met drift) and predicts every answer from it. After every step the table is scanned and
judged on its own terms:

- no table is double-booked: live owners (held holds not past ``expires_at``, bookings not
  cancelled) never overlap on a table over ``[starts_at, ends_at + buffer)``; the ownership
  records name exactly the live owners, with their intervals, and no ended owner still counts;
- a confirm makes at most 2 confirmation attempts (counted at the store and read from the
  answers), and a hold is replaced at most once, never a replacement again;
- every confirm that met drift wrote exactly one outbox event, and no other confirm wrote one;
- every hold, and so every confirmed booking, seats its party under the policy version recorded on
  it, and a booking's policy was the venue's current one when it committed (by hash: a venue
  changed back to an earlier policy has a later version of the same hash, and that is no drift).

Every answer is predicted too: repeats answer the first body, refusals come in the contract's
order, a hold takes exactly the tables the allocator picks among those the table shows free, and
a re-quote after drift likewise (so contention never yields a false ``NO_AVAILABILITY``).

The random runs meet each drift outcome only now and then, so the replays at the end walk every
one through the same rules and checks, with two sequences the machine found (both since fixed).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from booking_durability.adapters.dynamodb import DynamoTable, Operation
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.errors import DomainError
from booking_durability.reservations import catalog
from booking_durability.reservations.allocator import NoAvailability, allocate
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from booking_durability.reservations.holding import cancel_booking, hold_tables, release_hold
from booking_durability.reservations.holds import Hold, HoldRequest, QuotedHold
from booking_durability.reservations.intervals import ownership_interval
from booking_durability.reservations.ports import AnswerBody
from booking_durability.reservations.refusals import (
    BookingIdTaken,
    BookingNotFound,
    HoldExpired,
    HoldNotActive,
    IdempotencyKeyReused,
    NoAvailabilityError,
    PolicyChanged,
    PreconditionFailed,
)
from booking_durability.reservations.venues import VenueConfig, policy_hash
from devstack.local_resources import TABLE, create_resources, resources_of_type
from tests.builders import T0
from tests.integration.conftest import REGION
from tests.integration.reservation_model import (
    POOL,
    VENUE_ID,
    ZONES,
    Edit,
    TableView,
    VenueDraft,
    assert_no_table_is_double_booked,
    assert_records_name_exactly_the_live_owners,
    seats_under,
)

# Around midnight two days after T0: ownership records on two days, and far enough ahead that the
# clock (at most 30 steps of 15 minutes) never reaches a start.
STARTS = [
    datetime.fromisoformat(moment)
    for moment in (
        "2026-12-02T23:00:00+00:00",
        "2026-12-02T23:15:00+00:00",
        "2026-12-02T23:45:00+00:00",
        "2026-12-03T00:15:00+00:00",
        "2026-12-03T00:30:00+00:00",
    )
]
# Few enough that booking ids and keys are reused, and so refused, now and then.
BOOKING_IDS = st.sampled_from([f"bk_{n}" for n in range(1, 9)])
KEYS = st.none() | st.sampled_from(["key-1", "key-2", "key-3"])
# Mostly parties the venue can seat, sometimes ones above any max_party_size or table.
PARTY_SIZES = st.one_of(st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=12))

EDITS: st.SearchStrategy[Edit] = st.one_of(
    st.just(("unchanged", None)),
    st.tuples(st.just("buffer_minutes"), st.sampled_from([0, 10, 15, 30])),
    st.tuples(st.just("max_party_size"), st.sampled_from([2, 4, 6, 10])),
    st.tuples(st.just("allow_combinations"), st.booleans()),
    st.tuples(
        st.just("bookable_zones"),
        st.sampled_from([("main", "terraza"), ("main",), ("bar", "main", "terraza"), ("terraza",), ()]),
    ),
    st.tuples(st.just("hold_ttl_seconds"), st.sampled_from([60, 300, 900])),
    st.tuples(st.just("default_duration_minutes"), st.sampled_from([60, 90])),
    st.tuples(st.just("slot_minutes"), st.sampled_from([5, 15])),
    st.tuples(
        st.just("tables"), st.sets(st.sampled_from(sorted(POOL)), min_size=1).map(lambda t: tuple(sorted(t)))
    ),
    st.tuples(st.just("capacity"), st.tuples(st.sampled_from(sorted(POOL)), st.sampled_from([2, 3, 4, 6]))),
)

# Another PUT landing during a confirm (``DriftingReservations`` lets it): mostly one that surely
# changes the policy, since any other edit may happen to change nothing.
MID_REQUEST_CHANGE: st.SearchStrategy[Edit] = st.one_of(st.just(("buffer_plus", 5)), EDITS)

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- the store, instrumented ------------------------------------------------------------------


class CountingTable(DynamoTable):
    """The table, counting its writes so a scan is only repeated when something may have changed."""

    writes = 0

    def transact(self, operations: Sequence[Operation]) -> None:
        self.writes += 1
        super().transact(operations)


@dataclass
class Trace:
    """What one confirmation did at the store."""

    confirms: int = 0  # confirmation attempts (writes that would confirm a hold)
    replacements: int = 0
    replaced: Hold | None = None  # the replacement hold, once stored
    changed: list[str] = field(default_factory=list)  # when the venue's policy changed mid-request


class DriftingReservations(ReservationsTable):
    """The reservations table, where a confirmation can meet policy changes mid-request, as if
    other PUTs landed: just before its first confirming write, and/or right after it stored a
    replacement (which then meets drift too). Counts the attempts either way."""

    def __init__(self, table: DynamoTable) -> None:
        super().__init__(table)
        self.plan: dict[str, Callable[[], bool]] = {}
        self.trace = Trace()

    def arm(self, plan: dict[str, Callable[[], bool]]) -> None:
        """``plan``: the change to make at ``before_write`` and/or ``after_replace``, once each;
        a change answers whether it wrote a new policy version."""
        self.plan = dict(plan)
        self.trace = Trace()

    def disarm(self) -> Trace:
        self.plan = {}
        return self.trace

    def confirm(self, *args: Any, **kwargs: Any) -> None:
        self.trace.confirms += 1
        self._change("before_write")
        super().confirm(*args, **kwargs)

    def replace_hold(self, original: Any, replacement: QuotedHold, *args: Any, **kwargs: Any) -> None:
        self.trace.replacements += 1
        super().replace_hold(original, replacement, *args, **kwargs)
        self.trace.replaced = replacement.hold
        self._change("after_replace")

    def _change(self, phase: str) -> None:
        change = self.plan.pop(phase, None)
        if change is not None and change():
            self.trace.changed.append(phase)


# -- what the machine expects ---------------------------------------------------------------------


@dataclass
class KnownHold:
    hold_id: str
    policy_hash: str
    expires_at: datetime
    status: str = "held"  # as stored: held | confirmed | released | superseded
    booking_id: str | None = None  # the booking a repeat naming this hold answers with
    flow_booking: str | None = None  # the booking whose drift flow superseded it
    ended_as: tuple[int, str] | None = None  # that flow's POLICY_CHANGED (attempts, reason)
    origin: str | None = None  # on a replacement: the hold whose flow made it

    def effective(self, now: datetime) -> str:
        return "expired" if self.status == "held" and now >= self.expires_at else self.status


@dataclass
class KnownBooking:
    hold_id: str  # the hold finally confirmed
    body: AnswerBody
    committed_hash: str  # the venue's current policy when the booking committed
    cancelled: bool = False


@dataclass(frozen=True)
class KnownKey:
    hold_id: str  # the hold the request named
    booking_id: str
    body: AnswerBody | None  # None: bound to a drift flow that did not recover


@dataclass(frozen=True)
class Notice:
    """The drift event a confirm must have written (docs/reference/notifications.md#drift-events)."""

    original_hold_id: str
    type: str
    attempts: int
    reason: str | None
    hold_id: str | None
    policy_version: int


def changed_holds(before: TableView, after: TableView) -> list[str]:
    return [
        f"{hold_id} {before.holds[hold_id].status if hold_id in before.holds else 'new'} -> {row.status}"
        for hold_id, row in after.holds.items()
        if before.holds.get(hold_id) != row
    ]


def notice_of(event: dict[str, Any]) -> Notice:
    return Notice(
        event["original_hold_id"],
        event["type"],
        event["attempts"],
        event.get("reason"),
        event.get("hold_id"),
        event["policy_version"],
    )


# -- the machine ------------------------------------------------------------------------------------


class ReservationMachine(RuleBasedStateMachine):
    holds = Bundle("holds")  # every hold, replacements too: for repeats and refusals
    unconfirmed = Bundle("unconfirmed")  # quoted holds not yet confirmed or released: each once

    # Set by the ``machine`` fixture: a client of moto, and the table's resource in the template.
    dynamodb: Any
    table_resource: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        # A fresh table per example, from the synthesized template's own properties
        created = create_resources(
            {"Resources": self.table_resource},
            sqs=None,
            dynamodb=self.dynamodb,
            region=REGION,
            stack_name="invariants",
        )
        (table,) = created.tables.values()
        self.table_name = table.name
        self.counting = CountingTable(table.name, self.dynamodb)
        self.store = DriftingReservations(self.counting)
        self.clock = T0
        self.draft = VenueDraft()
        self.versions: list[tuple[str, VenueConfig]] = []  # (hash, config) of version n at n - 1
        self.known: dict[str, KnownHold] = {}
        self.quoted: set[str] = set()  # holds made by hold_tables (the rest are replacements)
        self.bookings: dict[str, KnownBooking] = {}
        self.keys: dict[str, KnownKey] = {}
        self.notices: list[Notice] = []
        self.serial = itertools.count(1)
        self._view: tuple[int, TableView] | None = None

    def teardown(self) -> None:
        self.dynamodb.delete_table(TableName=self.table_name)

    # -- helpers --------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock

    def view(self) -> TableView:
        """The whole table, scanned again only after a write (what is live is decided by time)."""
        if self._view is None or self._view[0] != self.counting.writes:
            self._view = (self.counting.writes, TableView.scan(self.dynamodb, self.table_name))
        return self._view[1]

    @property
    def current(self) -> tuple[int, str, VenueConfig]:
        version = len(self.versions)
        return version, *self.versions[-1]

    def put_venue(self, draft: VenueDraft, if_match: str | None = None) -> bool:
        """PUT the draft as the venue's policy; whether it wrote a new version."""
        config = draft.config()
        wanted = policy_hash(config)
        # If-Match takes the hash bare or quoted
        expected_refusal = if_match is not None and if_match.strip('"') != self.current[1]
        try:
            saved = catalog.save_venue(self.store, VENUE_ID, config, if_match, self.clock)
        except PreconditionFailed:
            assert expected_refusal, "If-Match named the current policy yet was refused"
            return False
        assert not expected_refusal, "If-Match named a policy the venue no longer has, yet the PUT landed"
        self.draft = draft
        if self.versions and self.current[1] == wanted:
            assert saved.policy_version == self.current[0], "an unchanged policy wrote a new version"
            return False
        assert (saved.policy_version, saved.policy_hash) == (len(self.versions) + 1, wanted)
        self.versions.append((wanted, config))
        return True

    # -- rules ----------------------------------------------------------------------------------

    @initialize(edits=st.lists(EDITS, max_size=2))
    def open_venue(self, edits: list[Edit]) -> None:
        draft = VenueDraft()
        for edit in edits:
            draft = draft.edited(edit)
        assert self.put_venue(draft)

    @rule(edit=EDITS, if_match=st.sampled_from([None, None, "current", "first"]))
    def change_venue(self, edit: Edit, if_match: str | None) -> None:
        tag = {None: None, "current": f'"{self.current[1]}"', "first": self.versions[0][0]}[if_match]
        self.put_venue(self.draft.edited(edit), tag)

    @rule(
        targets=(holds, unconfirmed),
        party_size=PARTY_SIZES,
        zone=st.sampled_from([None, None, None, *ZONES]),
        starts_at=st.sampled_from(STARTS),
        duration=st.sampled_from([None, 30, 60, 90]),
    )
    def hold(self, party_size: int, zone: str | None, starts_at: datetime, duration: int | None) -> Any:
        version, hash_, config = self.current
        policy = config.policy
        ends_at = starts_at + timedelta(minutes=duration or policy.default_duration_minutes)
        interval = ownership_interval(starts_at, ends_at, policy.buffer_minutes)
        expected = allocate(config, party_size, zone, self.view().busy(self.clock, interval))
        request = HoldRequest(
            venue_id=VENUE_ID,
            party_size=party_size,
            starts_at=starts_at,
            duration_minutes=duration,
            zone=zone,
        )
        outcome: Hold | NoAvailabilityError
        try:
            outcome = hold_tables(self.store, request, self.now, new_id=lambda: f"hld_{next(self.serial)}")
        except NoAvailabilityError as refused:
            outcome = refused
        if isinstance(outcome, NoAvailabilityError):
            assert isinstance(expected, NoAvailability), (
                f"NO_AVAILABILITY while {expected.table_ids} were free"
            )
            assert outcome.reason == expected.reason.value
            return multiple()
        hold = outcome
        assert not isinstance(expected, NoAvailability), f"held {hold.table_ids} though none was free"
        assert hold.table_ids == expected.table_ids, "the hold took other tables than the free ones that fit"
        assert (hold.policy_version, hold.policy_hash) == (version, hash_)
        assert hold.expires_at == self.clock + timedelta(seconds=policy.hold_ttl_seconds)
        self.known[hold.hold_id] = KnownHold(hold.hold_id, hash_, hold.expires_at)
        self.quoted.add(hold.hold_id)
        return hold.hold_id

    @rule(target=holds, hold_id=consumes(unconfirmed), booking_id=BOOKING_IDS, key=KEYS)
    def confirm(self, hold_id: str, booking_id: str, key: str | None) -> Any:
        """The first confirmation of a hold (the policy may have changed since it was quoted)."""
        return self.confirm_as(hold_id, booking_id, key)

    @rule(
        target=holds,
        hold_id=consumes(unconfirmed),
        booking_id=BOOKING_IDS,
        key=KEYS,
        change=MID_REQUEST_CHANGE,
    )
    def confirm_while_the_policy_changes(
        self, hold_id: str, booking_id: str, key: str | None, change: Edit
    ) -> Any:
        """Another PUT lands between the confirm's read and its first write."""
        return self.confirm_as(hold_id, booking_id, key, {"before_write": change})

    @rule(
        target=holds,
        hold_id=consumes(unconfirmed),
        booking_id=BOOKING_IDS,
        key=KEYS,
        change=MID_REQUEST_CHANGE,
        again=MID_REQUEST_CHANGE,
    )
    def confirm_while_the_policy_changes_twice(
        self, hold_id: str, booking_id: str, key: str | None, change: Edit, again: Edit
    ) -> Any:
        """Another PUT lands before the first write, and one more right after the replacement is
        stored: the replacement meets drift too."""
        return self.confirm_as(hold_id, booking_id, key, {"before_write": change, "after_replace": again})

    @rule(target=holds, hold_id=holds, booking_id=BOOKING_IDS, key=KEYS)
    def confirm_again(self, hold_id: str, booking_id: str, key: str | None) -> Any:
        """Any hold, however it ended: a repeat, another booking id, a reused key, a refusal."""
        return self.confirm_as(hold_id, booking_id, key)

    def confirm_as(
        self, hold_id: str, booking_id: str, key: str | None = None, changes: dict[str, Edit] | None = None
    ) -> Any:
        """Confirm ``hold_id`` as ``booking_id``, predicting the answer from the model; the new
        hold, when a replacement was made, so later steps can confirm or release it too."""
        known = self.known[hold_id]
        expected = self.expect_confirm(known, booking_id, key)
        before = self.view()
        drift_met = known.policy_hash != self.policy_at_first_write(changes or {})
        self.store.arm({phase: self.change_by(edit) for phase, edit in (changes or {}).items()})
        outcome: AnswerBody | DomainError
        try:
            outcome = confirm_with_policy_retry(
                self.store,
                ConfirmRequest(hold_id, booking_id, key),
                self.now,
                new_id=lambda: f"hld_r{next(self.serial)}",
            )
        except DomainError as refused:
            outcome = refused
        finally:
            trace = self.store.disarm()
        after = self.view()
        events = [body for event_id, body in after.events.items() if event_id not in before.events]

        # At most 2 confirmation attempts, and one replacement, per request
        assert trace.confirms <= 2, f"{trace.confirms} confirmation attempts"
        assert trace.replacements <= 1, f"{trace.replacements} replacements"
        if isinstance(outcome, PolicyChanged):
            assert (outcome.attempts, outcome.reason) in ((1, "no_availability"), (2, "drift_repeated"))
        elif isinstance(outcome, AnswerBody) and outcome["policy_drift"] is not None:
            assert outcome["policy_drift"]["attempts"] == 2

        if not isinstance(expected, Fresh):
            # A repeat answers the first body, a refusal its error; neither changes or notifies anything
            if isinstance(expected, AnswerBody):
                assert isinstance(outcome, AnswerBody), f"a repeat answered {outcome!r}"
                assert outcome.text == expected.text, "a repeat did not answer the first 200 body's bytes"
            elif isinstance(expected, tuple):
                assert isinstance(outcome, PolicyChanged), f"a repeat of its flow answered {outcome!r}"
                assert (outcome.attempts, outcome.reason) == expected, "a repeat changed the flow's end"
            else:
                assert type(outcome) is expected, f"expected {expected.__name__}, answered {outcome!r}"
            assert events == [], "a confirm that met no drift notified the admin"
            assert (after.holds, after.bookings) == (before.holds, before.bookings)
            return multiple()

        if booking_id in self.bookings:
            # Another hold's booking has this id: refused, drift or not, and nothing changes (the
            # contract has no drift outcome for it, so it must be met before drift is handled)
            assert isinstance(outcome, BookingIdTaken), f"booking id of another hold: {outcome!r}"
            assert events == [], "BOOKING_ID_TAKEN notified a drift"
            assert (after.holds, after.bookings) == (before.holds, before.bookings), (
                "BOOKING_ID_TAKEN, yet holds changed: " + ", ".join(changed_holds(before, after))
            )
            return multiple()
        if not drift_met:
            assert events == [], "a confirm that met no drift notified the admin"
            assert isinstance(outcome, AnswerBody), f"a live hold under the current policy: {outcome!r}"
            assert outcome["policy_drift"] is None
            assert (outcome["hold_id"], outcome["booking_id"]) == (hold_id, booking_id)
            assert tuple(outcome["table_ids"]) == before.holds[hold_id].table_ids
            self.commit(known, known, booking_id, key, outcome)
            return multiple()

        # The request met drift: exactly one event, whatever the outcome
        assert len(events) == 1, (
            f"a confirm that met drift wrote {len(events)} outbox events; it answered {outcome!r}"
        )
        self.check_requote(before, hold_id, trace.replaced)
        version, hash_, _ = self.current
        replaced = trace.replaced
        known.status = "superseded"
        known.flow_booking = booking_id
        if not isinstance(outcome, AnswerBody) and key is not None:
            self.keys[key] = KnownKey(hold_id, booking_id, None)  # bound to the flow's end
        if replaced is None:
            assert isinstance(outcome, PolicyChanged), f"no replacement, yet answered {outcome!r}"
            assert outcome.reason == "no_availability"
            known.ended_as = (1, "no_availability")
            notice = Notice(hold_id, "policy_drift.unrecovered", 1, "no_availability", None, version)
        elif "after_replace" in trace.changed:
            assert isinstance(outcome, PolicyChanged), f"drift twice, yet answered {outcome!r}"
            assert outcome.reason == "drift_repeated"
            known.ended_as = (2, "drift_repeated")
            self.known[replaced.hold_id] = KnownHold(
                replaced.hold_id, str(replaced.policy_hash), replaced.expires_at, "released", origin=hold_id
            )
            notice = Notice(
                hold_id, "policy_drift.unrecovered", 2, "drift_repeated", replaced.hold_id, version
            )
        else:
            assert isinstance(outcome, AnswerBody), (
                f"drift recovered on a replacement, yet answered {outcome!r}"
            )
            assert outcome["hold_id"] == replaced.hold_id
            assert outcome["policy_drift"] == {
                "recovered": True,
                "attempts": 2,
                "original_hold_id": hold_id,
                "original_policy_hash": known.policy_hash,
            }
            replacement = KnownHold(
                replaced.hold_id, str(replaced.policy_hash), replaced.expires_at, origin=hold_id
            )
            self.known[replaced.hold_id] = replacement
            self.commit(known, replacement, booking_id, key, outcome)
            notice = Notice(hold_id, "policy_drift.recovered", 2, None, replaced.hold_id, version)
        (written,) = events
        assert notice_of(written) == notice
        assert (written["original_policy_hash"], written["policy_hash"]) == (known.policy_hash, hash_)
        self.notices.append(notice)
        return multiple() if replaced is None else multiple(replaced.hold_id)

    def policy_at_first_write(self, changes: dict[str, Edit]) -> str:
        """The venue's policy hash when a fresh confirm first writes: after any change planned
        ``before_write``. Drift is a difference of hashes (docs/reference/http-api.md#policy-drift), so a
        venue changed back to the hold's own policy meanwhile is no drift."""
        edit = changes.get("before_write")
        return self.current[1] if edit is None else policy_hash(self.draft.edited(edit).config())

    def change_by(self, edit: Edit) -> Callable[[], bool]:
        return lambda: self.put_venue(self.draft.edited(edit))

    def expect_confirm(self, known: KnownHold, booking_id: str, key: str | None) -> Any:
        """docs/reference/http-api.md#order-of-checks: a repeat's first body, the (attempts,
        reason) its drift flow ended with, the error class, or Fresh."""
        origin = self.known[known.origin] if known.origin is not None else known
        if origin.flow_booking == booking_id:
            # A repeat of the flow this booking began, naming its original or its replacement
            if origin.ended_as is not None:
                return origin.ended_as
            return self.bookings[booking_id].body
        if known.booking_id == booking_id:
            return self.bookings[booking_id].body
        if key is not None and key in self.keys:
            named = self.keys[key]
            if (named.hold_id, named.booking_id) == (known.hold_id, booking_id) and named.body is not None:
                return named.body
            return IdempotencyKeyReused
        status = known.effective(self.clock)
        if status == "expired":
            return HoldExpired
        if status != "held":
            return HoldNotActive
        return Fresh()

    def commit(
        self, named: KnownHold, confirmed: KnownHold, booking_id: str, key: str | None, body: AnswerBody
    ) -> None:
        """A confirmation committed: the hold confirmed (its original, if any, answering repeats)."""
        assert body["policy_hash"] == self.current[1]
        named.booking_id = confirmed.booking_id = booking_id
        confirmed.status = "confirmed"
        self.bookings[booking_id] = KnownBooking(confirmed.hold_id, body, self.current[1])
        if key is not None:
            self.keys[key] = KnownKey(named.hold_id, booking_id, body)

    def check_requote(self, before: TableView, hold_id: str, replacement: Hold | None) -> None:
        """The re-quote saw every table no one else held: it took what the allocator picks among
        them under the policy it was quoted with, or found none."""
        original = before.holds[hold_id]
        version = replacement.policy_version if replacement is not None else self.current[0]
        assert version is not None
        config = self.versions[version - 1][1]
        interval = ownership_interval(original.starts_at, original.ends_at, config.policy.buffer_minutes)
        busy = before.busy(self.clock, interval, ignoring=hold_id)
        quote = allocate(config, original.party_size, original.zone, busy)
        if replacement is None:
            assert isinstance(quote, NoAvailability), f"no availability while {quote} was free"
        else:
            assert not isinstance(quote, NoAvailability), f"re-quoted {replacement.table_ids} on busy tables"
            assert replacement.table_ids == quote.table_ids

    @rule(hold_id=consumes(unconfirmed))
    def release(self, hold_id: str) -> None:
        known = self.known[hold_id]
        live = known.effective(self.clock) == "held"
        try:
            released = release_hold(self.store, hold_id, self.now)
        except HoldNotActive:
            assert not live, "a live held hold could not be released"
            return
        assert live, f"released a hold that was {known.effective(self.clock)}"
        assert released.status == "released"
        known.status = "released"

    @precondition(lambda self: self.bookings)
    @rule(booking_id=BOOKING_IDS)
    def cancel(self, booking_id: str) -> None:
        """Cancel a booking (again, maybe: it answers the same), or one never confirmed."""
        known = self.bookings.get(booking_id)
        try:
            booking = cancel_booking(self.store, booking_id, self.now)
        except BookingNotFound:
            assert known is None, "a booking that was confirmed is not found"
            return
        assert known is not None, "cancelled a booking that was never confirmed"
        assert (booking.status, booking.hold_id) == ("cancelled", known.hold_id)
        known.cancelled = True

    @rule(seconds=st.sampled_from([1, 59, 60, 61, 240, 300, 600, 900]))
    def tick(self, seconds: int) -> None:
        self.clock += timedelta(seconds=seconds)

    # -- invariants, read from the table --------------------------------------------------------

    @invariant()
    def the_table_keeps_every_promise(self) -> None:
        """One scan after every step, judged by each check below (the failing one names itself)."""
        view = self.view()
        self.the_table_holds_only_reservation_items(view)
        self.venue_versions_are_the_puts_that_changed_the_policy(view)
        self.holds_bookings_and_keys_are_as_answered(view)
        self.no_table_is_double_booked(view)
        self.ownership_records_name_exactly_the_live_owners(view)
        self.a_hold_is_replaced_at_most_once(view)
        self.every_drift_was_notified_exactly_once(view)
        self.every_hold_seats_its_party_under_its_own_policy_version(view)
        self.every_booking_committed_under_the_current_policy(view)

    def the_table_holds_only_reservation_items(self, view: TableView) -> None:
        assert view.unknown == []

    def venue_versions_are_the_puts_that_changed_the_policy(self, view: TableView) -> None:
        stored = {version: row.policy_hash for version, row in view.versions.items()}
        assert stored == {n: hash_ for n, (hash_, _) in enumerate(self.versions, start=1)}
        assert view.current is not None
        assert (view.current.version, view.current.policy_hash) == self.current[:2]

    def holds_bookings_and_keys_are_as_answered(self, view: TableView) -> None:
        assert set(view.holds) == set(self.known)
        for hold_id, known in self.known.items():
            row = view.holds[hold_id]
            assert (row.status, row.policy_hash) == (known.status, known.policy_hash), hold_id
        assert {b: (r.hold_id, r.status) for b, r in view.bookings.items()} == {
            b: (k.hold_id, "cancelled" if k.cancelled else "confirmed") for b, k in self.bookings.items()
        }
        assert {key: (item["answered_hold_id"], item["booking_id"]) for key, item in view.keys.items()} == {
            key: (k.hold_id, k.booking_id) for key, k in self.keys.items()
        }

    def no_table_is_double_booked(self, view: TableView) -> None:
        assert_no_table_is_double_booked(view, self.clock)

    def ownership_records_name_exactly_the_live_owners(self, view: TableView) -> None:
        assert_records_name_exactly_the_live_owners(view, self.clock)

    def a_hold_is_replaced_at_most_once(self, view: TableView) -> None:
        replacements = [row.superseded_by for row in view.holds.values() if row.superseded_by]
        assert len(replacements) == len(set(replacements)), "one replacement for two originals"
        for row in view.holds.values():
            if row.superseded_by is not None:
                assert row.status == "superseded"
                assert row.hold_id in self.quoted, f"{row.hold_id}, a replacement, was replaced again"
                assert row.superseded_by in view.holds
            if row.hold_id not in self.quoted:
                assert row.hold_id in replacements, f"{row.hold_id} appeared without being quoted"

    def every_drift_was_notified_exactly_once(self, view: TableView) -> None:
        stored = Counter(notice_of(body) for body in view.events.values())
        assert stored == Counter(self.notices)

    def every_hold_seats_its_party_under_its_own_policy_version(self, view: TableView) -> None:
        for row in view.holds.values():
            version = view.versions[row.policy_version]
            assert version.policy_hash == row.policy_hash
            problems = seats_under(version.config, row.party_size, row.zone, row.table_ids)
            assert problems == [], f"{row.hold_id} under version {row.policy_version}: {problems}"
            buffer = timedelta(minutes=version.config.policy.buffer_minutes)
            assert row.owns_until == row.ends_at + buffer, f"{row.hold_id} owns past its quoted buffer"

    def every_booking_committed_under_the_current_policy(self, view: TableView) -> None:
        for booking_id, booking in view.bookings.items():
            hold = view.holds[booking.hold_id]
            assert (hold.status, hold.booking_id) == ("confirmed", booking_id)
            assert (booking.table_ids, booking.starts_at, booking.ends_at, booking.owns_until) == (
                hold.table_ids,
                hold.starts_at,
                hold.ends_at,
                hold.owns_until,
            )
            # The version recorded is the policy's: a venue changed back to it has a later version
            # of the same hash, which is the same policy (its tables were checked above).
            assert hold.policy_hash == self.bookings[booking_id].committed_hash, (
                f"{booking_id} committed under version {hold.policy_version}, not the venue's policy then"
            )


@dataclass(frozen=True)
class Fresh:
    """A confirm that passes points 0-2: it goes on to the policy check and the write."""


@pytest.fixture
def machine(aws: None, local_template: dict[str, Any]) -> type[ReservationMachine]:
    """The machine on moto, each example on a fresh copy of the template's reservations table."""
    logical_id = local_template["Outputs"]["ReservationsTableName"]["Value"]["Ref"]

    class OnMoto(ReservationMachine):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        table_resource = {logical_id: resources_of_type(local_template, TABLE)[logical_id]}

    return OnMoto


def test_any_sequence_of_requests_keeps_every_reservation_promise(machine: type[ReservationMachine]) -> None:
    run_state_machine_as_test(machine, settings=SETTINGS)


# -- sequences replayed step by step, with the machine's checks -------------------------------------


class Replay:
    """The machine's rules called one at a time, the table checked after each, as hypothesis does."""

    def __init__(self, machine: ReservationMachine) -> None:
        self.machine = machine

    def __getattr__(self, rule: str) -> Callable[..., Any]:
        def step(**arguments: Any) -> Any:
            result = getattr(self.machine, rule)(**arguments)
            self.machine.the_table_keeps_every_promise()
            return result

        return step


@pytest.fixture
def replay(machine: type[ReservationMachine]) -> Iterator[Replay]:
    state = machine()
    yield Replay(state)
    state.teardown()


def quoted(replay: Replay, party_size: int = 2, starts_at: datetime = STARTS[0]) -> str:
    hold_id = replay.hold(party_size=party_size, zone=None, starts_at=starts_at, duration=None)
    assert isinstance(hold_id, str), "no table for the party"
    return hold_id


def test_a_hold_quoted_before_a_policy_change_is_confirmed_on_a_replacement(replay: Replay) -> None:
    replay.open_venue(edits=[])
    held = quoted(replay)
    replay.change_venue(edit=("buffer_minutes", 30), if_match=None)
    (replacement,) = replay.confirm(hold_id=held, booking_id="bk_1", key="key-1")
    assert replay.machine.notices == [Notice(held, "policy_drift.recovered", 2, None, replacement, 2)]


def test_a_policy_change_between_read_and_write_is_met_as_drift(replay: Replay) -> None:
    replay.open_venue(edits=[])
    held = quoted(replay)
    (replacement,) = replay.confirm_while_the_policy_changes(
        hold_id=held, booking_id="bk_1", key=None, change=("buffer_plus", 5)
    )
    assert replay.machine.notices == [Notice(held, "policy_drift.recovered", 2, None, replacement, 2)]


def test_a_policy_that_no_longer_seats_the_party_supersedes_the_hold_and_frees_its_table(
    replay: Replay,
) -> None:
    replay.open_venue(edits=[])
    held = quoted(replay, party_size=4)
    replay.change_venue(edit=("max_party_size", 2), if_match=None)
    replay.confirm(hold_id=held, booking_id="bk_1", key=None)
    assert replay.machine.notices == [Notice(held, "policy_drift.unrecovered", 1, "no_availability", None, 2)]
    assert replay.machine.known[held].status == "superseded"


def test_a_policy_changing_again_after_the_replacement_is_drift_twice(replay: Replay) -> None:
    replay.open_venue(edits=[])
    held = quoted(replay)
    (replacement,) = replay.confirm_while_the_policy_changes_twice(
        hold_id=held, booking_id="bk_1", key=None, change=("buffer_plus", 5), again=("buffer_plus", 5)
    )
    notice = Notice(held, "policy_drift.unrecovered", 2, "drift_repeated", replacement, 3)
    assert replay.machine.notices == [notice]
    assert (replay.machine.known[held].status, replay.machine.known[replacement].status) == (
        "superseded",
        "released",
    )


def test_a_venue_changed_back_to_the_holds_policy_before_the_write_is_no_drift(replay: Replay) -> None:
    # Drift is a difference of policy hashes (docs/reference/http-api.md#policy-drift): version 3 is version
    # 1's policy again
    replay.open_venue(edits=[])
    held = quoted(replay)
    replay.change_venue(edit=("buffer_minutes", 30), if_match=None)
    replay.confirm_while_the_policy_changes(
        hold_id=held, booking_id="bk_1", key=None, change=("buffer_minutes", 10)
    )
    assert replay.machine.notices == []
    assert len(replay.machine.versions) == 3
    assert replay.machine.bookings["bk_1"].body["policy_version"] == 1


def test_an_expired_hold_owns_nothing_and_cannot_be_confirmed(replay: Replay) -> None:
    replay.open_venue(edits=[("hold_ttl_seconds", 60)])
    expired = quoted(replay)
    replay.tick(seconds=60)
    again = quoted(replay)
    assert replay.machine.view().holds[again].table_ids == replay.machine.view().holds[expired].table_ids
    replay.confirm(hold_id=expired, booking_id="bk_1", key=None)
    assert "bk_1" not in replay.machine.bookings


def test_a_booking_id_of_another_hold_is_refused_even_when_the_policy_changes(replay: Replay) -> None:
    # Given bk_1 is booked
    replay.open_venue(edits=[])
    booked = quoted(replay, party_size=1)
    replay.confirm(hold_id=booked, booking_id="bk_1", key=None)
    # When another hold is confirmed as bk_1 while the policy changes
    other = quoted(replay, party_size=1)
    replay.confirm_while_the_policy_changes(
        hold_id=other, booking_id="bk_1", key=None, change=("buffer_plus", 5)
    )
    # Then it is refused and nothing changes (the step checks it). Found by the machine: drift
    # recovery used to supersede the hold first, leave its replacement held and notify nothing.


def test_a_repeat_naming_the_replacement_with_the_same_key_answers_the_first_body(replay: Replay) -> None:
    # Given a hold confirmed with key-1 after the policy changed, on a replacement
    replay.open_venue(edits=[])
    held = quoted(replay, party_size=1)
    replay.change_venue(edit=("buffer_minutes", 0), if_match=None)
    (replacement,) = replay.confirm(hold_id=held, booking_id="bk_1", key="key-1")
    # When the client repeats it naming the hold the answer named, with the same key
    # Then it gets the first body (the step checks it; found by the machine: the key used to be
    # checked before the hold's own booking, answering 422), and nothing more is written
    replay.confirm_again(hold_id=replacement, booking_id="bk_1", key="key-1")
    assert len(replay.machine.notices) == 1
