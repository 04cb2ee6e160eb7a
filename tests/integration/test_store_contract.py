"""The reservation stores' contract, held by both implementations: ``ReservationsTable`` on
DynamoDB (moto) and the in-memory ``tests.fakes.reservations.InMemoryReservations`` the logic
tests run on. Conditional writes, version checks, all-or-nothing transactions, the labels a
refusal names, and expiry by time: what the logic relies on, so a fake that passes here may
stand in for the table in a logic test."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.reservation_keys import outbox_key
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.drift_events import PolicyDriftData
from booking_durability.metric_names import DriftReason
from booking_durability.reservations.holds import Hold, HoldStatus, QuotedHold, complete
from booking_durability.reservations.intervals import Interval
from booking_durability.reservations.ownership import Owner, Slot, SlotWrite, claim, release
from booking_durability.reservations.ports import (
    AnswerBody,
    Booking,
    BookingStatus,
    ConfirmedAnswer,
    DriftFlow,
    FlowState,
    ReservationStore,
    StoredVenue,
    WriteConflict,
)
from booking_durability.reservations.venues import canonical_json, policy_hash
from tests.fakes.reservations import InMemoryReservations
from tests.integration.conftest import Resources
from tests.unit.reservations import builders
from tests.unit.reservations.builders import NOW, STARTS_AT

ENDS_AT = STARTS_AT + timedelta(minutes=90)
OWNS_UNTIL = ENDS_AT + timedelta(minutes=15)
HOURS = ("20", "21", "22")  # the buckets a hold from STARTS_AT to OWNS_UNTIL owns
LATER = NOW + timedelta(minutes=20)  # past every hold's expiry (ten minutes)


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> ReservationStore:
    if request.param == "memory":
        return InMemoryReservations()
    resources: Resources = request.getfixturevalue("resources")
    return ReservationsTable(DynamoTable(resources.reservations_table, resources.dynamodb))


def events(store: ReservationStore, event: PolicyDriftData) -> bool:
    """Whether ``event`` is in the store's outbox."""
    if isinstance(store, InMemoryReservations):
        return str(event.event_id) in store.outbox
    if isinstance(store, ReservationsTable):
        return store.table.get(outbox_key(str(event.event_id))) is not None
    raise TypeError(store)


def venue(version: int = 1, **policy: Any) -> StoredVenue:
    config = builders.config(**policy)
    return StoredVenue("casa-lucio", canonical_json(config), policy_hash(config), version)


def quoted(hold_id: str = "hold_1", table: str = "T2", **fields: Any) -> QuotedHold:
    made = complete(Hold.model_validate(builders.hold(hold_id=hold_id, table_ids=[table], **fields)))
    if not isinstance(made, QuotedHold):
        raise TypeError(made)
    return made


def held(store: ReservationStore, hold_id: str = "hold_1", table: str = "T2", **fields: Any) -> QuotedHold:
    """A stored hold owning ``table``, the venue saved first if it is not."""
    if store.venue("casa-lucio") is None:
        store.save_venue(venue(), None, NOW)
    made = quoted(hold_id, table, **fields)
    store.create_hold(made, OWNS_UNTIL, claim_writes(store, made))
    return made


def claim_writes(store: ReservationStore, made: QuotedHold) -> list[SlotWrite]:
    hold = made.hold
    interval = Interval(hold.starts_at, OWNS_UNTIL)
    records = store.slot_records(hold.venue_id, interval)
    return claim(records, hold.table_ids, interval, hold.hold_id, hold.expires_at, NOW)


def frees(store: ReservationStore, hold: Hold, now: datetime = NOW) -> list[SlotWrite]:
    return release(store.slot_records(hold.venue_id, Interval(hold.starts_at, OWNS_UNTIL)), hold.hold_id, now)


def booking_of(made: QuotedHold, booking_id: str = "bk_1") -> Booking:
    hold = made.hold
    return Booking(
        booking_id,
        hold.hold_id,
        hold.venue_id,
        hold.table_ids,
        hold.starts_at,
        hold.ends_at,
        BookingStatus.CONFIRMED,
        OWNS_UNTIL,
    )


def answer_of(made: QuotedHold, booking_id: str = "bk_1") -> ConfirmedAnswer:
    return ConfirmedAnswer(made.hold.hold_id, booking_id, AnswerBody.of({"booking_id": booking_id}))


