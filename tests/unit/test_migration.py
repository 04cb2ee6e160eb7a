"""Import and backfill decisions (docs/reference/importing-holds.md#skips-and-refusals,
docs/reference/importing-holds.md#deriving-metadata), with an in-memory store: parsing a line,
recognising a hold already imported, deriving missing metadata, and what each case writes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from booking_durability.reservations.catalog import Venue
from booking_durability.reservations.holds import Hold, HoldStatus, missing_metadata
from booking_durability.reservations.intervals import Interval
from booking_durability.reservations.ownership import Owner, Slot, SlotRecord, SlotWrite
from booking_durability.reservations.ports import StoredHold, StoredVenue, WriteConflict
from booking_durability.reservations.venues import canonical_json, policy_hash
from operations.migration import (
    MAX_ROUNDS,
    ActivePage,
    BackfillAction,
    Derived,
    LineOutcome,
    Refusal,
    Refused,
    ScannedHold,
    StepResult,
    Underivable,
    carry_out,
    derive_metadata,
    import_hold,
    import_lines,
    parse_line,
    plan_backfill,
    plan_step,
    same_as_given,
)
from tests.unit.reservations.builders import HASH, NOW, PLANTED, STARTS_AT, config, iso, snapshot, table

ENDS_AT = STARTS_AT + timedelta(minutes=90)


def exported(**overrides: Any) -> dict[str, Any]:
    """A line of the booking app's export, as a dict: the required fields only."""
    body: dict[str, Any] = {
        "hold_id": "hld_1",
        "venue_id": "casa",
        "party_size": 4,
        "starts_at": iso(STARTS_AT),
        "ends_at": iso(ENDS_AT),
        "expires_at": iso(NOW + timedelta(minutes=10)),
        "table_ids": ["T2"],
    }
    body.update(overrides)
    return body


def hold_of(**overrides: Any) -> Hold:
    return Hold.model_validate(exported(**overrides))


def version(n: int, **policy: Any) -> Venue:
    venue_config = config(**policy)
    return Venue("casa", venue_config, policy_hash(venue_config), n)


# -- parsing a line -----------------------------------------------------------------------------


def test_a_line_with_the_required_fields_is_a_held_hold_lacking_metadata() -> None:
    hold = parse_line(json.dumps(exported(status="held")))
    assert isinstance(hold, Hold)
    assert (hold.status, hold.table_ids, hold.policy_hash) == ("held", ("T2",), None)
    assert missing_metadata(hold) == ["policy_hash", "selection_snapshot"]


@pytest.mark.parametrize(
    ("line", "reason", "field_name"),
    [
        ("{not json", Refusal.INVALID_JSON, None),
        ("[1, 2]", Refusal.NOT_AN_OBJECT, None),
        (json.dumps(exported(status="confirmed")), Refusal.STATUS_NOT_HELD, "status"),
        (
            json.dumps({k: v for k, v in exported().items() if k != "expires_at"}),
            Refusal.MISSING_FIELD,
            "expires_at",
        ),
        (json.dumps(exported(party_size="4")), Refusal.INVALID_FIELD, "party_size"),
        (json.dumps(exported(party_size=True)), Refusal.INVALID_FIELD, "party_size"),
        (json.dumps(exported(party_size=4.5)), Refusal.INVALID_FIELD, "party_size"),
        (json.dumps(exported(table_ids="T2")), Refusal.INVALID_FIELD, "table_ids"),
        (json.dumps(exported(starts_at="2026-12-24T20:30:00")), Refusal.INVALID_FIELD, "starts_at"),
        (json.dumps(exported(starts_at="0001-01-01T00:00:00+01:00")), Refusal.INVALID_FIELD, "starts_at"),
        (json.dumps(exported(ends_at="9999-12-31T23:30:00-05:00")), Refusal.INVALID_FIELD, "ends_at"),
        (json.dumps(exported(expires_at="2026-12-01T12:10:00+14:30")), Refusal.INVALID_FIELD, "expires_at"),
        (json.dumps(exported(starts_at=1798143000)), Refusal.INVALID_FIELD, "starts_at"),
        (json.dumps(exported(ends_at=iso(STARTS_AT))), Refusal.INVALID_FIELD, None),
    ],
)
def test_an_invalid_line_is_refused_with_a_reason_code(
    line: str, reason: Refusal, field_name: str | None
) -> None:
    refused = parse_line(line)
    assert isinstance(refused, Refused)
    assert (refused.reason, refused.field) == (reason, field_name)


