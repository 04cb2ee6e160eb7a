"""Every path that meets drift ends in exactly one notification, whatever fails on the way
(docs/reference/http-api.md#policy-drift, docs/reference/notifications.md#drift-events).

A hypothesis state machine drives the reservation logic on a ``ReservationsTable`` over moto (made
atomic like DynamoDB), one fresh table per example from the synthesized template. It interleaves
venue changes, holds, confirms, repeats of earlier confirms (by hold and booking id, by key, by
naming the replacement), releases of any hold (replacements too), a clock moved forward so holds
expire, and sweeps; and it injects failures at every step of a flow: the n-th DynamoDB call of a
confirm, a repeat or a sweep fails, before it is sent (a throttled table) or after it committed
(the answer lost), and, between the replacement and its confirmation, the policy changes again,
the clock jumps past the replacement's expiry, or another request wants the flow's booking id
or key.

It predicts little (``test_reservation_invariants.py`` predicts every answer of the paths that
meet no failure) and judges the table after every step:

- no table is owned by two live holds or bookings over overlapping intervals, and the ownership
  records name exactly the live owners;
- a drift flow (kept on the hold it superseded) has no event while open and exactly one once
  ended, of its outcome; every event belongs to a flow; an open flow is listed in the open-flows
  index and holds its booking id and key; a flow makes at most one replacement (two attempts);
- a request of a flow (the one that began it, or its repeat) answers its confirmation, its
  ``POLICY_CHANGED``, or the injected failure — never ``HOLD_NOT_ACTIVE`` — and only a failure
  leaves it open;

and at the end of every run, the clock moved past every expiry and the sweep run, that every
flow ended with exactly one event, and that sweeping again changes nothing.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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

from booking_durability.adapters.dynamodb import DynamoTable, Expression, Item, Operation, Written
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.errors import Busy, DomainError, StoreUnavailable
from booking_durability.reservations import catalog
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from booking_durability.reservations.drift import finish_interrupted_flows
from booking_durability.reservations.holding import hold_tables, release_hold
from booking_durability.reservations.holds import Hold, HoldRequest, QuotedHold
from booking_durability.reservations.ports import AnswerBody
from booking_durability.reservations.refusals import (
    BookingIdTaken,
    HoldNotActive,
    IdempotencyKeyReused,
    NoAvailabilityError,
    PolicyChanged,
)
from devstack.local_resources import TABLE, create_resources, resources_of_type
from tests.builders import T0
from tests.integration.conftest import REGION
from tests.integration.reservation_model import (
    VENUE_ID,
    TableView,
    VenueDraft,
    assert_no_table_is_double_booked,
    assert_records_name_exactly_the_live_owners,
)

# Around midnight two days after T0, as in test_reservation_invariants.py.
STARTS = [
    datetime.fromisoformat(moment)
    for moment in ("2026-12-02T23:00:00+00:00", "2026-12-02T23:45:00+00:00", "2026-12-03T00:30:00+00:00")
]
BOOKING_IDS = st.sampled_from(["bk_1", "bk_2", "bk_3", "bk_4"])
KEYS = st.sampled_from([None, None, "key-1", "key-2"])
# Changes that surely change the policy (a longer buffer, a party limit) or may seat nobody.
CHANGES = st.sampled_from(
    [("buffer_plus", 5), ("buffer_plus", 15), ("buffer_plus", 5), ("max_party_size", 2), ("tables", ("T3",))]
)


@dataclass(frozen=True)
class Fault:
    """The ``call``-th DynamoDB call fails: before it is sent, or after it took effect."""

    call: int
    after: bool


# Mostly at the calls where a flow is made and carried on: a confirm meeting drift reads the hold,
# tries to confirm it, reads the venue and the tables, replaces the hold, confirms the replacement
# (calls 1 to 6); a repeat reads the hold and the replacement, and writes (1 to 3).
FAULTS = st.none() | st.builds(
    Fault, call=st.sampled_from([1, 2, 3, 4, 5, 5, 6, 6, 6, 7, 8]), after=st.booleans()
)
# What happens between a replacement and its confirmation, in a request that makes one.
MEANWHILE = st.sampled_from(
    [None, None, "policy changes", "replacement expires", "booking id wanted", "key wanted"]
)

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class FaultyTable(DynamoTable):
    """The table, failing the ``fault.call``-th call once armed; counting its writes."""

    def __init__(self, name: str, client: Any) -> None:
        super().__init__(name, client)
        self.fault: Fault | None = None
        self.calls = 0
        self.fired = False
        self.writes = 0

    def arm(self, fault: Fault | None) -> None:
        self.fault, self.calls, self.fired = fault, 0, False

    def _step(self, write: bool, call: Callable[[], Any]) -> Any:
        self.calls += 1
        failing = self.fault is not None and self.calls == self.fault.call
        if failing and not (write and self.fault is not None and self.fault.after):
            self.fired = True
            raise StoreUnavailable("injected: ProvisionedThroughputExceededException")
        result = call()
        if write:
            self.writes += 1
        if failing:
            self.fired = True
            raise StoreUnavailable("injected: RequestTimeout")  # it took effect; the answer is lost
        return result

    def get(self, key: Any) -> Item | None:
        return self._step(False, lambda: super(FaultyTable, self).get(key))

    def get_many(self, keys: Sequence[Any]) -> list[Item]:
        return self._step(False, lambda: super(FaultyTable, self).get_many(keys))

    def query(self, key_condition: Expression, **options: Any) -> Iterator[Item]:
        return self._step(False, lambda: list(super(FaultyTable, self).query(key_condition, **options)))

    def transact(self, operations: Sequence[Operation]) -> None:
        self._step(True, lambda: super(FaultyTable, self).transact(operations))

    def put(self, item: Any, **options: Any) -> Written:
        return self._step(True, lambda: super(FaultyTable, self).put(item, **options))

    def update(self, key: Any, update: Expression, **options: Any) -> Written:
        return self._step(True, lambda: super(FaultyTable, self).update(key, update, **options))


class Interfering(ReservationsTable):
    """The store, where something happens once, right after a replacement is stored."""

    meanwhile: Callable[[Hold], None] | None = None

    def replace_hold(self, original: Any, replacement: QuotedHold, *args: Any, **kwargs: Any) -> None:
        super().replace_hold(original, replacement, *args, **kwargs)
        act, self.meanwhile = self.meanwhile, None
        if act is not None:
            act(replacement.hold)


@dataclass(frozen=True)
class Asked:
    """A confirm request as a client sent it, to repeat."""

    hold_id: str
    booking_id: str
    key: str | None


@dataclass
class Interloper:
    """Another request, for another hold, wanting the flow's booking id or key."""

    wanted: str
    outcome: Any = None


class DriftFlowMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    asked = Bundle("asked")

    # Set by the ``machine`` fixture: a client of moto, and the table's resource in the template.
    dynamodb: Any
    table_resource: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        created = create_resources(
            {"Resources": self.table_resource},
            sqs=None,
            dynamodb=self.dynamodb,
            region=REGION,
            stack_name="flows",
        )
        (table,) = created.tables.values()
        self.table_name = table.name
        self.faulty = FaultyTable(table.name, self.dynamodb)
        self.store = Interfering(self.faulty)
        self.plain = ReservationsTable(DynamoTable(table.name, self.dynamodb))  # never fails
        self.clock = T0
        self.draft = VenueDraft()
        self.serial = itertools.count(1)

    def teardown(self) -> None:
        try:
            self.every_flow_ends_with_exactly_one_event_once_swept()
        finally:
            self.dynamodb.delete_table(TableName=self.table_name)

    # -- helpers --------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock

    def view(self) -> TableView:
        return TableView.scan(self.dynamodb, self.table_name)

    def change(self, edit: Any) -> None:
        self.draft = self.draft.edited(edit)
        catalog.save_venue(self.plain, VENUE_ID, self.draft.config(), None, self.clock)

    def with_fault(self, fault: Fault | None, action: Callable[[], Any]) -> Any:
        """``action``'s outcome (or the domain error it raised); an injected failure is answered
        as the function would answer it: ``StoreUnavailable``."""
        self.faulty.arm(fault)
        try:
            return action()
        except (DomainError, StoreUnavailable, Busy) as error:
            return error
        finally:
            self.faulty.arm(None)

    # -- rules ----------------------------------------------------------------------------------

    @initialize()
    def open_venue(self) -> None:
        catalog.save_venue(self.plain, VENUE_ID, self.draft.config(), None, self.clock)

    @rule(edit=CHANGES)
    def change_venue(self, edit: Any) -> None:
        self.change(edit)

    @rule(target=holds, party_size=st.integers(min_value=1, max_value=4), starts_at=st.sampled_from(STARTS))
    def hold(self, party_size: int, starts_at: datetime) -> Any:
        request = HoldRequest(venue_id=VENUE_ID, party_size=party_size, starts_at=starts_at)
        try:
            hold = hold_tables(self.plain, request, self.now, new_id=lambda: f"hld_{next(self.serial)}")
        except NoAvailabilityError:
            return multiple()
        return hold.hold_id

    @rule(
        target=asked,
        hold_id=consumes(holds),
        booking_id=BOOKING_IDS,
        key=KEYS,
        fault=FAULTS,
        drift_first=st.sampled_from([True, True, True, False]),
        meanwhile=MEANWHILE,
    )
    def confirm(
        self,
        hold_id: str,
        booking_id: str,
        key: str | None,
        fault: Fault | None,
        drift_first: bool,
        meanwhile: str | None,
    ) -> Asked:
        """A confirm of any hold, the venue's policy changed first or not; something may happen
        between a replacement and its confirmation, and any call may fail."""
        if drift_first:
            self.change(("buffer_plus", 5))
        asked = Asked(hold_id, booking_id, key)
        interloper = self.plan(meanwhile, asked)
        outcome = self.request(asked, fault)
        if interloper is not None and interloper.outcome is not None:
            self.check_interloper(interloper)
        self.check_answer(asked, outcome)
        return asked

    @rule(asked=asked, fault=FAULTS, by=st.sampled_from(["hold", "key", "replacement", "someone else"]))
    def repeat(self, asked: Asked, fault: Fault | None, by: str) -> None:
        """The client repeats an earlier confirm: the same request, or naming the replacement; or
        someone else confirms the replacement for another booking."""
        if by in ("replacement", "someone else"):
            flow = self.flow_of(asked)
            if flow is None or flow.replacement_id is None:
                return
            if by == "someone else":
                asked = Asked(flow.replacement_id, "bk_someone_else", None)
            else:
                asked = Asked(flow.replacement_id, asked.booking_id, asked.key)
        elif by == "key" and asked.key is None:
            return
        self.check_answer(asked, self.request(asked, fault))

    @rule(hold_id=holds)
    def release(self, hold_id: str) -> None:
        with contextlib.suppress(HoldNotActive):
            release_hold(self.plain, hold_id, self.now)

    @rule(asked=asked)
    def release_the_replacement(self, asked: Asked) -> None:
        """Someone releases a flow's replacement (its id was given out), the flow open or not."""
        flow = self.flow_of(asked)
        if flow is not None and flow.replacement_id is not None:
            with contextlib.suppress(HoldNotActive):
                release_hold(self.plain, flow.replacement_id, self.now)

    @rule(seconds=st.sampled_from([30, 30, 120, 299, 300, 301]))
    def tick(self, seconds: int) -> None:
        self.clock += timedelta(seconds=seconds)

    @precondition(lambda self: any(row.flow for row in self.view().holds.values()))
    @rule(fault=FAULTS)
    def sweep(self, fault: Fault | None) -> None:
        before = self.view()
        outcome = self.with_fault(fault, lambda: finish_interrupted_flows(self.store, self.now))
        after = self.view()
        if isinstance(outcome, dict):
            ended = [
                hold_id
                for hold_id, row in after.holds.items()
                if row.flow and row.flow.state != "open" and before.holds[hold_id].flow.state == "open"
            ]
            assert outcome["finished"] == len(ended), f"the sweep says {outcome}, the table {ended}"
            assert all(after.holds[h].flow.reason == "interrupted" for h in ended)
        else:
            assert isinstance(outcome, StoreUnavailable), f"the sweep failed with {outcome!r}"

    # -- what a request does --------------------------------------------------------------------

    def request(self, asked: Asked, fault: Fault | None) -> Any:
        outcome = self.with_fault(
            fault,
            lambda: confirm_with_policy_retry(
                self.store,
                ConfirmRequest(asked.hold_id, asked.booking_id, asked.key),
                self.now,
                new_id=lambda: f"hld_r{next(self.serial)}",
            ),
        )
        self.store.meanwhile = None
        return outcome

    def plan(self, meanwhile: str | None, asked: Asked) -> Interloper | None:
        """What happens right after this request's replacement is stored, if it makes one."""
        if meanwhile is None:
            return None
        interloper = Interloper(meanwhile)

        def act(replacement: Hold) -> None:
            if meanwhile == "policy changes":
                self.change(("buffer_plus", 5))
            elif meanwhile == "replacement expires":
                self.clock = max(self.clock, replacement.expires_at)
            else:
                interloper.outcome = self.interlope(meanwhile, asked)

        self.store.meanwhile = act
        return interloper

    def interlope(self, wanted: str, asked: Asked) -> Any:
        """Another hold, confirmed with the flow's booking id (or its key)."""
        others = [
            hold_id
            for hold_id, row in TableView.scan(self.dynamodb, self.table_name).holds.items()
            if row.live(self.clock) and row.replaces is None and hold_id != asked.hold_id
        ]
        if not others:
            return None
        booking_id, key = (
            (asked.booking_id, None) if wanted == "booking id wanted" else ("bk_other", asked.key)
        )
        if key is None and wanted == "key wanted":
            return None
        try:
            return confirm_with_policy_retry(self.plain, ConfirmRequest(others[0], booking_id, key), self.now)
        except DomainError as refused:
            return refused

    def check_interloper(self, interloper: Interloper) -> None:
        # The flow had claimed what the other request wanted: it was refused, and changed nothing
        expected = BookingIdTaken if interloper.wanted == "booking id wanted" else IdempotencyKeyReused
        assert isinstance(interloper.outcome, expected), (
            f"{interloper.wanted}: answered {interloper.outcome!r}"
        )

    def flow_of(self, asked: Asked) -> Any:
        """The drift flow ``asked`` began or repeats, as stored now (None when it has none)."""
        view = self.view()
        row = view.holds.get(asked.hold_id)
        if row is None:
            return None
        origin = view.holds.get(row.replaces) if row.replaces else row
        if origin is None or origin.flow is None or origin.flow.booking_id != asked.booking_id:
            return None
        return origin.flow

    def check_answer(self, asked: Asked, outcome: Any) -> None:
        flow = self.flow_of(asked)
        drift_answer = isinstance(outcome, PolicyChanged) or (
            isinstance(outcome, AnswerBody) and outcome.get("policy_drift") is not None
        )
        if flow is None:
            assert not drift_answer, f"a drift answer with no flow stored: {outcome!r}"
            return
        # A request of a flow: its end, or the injected failure; never HOLD_NOT_ACTIVE
        if flow.state == "open":
            assert isinstance(outcome, StoreUnavailable), f"the flow is still open, yet answered {outcome!r}"
        elif isinstance(outcome, StoreUnavailable):
            pass  # the failure came after the flow's end committed: the repeat will answer it
        elif flow.state == "recovered":
            assert isinstance(outcome, AnswerBody), f"a recovered flow answered {outcome!r}"
            assert outcome == self.view().bookings[flow.booking_id].answer, "not the flow's first body"
            assert outcome["policy_drift"]["attempts"] == 2
        else:
            assert isinstance(outcome, PolicyChanged), f"an unrecovered flow answered {outcome!r}"
            assert (outcome.attempts, outcome.reason) == (flow.attempts, flow.reason)

    # -- invariants, read from the table --------------------------------------------------------

    @invariant()
    def the_table_keeps_every_promise(self) -> None:
        view = self.view()
        assert_no_table_is_double_booked(view, self.clock)
        assert_records_name_exactly_the_live_owners(view, self.clock)
        flows_and_events_agree(view)

    def every_flow_ends_with_exactly_one_event_once_swept(self) -> None:
        """At the end of a run: past every expiry, one sweep ends every flow still open; a second
        changes nothing."""
        self.clock += timedelta(days=1)
        assert finish_interrupted_flows(self.plain, self.now)["due"] >= 0
        view = TableView.scan(self.dynamodb, self.table_name)
        flows_and_events_agree(view)
        still_open = [hold_id for hold_id, row in view.holds.items() if row.flow and row.flow.state == "open"]
        assert still_open == [], f"flows left open after the sweep: {still_open}"
        assert finish_interrupted_flows(self.plain, self.now) == {"due": 0, "finished": 0}
        assert TableView.scan(self.dynamodb, self.table_name).events == view.events