def drift_event(original: str, reason: DriftReason | None = DriftReason.INTERRUPTED) -> PolicyDriftData:
    return PolicyDriftData(
        type="policy_drift.unrecovered",
        event_id=str(uuid.uuid4()),
        occurred_at=NOW,
        venue_id="casa-lucio",
        original_hold_id=original,
        original_policy_hash=builders.HASH,
        policy_hash=builders.HASH,
        policy_version=1,
        attempts=1,
        reason=reason,
    )


def refused(write: Callable[[], None]) -> WriteConflict:
    with pytest.raises(WriteConflict) as conflict:
        write()
    return conflict.value


# -- venues --------------------------------------------------------------------------------------


def test_a_venue_version_is_written_only_over_the_version_read(store: ReservationStore) -> None:
    # Given version 1
    store.save_venue(venue(1), None, NOW)
    # When another writer saves over version 1 first, and a late one saves over it too
    store.save_venue(venue(2, max_party_size=8), 1, NOW)
    late = refused(lambda: store.save_venue(venue(2, max_party_size=6), 1, NOW))
    # Then the late writer is refused with the version it lost to, and nothing of its is kept
    assert late.refused == {"venue", "version"}
    assert late.venue == venue(2, max_party_size=8)
    assert store.venue("casa-lucio") == venue(2, max_party_size=8)
    assert sorted(v.policy_version for v in store.venue_versions("casa-lucio")) == [1, 2]
    assert store.venue("casa-lucio", 1) == venue(1)
    # And a venue that exists is not created again
    assert refused(lambda: store.save_venue(venue(1), None, NOW)).refused == {"venue", "version"}
    assert store.venue("elsewhere") is None
    assert store.venue_versions("elsewhere") == []


# -- holds and ownership ---------------------------------------------------------------------------


def test_a_hold_is_stored_with_its_ownership_or_not_at_all(store: ReservationStore) -> None:
    # Given a hold on T2
    first = held(store)
    assert store.hold("hold_1") is not None
    records = store.slot_records("casa-lucio", Interval(STARTS_AT, OWNS_UNTIL))
    assert [(set(r.owners), r.version) for r in records.values()] == [({"hold_1"}, 1)] * len(HOURS)
    # When a second hold writes T2's record as it was before the first (a stale read)
    second = quoted("hold_2")
    stale = claim({}, ["T2"], Interval(STARTS_AT, OWNS_UNTIL), "hold_2", second.hold.expires_at, NOW)
    conflict = refused(lambda: store.create_hold(second, OWNS_UNTIL, stale))
    # Then the record's write is refused by its label, and the hold was not stored either
    assert conflict.refused == {f"slot T2@2026-12-24T{hour}" for hour in HOURS}
    assert store.hold("hold_2") is None
    # And the same id cannot be stored twice
    again = claim_writes(store, quoted("hold_1", "T3"))
    assert refused(lambda: store.create_hold(first, OWNS_UNTIL, again)).refused == {"hold"}
    assert store.slot_records("casa-lucio", Interval(STARTS_AT, OWNS_UNTIL)).keys() == records.keys()


def test_a_hold_is_refused_once_the_venue_policy_moved(store: ReservationStore) -> None:
    store.save_venue(venue(1), None, NOW)
    store.save_venue(venue(2, max_party_size=8), 1, NOW)
    made = quoted()
    conflict = refused(lambda: store.create_hold(made, OWNS_UNTIL, claim_writes(store, made)))
    assert conflict.refused == {"policy"}
    assert conflict.policy_moved
    assert store.hold("hold_1") is None
    assert store.slot_records("casa-lucio", Interval(STARTS_AT, OWNS_UNTIL)) == {}


def test_a_hold_ends_only_while_it_is_live_and_held(store: ReservationStore) -> None:
    made = held(store)
    hold = made.hold
    # Past its expiry it can no longer be released (expiry is decided by time)
    assert refused(lambda: store.end_hold(hold, HoldStatus.RELEASED, frees(store, hold), LATER)).refused == {
        "hold"
    }
    store.end_hold(hold, HoldStatus.RELEASED, frees(store, hold), NOW)
    stored = store.hold("hold_1")
    assert stored is not None
    assert stored.hold.status is HoldStatus.RELEASED
    assert all(
        not r.owners for r in store.slot_records("casa-lucio", Interval(STARTS_AT, OWNS_UNTIL)).values()
    )
    # Released once: a second end is refused
    assert refused(lambda: store.end_hold(hold, HoldStatus.RELEASED, [], NOW)).refused == {"hold"}