def test_a_whole_float_is_the_integer_it_equals() -> None:
    # JSON Schema reads 4.0 as the integer 4, and so does the import
    parsed = parse_line(json.dumps(exported(party_size=4.0)))
    assert isinstance(parsed, Hold)
    assert parsed.party_size == 4


def test_a_refusal_never_carries_what_the_line_made_up() -> None:
    # An unknown field's name and an id that is no id are the line's own text: neither is kept
    unknown = parse_line(json.dumps({**exported(), PLANTED: 1}))
    assert unknown == Refused(Refusal.UNKNOWN_FIELD, None, "hld_1")
    bad_id = parse_line(json.dumps(exported(hold_id=f"{PLANTED}@example.test", party_size="x")))
    assert isinstance(bad_id, Refused)
    assert bad_id.hold_id is None
    assert PLANTED not in repr(unknown) + repr(bad_id)


# -- a hold already imported --------------------------------------------------------------------


def test_a_stored_hold_is_the_same_when_every_given_field_matches() -> None:
    given = hold_of()
    assert same_as_given(given, given)
    # confirmed since, and completed by the backfill: still the hold this line describes
    completed = hold_of(status="confirmed", policy_hash=HASH, policy_version=1, selection_snapshot=snapshot())
    assert same_as_given(given, completed)


@pytest.mark.parametrize(
    "stored",
    [
        {"table_ids": ["T1"]},
        {"expires_at": iso(NOW + timedelta(minutes=11))},
        {"party_size": 3},
        {"policy_hash": "0" * 64},
    ],
)
def test_a_stored_hold_differing_in_a_given_field_is_another_hold(stored: dict[str, Any]) -> None:
    given = hold_of(policy_hash=HASH)
    assert not same_as_given(given, hold_of(**{"policy_hash": HASH, **stored}))


def test_a_given_snapshot_is_compared_field_by_field() -> None:
    partial = hold_of(selection_snapshot={"zone": "terraza"})
    assert same_as_given(partial, hold_of(selection_snapshot=snapshot(zone="terraza")))
    assert not same_as_given(partial, hold_of(selection_snapshot=snapshot(zone=None)))
    assert not same_as_given(partial, hold_of())


# -- deriving metadata --------------------------------------------------------------------------


def test_a_hold_with_its_policy_version_gets_hash_and_snapshot_from_that_version() -> None:
    # Given version 1 (TTL 600 s) and a later version 2
    versions = [version(1), version(2, buffer_minutes=30, hold_ttl_seconds=900)]
    hold = hold_of(policy_version=1, table_ids=["T1", "T2"])
    derived = derive_metadata(hold, versions)
    assert isinstance(derived, Derived)
    assert derived.filled == ("policy_hash", "selection_snapshot")
    completed = derived.hold
    assert (completed.policy_hash, completed.policy_version) == (HASH, 1)
    assert completed.selection_snapshot is not None
    assert completed.selection_snapshot.model_dump(mode="json") == {
        "party_size": 4,
        "starts_at": iso(STARTS_AT),
        "ends_at": iso(ENDS_AT),
        "zone": None,  # both tables are in "main", but no zone was asked
        "tables": [{"id": "T1", "capacity": 2}, {"id": "T2", "capacity": 4}],
        "quoted_at": iso(NOW),  # expires_at - version 1's 600 s
    }
    assert missing_metadata(completed) == []