def flows_and_events_agree(view: TableView) -> None:
    """Each flow's events are its state's: none while open, exactly one of its outcome once ended;
    every event is a flow's; an open flow holds its claims; one replacement per flow at most."""
    events = Counter(body["original_hold_id"] for body in view.events.values())
    for body in view.events.values():
        origin = view.holds.get(body["original_hold_id"])
        assert origin is not None, f"an event of no hold: {body}"
        assert origin.flow is not None, f"an event of {origin.hold_id}, which no flow superseded"
    replacements = Counter(row.replaces for row in view.holds.values() if row.replaces)
    for hold_id, row in view.holds.items():
        flow = row.flow
        if flow is None:
            assert events[hold_id] == 0
            continue
        assert row.status == "superseded", f"{hold_id} has a flow yet is {row.status}"
        assert row.replaces is None, f"{hold_id}, a replacement, began a flow of its own"
        assert replacements[hold_id] == (1 if flow.replacement_id else 0), f"{hold_id}'s replacements"
        assert flow.attempts == (2 if flow.replacement_id else 1), f"{hold_id}: {flow.attempts} attempts"
        replacement = view.holds.get(flow.replacement_id) if flow.replacement_id else None
        if flow.state == "open":
            assert events[hold_id] == 0, f"{hold_id}'s open flow was notified"
            assert flow.indexed, f"{hold_id}'s open flow is not in the open-flows index"
            assert view.claimed.get(flow.booking_id) == hold_id, f"{hold_id}'s flow lost its booking id"
            if flow.key is not None:
                claim = view.keys[flow.key]
                assert (claim["answered_hold_id"], "answer" in claim) == (hold_id, False)
            continue
        assert events[hold_id] == 1, f"{hold_id}'s flow ended with {events[hold_id]} events"
        assert not flow.indexed, f"{hold_id}'s ended flow is still in the open-flows index"
        assert flow.booking_id not in view.claimed or view.claimed[flow.booking_id] != hold_id
        [event] = [body for body in view.events.values() if body["original_hold_id"] == hold_id]
        assert event["attempts"] == flow.attempts
        assert event.get("hold_id") == flow.replacement_id
        if flow.state == "recovered":
            assert event["type"] == "policy_drift.recovered"
            assert replacement is not None
            assert (replacement.status, replacement.booking_id) == ("confirmed", flow.booking_id)
            assert view.bookings[flow.booking_id].hold_id == replacement.hold_id
            if flow.key is not None:
                assert "answer" in view.keys[flow.key], f"{hold_id}'s key does not answer its body"
        else:
            assert (event["type"], event["reason"]) == ("policy_drift.unrecovered", flow.reason)
            assert replacement is None or replacement.status != "held", (
                "an ended flow left its replacement held"
            )