# -- bookings and confirmations ----------------------------------------------------------------------


def test_a_confirmation_takes_the_booking_id_once_and_keeps_the_tables(store: ReservationStore) -> None:
    made = held(store)
    store.confirm(made, booking_of(made), answer_of(made), NOW, idempotency_key="key-1")
    # The hold is confirmed, the booking and its answer stored, the key bound to them
    stored = store.hold("hold_1")
    assert stored is not None
    assert stored.hold.status is HoldStatus.CONFIRMED
    assert stored.booking_id == "bk_1"
    assert store.booking("bk_1") == booking_of(made)
    assert store.confirmed_answer("bk_1") == answer_of(made)
    hold, keyed = store.confirm_reads("hold_1", "key-1")
    assert hold == stored
    assert keyed is not None
    assert keyed.body is not None
    assert (keyed.hold_id, keyed.booking_id, keyed.body.text) == ("hold_1", "bk_1", answer_of(made).body.text)
    # Its tables are owned for ever (the entry no longer expires), each record's version moved
    records = store.slot_records("casa-lucio", Interval(STARTS_AT, OWNS_UNTIL)).values()
    assert [(r.owners["hold_1"].until, r.version) for r in records] == [(0, 2)] * len(HOURS)
    # A second hold confirmed with the same booking id is refused, answered the first's answer
    other = held(store, "hold_2", "T3")
    conflict = refused(lambda: store.confirm(other, booking_of(other), answer_of(other), NOW))
    assert conflict.refused == {"booking"}
    assert conflict.booking == answer_of(made)
    assert store.hold("hold_2") is not None
    assert store.hold("hold_2").hold.status is HoldStatus.HELD


def test_a_confirmation_is_refused_past_expiry_or_after_the_policy_moved(store: ReservationStore) -> None:
    made = held(store)
    late = refused(lambda: store.confirm(made, booking_of(made), answer_of(made), LATER))
    assert late.refused == {"hold"}
    assert late.booking is None
    store.save_venue(venue(2, max_party_size=8), 1, NOW)
    moved = refused(lambda: store.confirm(made, booking_of(made), answer_of(made), NOW, idempotency_key="k"))
    assert moved.refused == {"policy"}
    assert store.booking("bk_1") is None
    assert store.confirm_reads("hold_1", "k")[1] is None


def test_a_booking_is_cancelled_once(store: ReservationStore) -> None:
    made = held(store)
    store.confirm(made, booking_of(made), answer_of(made), NOW)
    booking = booking_of(made)
    store.cancel_booking(booking, frees(store, made.hold), NOW)
    cancelled = store.booking("bk_1")
    assert cancelled is not None
    assert cancelled.status is BookingStatus.CANCELLED
    assert refused(lambda: store.cancel_booking(booking, [], NOW)).refused == {"booking"}
    assert store.booking("bk_unknown") is None


# -- drift flows -----------------------------------------------------------------------------------


def begin_flow(
    store: ReservationStore, key: str | None = "key-1"
) -> tuple[QuotedHold, QuotedHold, DriftFlow]:
    """hold_1 superseded by hold_2 (on T3) in an open flow claiming bk_1 (and ``key``)."""
    original = held(store)
    replacement = quoted("hold_2", "T3")
    stored = store.hold("hold_1")
    if stored is None:
        raise LookupError("hold_1")
    flow = DriftFlow("bk_1", FlowState.OPEN, 2, replacement_id="hold_2", idempotency_key=key)
    interval = Interval(STARTS_AT, OWNS_UNTIL)
    records = store.slot_records("casa-lucio", interval)
    writes = claim(records, ["T3"], interval, "hold_2", replacement.hold.expires_at, NOW, releasing="hold_1")
    store.replace_hold(stored, replacement, OWNS_UNTIL, writes, NOW, flow=flow)
    return original, replacement, flow