def test_a_hold_with_only_its_hash_is_matched_to_the_latest_version_with_it() -> None:
    # Given a venue changed and changed back: versions 1 and 3 share a hash
    versions = [version(1), version(2, buffer_minutes=30), version(3)]
    derived = derive_metadata(hold_of(policy_hash=HASH), versions)
    assert isinstance(derived, Derived)
    assert (derived.hold.policy_version, derived.filled) == (3, ("policy_version", "selection_snapshot"))


def test_a_partly_given_snapshot_keeps_what_it_gives() -> None:
    hold = hold_of(policy_version=1, selection_snapshot={"zone": "main", "party_size": 3, "tables": []})
    derived = derive_metadata(hold, [version(1)])
    assert isinstance(derived, Derived)
    snap = derived.hold.selection_snapshot
    assert snap is not None
    assert (snap.zone, snap.party_size) == ("main", 3)
    assert [(t.id, t.capacity) for t in snap.tables or ()] == [("T2", 4)]
    assert derived.filled == (
        "policy_hash",
        "selection_snapshot.starts_at",
        "selection_snapshot.ends_at",
        "selection_snapshot.tables",
        "selection_snapshot.quoted_at",
    )


@pytest.mark.parametrize(
    ("overrides", "versions", "reason"),
    [
        ({}, [1], Underivable.NO_POLICY_VERSION),
        ({"policy_version": 1}, [], Underivable.UNKNOWN_VENUE),
        ({"policy_version": 7}, [1], Underivable.UNKNOWN_POLICY_VERSION),
        ({"policy_hash": "0" * 64}, [1], Underivable.UNKNOWN_POLICY_HASH),
        ({"policy_version": 1, "policy_hash": "0" * 64}, [1], Underivable.HASH_NOT_OF_VERSION),
        ({"policy_version": 1, "table_ids": []}, [1], Underivable.NO_TABLES),
        ({"policy_version": 1, "table_ids": ["T9"]}, [1], Underivable.TABLE_NOT_IN_VERSION),
        # Completing a hold whose tables cannot seat its party would only let it be refused later
        ({"policy_version": 1, "party_size": 9, "table_ids": ["T1"]}, [1], Underivable.PARTY_DOES_NOT_FIT),
        ({"policy_hash": HASH, "party_size": 2, "table_ids": ["T3"]}, [1], Underivable.PARTY_DOES_NOT_FIT),
        (
            {"policy_version": 1, "selection_snapshot": {"zone": "terraza"}},
            [1],
            Underivable.PARTY_DOES_NOT_FIT,
        ),
    ],
)
def test_what_cannot_be_derived_says_why(
    overrides: dict[str, Any], versions: list[int], reason: Underivable
) -> None:
    assert derive_metadata(hold_of(**overrides), [version(n) for n in versions]) == reason


def test_each_step_describes_itself_by_action_and_detail() -> None:
    scanned = scanned_hold(hold_of(policy_version=1))
    assert plan_step(scanned, [version(1)], skip_underivable=False).describe() == (
        "fill policy_hash,selection_snapshot"
    )
    lacking = scanned_hold(hold_of())
    assert plan_step(lacking, [version(1)], skip_underivable=False).describe() == "release: no policy version"
    assert plan_step(lacking, [version(1)], skip_underivable=True).describe() == "leave: no policy version"
    unfit = scanned_hold(hold_of(policy_version=1, party_size=9, table_ids=["T1"]))
    assert plan_step(unfit, [version(1)], skip_underivable=False).describe() == (
        "release: its tables cannot seat its party"
    )
    assert plan_step(unfit, [version(1)], skip_underivable=True).action is BackfillAction.LEAVE


# -- an in-memory store -------------------------------------------------------------------------