@pytest.fixture
def machine(aws: None, local_template: dict[str, Any]) -> type[DriftFlowMachine]:
    logical_id = local_template["Outputs"]["ReservationsTableName"]["Value"]["Ref"]

    class OnMoto(DriftFlowMachine):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        table_resource = {logical_id: resources_of_type(local_template, TABLE)[logical_id]}

    return OnMoto


def test_every_drift_flow_ends_with_one_notification_whatever_fails(machine: type[DriftFlowMachine]) -> None:
    run_state_machine_as_test(machine, settings=SETTINGS)


# -- a failure at each call of each kind of flow, replayed through the machine's rules -------------

# How the flow goes on once the hold is replaced, and the policy change that makes it drift.
FLOW_KINDS = {
    "recovered": (None, ("buffer_plus", 5)),
    "drift repeated": ("policy changes", ("buffer_plus", 5)),
    "interrupted": ("replacement expires", ("buffer_plus", 5)),
    "nothing fits": (None, ("tables", ("T3",))),
}


@pytest.mark.parametrize("after", [False, True], ids=["before the call", "after it took effect"])
@pytest.mark.parametrize("call", range(1, 8))
@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_a_failure_at_any_call_of_a_flow_still_ends_it_with_one_event(
    machine: type[DriftFlowMachine], kind: str, call: int, after: bool
) -> None:
    # Given a hold whose venue's policy then changes
    state = machine()
    meanwhile, change = FLOW_KINDS[kind]
    try:
        state.open_venue()
        hold_id = state.hold(party_size=2, starts_at=STARTS[0])
        state.change_venue(edit=change)
        # When its confirm fails at that call (the table is judged after it), and is repeated once
        asked = state.confirm(
            hold_id=hold_id,
            booking_id="bk_1",
            key="key-1",
            fault=Fault(call, after),
            drift_first=False,
            meanwhile=meanwhile,
        )
        state.the_table_keeps_every_promise()
        state.repeat(asked=asked, fault=None, by="hold")
        state.the_table_keeps_every_promise()
        # Then (teardown) past every expiry and one sweep, every flow ended with one event
    finally:
        state.teardown()