def test_an_open_flow_claims_its_booking_id_and_key_until_it_ends(store: ReservationStore) -> None:
    _original, replacement, flow = begin_flow(store)
    stored = store.hold("hold_1")
    assert stored is not None
    assert stored.hold.status is HoldStatus.SUPERSEDED
    assert stored.flow == flow
    made = store.hold("hold_2")
    assert made is not None
    assert made.replaces == "hold_1"
    # The claimed id is no booking, and no other confirmation may take it or the key
    assert store.booking("bk_1") is None
    assert store.confirmed_answer("bk_1") is None
    other = held(store, "hold_3", "T1")
    taken = refused(
        lambda: store.confirm(other, booking_of(other), answer_of(other), NOW, idempotency_key="key-1")
    )
    assert taken.refused == {"booking", "idempotency"}
    assert taken.booking is None
    # The flow is due once its replacement expired
    assert store.due_flows(NOW) == []
    assert store.due_flows(LATER) == ["hold_1"]
    # Its replacement confirms with what the flow claimed, and the flow ends recovered
    assert stored is not None
    store.confirm(
        replacement,
        booking_of(replacement),
        answer_of(replacement),
        NOW,
        idempotency_key="key-1",
        original=stored,
    )
    ended = store.hold("hold_1")
    assert ended is not None
    assert ended.flow is not None
    assert ended.flow.state is FlowState.RECOVERED
    assert store.due_flows(LATER) == []
    assert store.booking("bk_1") == booking_of(replacement)


def test_an_ended_flow_frees_its_booking_id_releases_its_replacement_and_writes_its_event(
    store: ReservationStore,
) -> None:
    _, replacement, flow = begin_flow(store)
    ended = flow.ended(FlowState.UNRECOVERED, DriftReason.INTERRUPTED)
    event = drift_event("hold_1")
    store.end_flow("hold_1", ended, replacement.hold, frees(store, replacement.hold, LATER), LATER, event)
    original = store.hold("hold_1")
    assert original is not None
    assert original.flow is not None
    assert (original.flow.state, original.flow.reason) == (FlowState.UNRECOVERED, DriftReason.INTERRUPTED)
    made = store.hold("hold_2")
    assert made is not None
    assert made.hold.status is HoldStatus.RELEASED
    assert events(store, event)
    assert store.due_flows(LATER) == []
    # Ended once: ending it again is refused, and writes no second event
    again = drift_event("hold_1")
    conflict = refused(lambda: store.end_flow("hold_1", ended, replacement.hold, [], LATER, again))
    assert conflict.refused == {"original", "booking", "replacement"}
    assert not events(store, again)
    # The id is free again: a confirmation may take it
    other = held(store, "hold_3", "T1")
    store.confirm(other, booking_of(other), answer_of(other), NOW)


def test_a_drifted_hold_ends_at_once_with_its_event_when_nothing_fits(store: ReservationStore) -> None:
    made = held(store)
    flow = DriftFlow(
        "bk_1", FlowState.UNRECOVERED, 1, idempotency_key="key-1", reason=DriftReason.NO_AVAILABILITY
    )
    event = drift_event("hold_1", DriftReason.NO_AVAILABILITY)
    store.end_drifted(made.hold, frees(store, made.hold), NOW, flow, event)
    stored = store.hold("hold_1")
    assert stored is not None
    assert stored.hold.status is HoldStatus.SUPERSEDED
    assert stored.flow == flow
    assert events(store, event)
    _, keyed = store.confirm_reads("hold_1", "key-1")
    assert keyed is not None
    assert (keyed.hold_id, keyed.booking_id, keyed.body) == ("hold_1", "bk_1", None)
    # The same event id is written once: a second write of it refuses the whole transaction
    second = held(store, "hold_2", "T3")
    conflict = refused(lambda: store.end_drifted(second.hold, frees(store, second.hold), NOW, flow, event))
    assert conflict.refused == {"idempotency", "outbox"}
    assert store.hold("hold_2") is not None
    assert store.hold("hold_2").hold.status is HoldStatus.HELD


def test_ownership_written_with_an_owner_keeps_what_it_was_given(store: ReservationStore) -> None:
    store.save_venue(venue(), None, NOW)
    slot = Slot(STARTS_AT.replace(minute=0), "T1")
    owner = Owner(100, 200, 300)
    made = quoted("hold_9", "T1")
    store.create_hold(made, OWNS_UNTIL, [SlotWrite(slot, None, {"hold_9": owner})])
    records = store.slot_records("casa-lucio", Interval(STARTS_AT, OWNS_UNTIL))
    assert records[slot].owners == {"hold_9": owner}
    assert records[slot].version == 1