@dataclass
class MemoryStore:
    """Venues, holds and ownership records in dicts; ``conflicts`` refuses the next writes."""

    venues: list[StoredVenue] = field(default_factory=list)
    holds: dict[str, StoredHold] = field(default_factory=dict)
    docs: dict[str, str] = field(default_factory=dict)
    records: dict[Slot, SlotRecord] = field(default_factory=dict)
    conflicts: list[frozenset[str]] = field(default_factory=list)
    writes: int = 0

    def add_venue(self, n: int = 1, **policy: Any) -> None:
        venue_config = config(**policy)
        self.venues.append(StoredVenue("casa", canonical_json(venue_config), policy_hash(venue_config), n))

    def put(self, stored: StoredHold) -> None:
        self.holds[stored.hold.hold_id] = stored
        self.docs[stored.hold.hold_id] = stored.hold.model_dump_json()

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
        mine = [v for v in self.venues if v.venue_id == venue_id and version in (None, v.policy_version)]
        return max(mine, key=lambda v: v.policy_version, default=None)

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        return [v for v in self.venues if v.venue_id == venue_id]

    def hold(self, hold_id: str) -> StoredHold | None:
        return self.holds.get(hold_id)

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]:
        return dict(self.records)

    def _write(self, writes: Sequence[SlotWrite]) -> None:
        if self.conflicts:
            raise WriteConflict(self.conflicts.pop(0))
        self.writes += 1
        for write in writes:
            self.records[write.slot] = SlotRecord(write.slot, (write.expected_version or 0) + 1, write.owners)

    def import_hold(
        self, hold: Hold, owns_until: datetime, writes: Sequence[SlotWrite], policy_hash: str, now: datetime
    ) -> None:
        self._write(writes)
        self.put(StoredHold(hold, owns_until))

    def active_holds(self, now: datetime, page_size: int) -> Iterator[ActivePage]:
        holds = [ScannedHold(stored, self.docs[hold_id]) for hold_id, stored in self.holds.items()]
        for start in range(0, len(holds), page_size):
            yield ActivePage(holds[start : start + page_size], len(holds[start : start + page_size]))

    def fill_hold(self, filled: StoredHold, token: str, now: datetime) -> bool:
        if self.docs[filled.hold.hold_id] != token:
            return False
        self.put(filled)
        return True

    def release_unchanged(self, hold: Hold, token: str, writes: Sequence[SlotWrite], now: datetime) -> None:
        if self.docs[hold.hold_id] != token:
            raise WriteConflict(frozenset({"hold"}))
        self._write(writes)
        self.put(
            StoredHold(
                hold.model_copy(update={"status": HoldStatus.RELEASED}), self.holds[hold.hold_id].owns_until
            )
        )


def scanned_hold(hold: Hold) -> ScannedHold:
    return ScannedHold(StoredHold(hold, hold.ends_at + timedelta(minutes=10)), hold.model_dump_json())


def clock() -> datetime:
    return NOW


def no_pause(_round: int) -> None:
    return None


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    memory.add_venue()
    return memory


# -- importing ----------------------------------------------------------------------------------


def test_an_imported_hold_owns_its_tables_over_the_current_buffer(store: MemoryStore) -> None:
    assert import_hold(store, hold_of(), clock, pause=no_pause) is LineOutcome.IMPORTED
    stored = store.holds["hld_1"]
    assert stored.owns_until == ENDS_AT + timedelta(minutes=10)
    owners = {slot: record.owners["hld_1"] for slot, record in store.records.items()}
    assert {slot.table_id for slot in owners} == {"T2"}
    assert set(owners.values()) == {
        Owner(
            int(STARTS_AT.timestamp()),
            int(stored.owns_until.timestamp()),
            int(stored.hold.expires_at.timestamp()),
        )
    }


def test_a_second_import_of_the_same_hold_is_skipped_and_another_with_its_id_refused(
    store: MemoryStore,
) -> None:
    import_hold(store, hold_of(), clock, pause=no_pause)
    assert import_hold(store, hold_of(), clock, pause=no_pause) is LineOutcome.SKIPPED
    assert import_hold(store, hold_of(table_ids=["T1"]), clock, pause=no_pause) == Refused(
        Refusal.HOLD_ID_TAKEN, hold_id="hld_1"
    )
    assert store.writes == 1


@pytest.mark.parametrize(
    ("hold", "reason"),
    [
        (hold_of(venue_id="elsewhere"), Refusal.VENUE_UNKNOWN),
        (hold_of(expires_at=iso(NOW)), Refusal.EXPIRED),
        (hold_of(table_ids=["T2", "T9"]), Refusal.UNKNOWN_TABLE),
        # Its tables cannot seat its party, by the allocator's rule (T1 seats 2, T3 at least 3)
        (hold_of(party_size=9, table_ids=["T1"]), Refusal.PARTY_DOES_NOT_FIT),
        (hold_of(party_size=2, table_ids=["T3"]), Refusal.PARTY_DOES_NOT_FIT),
        (hold_of(party_size=11, table_ids=["T1", "T2", "T3"]), Refusal.PARTY_DOES_NOT_FIT),
        (hold_of(party_size=6, table_ids=["T1", "T2", "T3"]), Refusal.PARTY_DOES_NOT_FIT),
        (hold_of(party_size=4, selection_snapshot={"zone": "terraza"}), Refusal.PARTY_DOES_NOT_FIT),
    ],
)
def test_a_hold_that_cannot_be_stored_is_refused_without_a_write(
    store: MemoryStore, hold: Hold, reason: Refusal
) -> None:
    assert import_hold(store, hold, clock, pause=no_pause) == Refused(reason, hold_id="hld_1")
    assert store.writes == 0


def test_seating_is_judged_under_the_version_the_hold_names_else_the_current_one(
    store: MemoryStore,
) -> None:
    # Given version 2 takes parties of two at most
    store.add_venue(2, max_party_size=2)
    # A party of four on T2 quoted under version 1 (by its hash or its number) fits there
    assert import_hold(store, hold_of(hold_id="hld_a", policy_hash=HASH), clock, pause=no_pause) is (
        LineOutcome.IMPORTED
    )
    later = ENDS_AT + timedelta(hours=1)
    by_number = hold_of(
        hold_id="hld_b", policy_version=1, starts_at=iso(later), ends_at=iso(later + timedelta(hours=1))
    )
    assert import_hold(store, by_number, clock, pause=no_pause) is LineOutcome.IMPORTED
    # Without a policy it is judged under the current version, which does not seat it
    unquoted = hold_of(hold_id="hld_c", table_ids=["T1"])
    assert import_hold(store, unquoted, clock, pause=no_pause) == Refused(
        Refusal.PARTY_DOES_NOT_FIT, hold_id="hld_c"
    )


def test_a_table_another_live_owner_holds_meanwhile_is_refused(store: MemoryStore) -> None:
    import_hold(store, hold_of(hold_id="hld_first"), clock, pause=no_pause)
    # Ending exactly when the first one's buffer ends does not overlap; starting inside it does
    later = hold_of(starts_at=iso(ENDS_AT + timedelta(minutes=5)), ends_at=iso(ENDS_AT + timedelta(hours=1)))
    assert import_hold(store, later, clock, pause=no_pause) == Refused(Refusal.TABLES_TAKEN, hold_id="hld_1")
    after = hold_of(starts_at=iso(ENDS_AT + timedelta(minutes=10)), ends_at=iso(ENDS_AT + timedelta(hours=1)))
    assert import_hold(store, after, clock, pause=no_pause) is LineOutcome.IMPORTED


def test_a_lost_race_is_read_again_and_endless_ones_end_in_a_refusal(store: MemoryStore) -> None:
    store.conflicts = [frozenset({"policy"}), frozenset()]
    assert import_hold(store, hold_of(), clock, pause=no_pause) is LineOutcome.IMPORTED
    store.conflicts = [frozenset()] * MAX_ROUNDS
    another = hold_of(hold_id="hld_2", party_size=2, table_ids=["T1"])
    assert import_hold(store, another, clock, pause=no_pause) == Refused(Refusal.CONTENTION, hold_id="hld_2")


def test_lines_are_numbered_as_an_editor_counts_and_blank_ones_passed_over(store: MemoryStore) -> None:
    lines = [json.dumps(exported()), "", "   ", "{", json.dumps(exported())]
    results = list(import_lines(store, lines, clock, pause=no_pause))
    assert [(r.line, r.outcome) for r in results] == [
        (1, LineOutcome.IMPORTED),
        (4, LineOutcome.REFUSED),
        (5, LineOutcome.SKIPPED),
    ]


# -- backfilling --------------------------------------------------------------------------------


def test_the_plan_covers_active_holds_lacking_metadata_only(store: MemoryStore) -> None:
    # Given a complete hold, an expired one, a derivable one and an underivable one
    store.put(
        scanned_hold(hold_of(hold_id="complete", policy_hash=HASH, selection_snapshot=snapshot())).stored
    )
    store.put(scanned_hold(hold_of(hold_id="expired", expires_at=iso(NOW), policy_version=1)).stored)
    store.put(scanned_hold(hold_of(hold_id="derivable", policy_version=1)).stored)
    store.put(scanned_hold(hold_of(hold_id="underivable")).stored)
    examined: list[int] = []
    steps = plan_backfill(store, NOW, page_size=3, on_page=examined.append)
    assert [(s.hold_id, s.action) for s in steps] == [
        ("derivable", BackfillAction.FILL),
        ("underivable", BackfillAction.RELEASE),
    ]
    assert examined == [3, 1]


def test_a_fill_or_release_of_a_hold_changed_meanwhile_is_skipped(store: MemoryStore) -> None:
    fill = plan_step(
        scanned_hold(hold_of(hold_id="a", policy_version=1)), [version(1)], skip_underivable=False
    )
    drop = plan_step(scanned_hold(hold_of(hold_id="b")), [version(1)], skip_underivable=False)
    for step in (fill, drop):
        store.put(StoredHold(step.scanned.stored.hold.model_copy(update={"party_size": 2}), ENDS_AT))
    assert carry_out(store, fill, clock, pause=no_pause) is StepResult.CHANGED
    assert carry_out(store, drop, clock, pause=no_pause) is StepResult.CHANGED
    assert store.holds["a"].hold.policy_hash is None
    assert store.holds["b"].hold.status == "held"


def test_a_release_rereads_moved_records_and_a_left_hold_is_not_written(store: MemoryStore) -> None:
    scanned = scanned_hold(hold_of())
    store.put(scanned.stored)
    store.conflicts = [frozenset({"slot T2@2026-12-24T20"})]
    step = plan_step(scanned, [version(1)], skip_underivable=False)
    assert carry_out(store, step, clock, pause=no_pause) is StepResult.RELEASED
    assert store.holds["hld_1"].hold.status == "released"
    left = plan_step(scanned_hold(hold_of(hold_id="hld_2")), [version(1)], skip_underivable=True)
    assert carry_out(store, left, clock, pause=no_pause) is StepResult.LEFT
    assert store.writes == 1


def test_a_fill_writes_the_completed_hold(store: MemoryStore) -> None:
    scanned = scanned_hold(hold_of(policy_version=1))
    store.put(scanned.stored)
    step = plan_step(scanned, [version(1)], skip_underivable=False)
    assert carry_out(store, step, clock, pause=no_pause) is StepResult.FILLED
    assert missing_metadata(store.holds["hld_1"].hold) == []
    assert plan_backfill(store, NOW) == []


def test_tables_of_other_sizes_keep_their_capacities() -> None:
    tables = [table("A", 8, combinable_with=["B"]), table("B", 3, combinable_with=["A"])]
    versions = [Venue("casa", config(tables), HASH, 1)]
    derived = derive_metadata(hold_of(policy_version=1, party_size=9, table_ids=["B", "A"]), versions)
    assert isinstance(derived, Derived)
    assert derived.hold.selection_snapshot is not None
    assert [(t.id, t.capacity) for t in derived.hold.selection_snapshot.tables or ()] == [("B", 3), ("A", 8)]
