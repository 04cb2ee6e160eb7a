"""The allocator's guarantees over random venues, parties, zones and busy tables
(docs/reference/http-api.md#allocation-rule).

Small venues are checked against a brute-force search over every table and every combination of
2 or 3, written from the contract's words rather than from the allocator.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from booking_durability.reservations.allocator import (
    Allocation,
    NoAvailability,
    NoAvailabilityReason,
    allocate,
    seats_party,
)
from booking_durability.reservations.venues import Table, VenueConfig
from tests.unit.reservations.builders import config, table

ZONES = ["main", "terraza", "bar"]
# Ids whose text order is not their number order ("T10" < "T2"), so ties are really by id.
IDS = [f"T{n}" for n in range(20)]


@st.composite
def venues(draw: st.DrawFn, max_tables: int, *, open_floor: bool = False) -> VenueConfig:
    """A valid venue: small capacities (so combinations matter), partners listed both ways, one
    way or not at all. An open floor has every zone bookable and combinations allowed."""
    count = draw(st.integers(min_value=1, max_value=max_tables))
    ids = draw(st.lists(st.sampled_from(IDS), min_size=count, max_size=count, unique=True))
    partners: dict[str, list[str]] = {table_id: [] for table_id in ids}
    for one, other in itertools.combinations(ids, 2):
        link = draw(st.sampled_from(["both", "both", "both", "none", "one way", "other way"]))
        if link in ("both", "one way"):
            partners[one].append(other)
        if link in ("both", "other way"):
            partners[other].append(one)
    tables: list[dict[str, Any]] = []
    for table_id in ids:
        capacity = draw(st.integers(min_value=1, max_value=6))
        tables.append(
            table(
                table_id,
                capacity,
                min_party=draw(st.integers(min_value=1, max_value=capacity)),
                zone=draw(st.sampled_from(["main", "main", "main", "terraza", "bar"])),
                combinable_with=partners[table_id],
            )
        )
    if open_floor:
        return config(tables, max_party_size=20, allow_combinations=True, bookable_zones=ZONES)
    return config(
        tables,
        max_party_size=draw(st.just(20) | st.integers(min_value=1, max_value=20)),
        allow_combinations=draw(st.sampled_from([True, True, True, False])),
        bookable_zones=draw(
            st.sampled_from([ZONES, ZONES, ZONES, ["main"], ["main", "terraza"], ["bar"], []])
        ),
    )


Request = tuple[VenueConfig, int, str | None, frozenset[str]]


@st.composite
def requests(draw: st.DrawFn, max_tables: int) -> Request:
    """Any venue, party, zone (sometimes one with no tables) and busy set."""
    venue = draw(venues(max_tables))
    # Up to just beyond what the three largest tables seat, where the choices are
    most = sum(sorted(t.capacity for t in venue.tables)[-3:])
    party_size = draw(st.integers(min_value=1, max_value=most + 1))
    zone = draw(st.sampled_from([None, None, None, None, "main", "terraza", "garden"]))
    busy = draw(st.sets(st.sampled_from([t.id for t in venue.tables] + ["gone"]), max_size=2))
    return venue, party_size, zone, frozenset(busy)


@st.composite
def combination_requests(draw: st.DrawFn, max_tables: int) -> Request:
    """Parties no single table seats, on an open floor: the combination search does the work."""
    venue = draw(venues(max_tables, open_floor=True))
    capacities = sorted(t.capacity for t in venue.tables)
    # Beyond the largest table, and often beyond the largest two, so that triples are needed
    smallest = draw(st.sampled_from([capacities[-1] + 1, sum(capacities[-2:]) + 1]))
    party_size = draw(st.integers(min_value=smallest, max_value=max(smallest, sum(capacities[-3:]))))
    busy = draw(st.sets(st.sampled_from([t.id for t in venue.tables]), max_size=1))
    return venue, party_size, None, frozenset(busy)


def _free_candidates(venue: VenueConfig, zone: str | None, busy: frozenset[str]) -> list[Table]:
    return [
        t
        for t in venue.tables
        if t.zone in venue.policy.bookable_zones and zone in (None, t.zone) and t.id not in busy
    ]


def _mutual(one: Table, other: Table) -> bool:
    return other.id in one.combinable_with and one.id in other.combinable_with


def _brute_force(
    venue: VenueConfig, party_size: int, zone: str | None, busy: frozenset[str]
) -> tuple[str, ...] | NoAvailability:
    """Every single table and every combination of 2 or 3, ranked as the contract says."""
    if party_size > venue.policy.max_party_size:
        return NoAvailability(NoAvailabilityReason.PARTY_TOO_LARGE)
    candidates = _free_candidates(venue, zone, busy)
    # (number of tables, total capacity, sorted ids): the least is the contract's choice
    options: list[tuple[int, int, tuple[str, ...]]] = [
        (1, t.capacity, (t.id,)) for t in candidates if t.min_party <= party_size <= t.capacity
    ]
    if venue.policy.allow_combinations:
        for size in (2, 3):
            for combination in itertools.combinations(candidates, size):
                if (
                    all(_mutual(one, other) for one, other in itertools.combinations(combination, 2))
                    and sum(t.capacity for t in combination) >= party_size
                    and party_size >= min(t.min_party for t in combination)
                ):
                    ids = tuple(sorted(t.id for t in combination))
                    options.append((size, sum(t.capacity for t in combination), ids))
    if not options:
        return NoAvailability(NoAvailabilityReason.NO_TABLE)
    return min(options)[2]


@settings(max_examples=200, deadline=None)
@given(request=requests(max_tables=8) | combination_requests(max_tables=8))
def test_small_venues_get_exactly_what_a_brute_force_search_finds(request: Request) -> None:
    result = allocate(*request)
    answered = result.table_ids if isinstance(result, Allocation) else result
    event(f"{len(answered)} table(s)" if isinstance(answered, tuple) else answered.reason.value)
    # In particular: no_table only when no valid allocation exists at all
    assert answered == _brute_force(*request)


@settings(max_examples=100, deadline=None)
@given(request=requests(max_tables=20) | combination_requests(max_tables=20))
def test_every_allocation_keeps_the_rules(request: Request) -> None:
    venue, party_size, zone, busy = request
    result = allocate(venue, party_size, zone, busy)
    candidates = _free_candidates(venue, zone, busy)
    by_id = {t.id: t for t in venue.tables}
    fitting_singles = [t for t in candidates if t.min_party <= party_size <= t.capacity]

    if party_size > venue.policy.max_party_size:
        assert result == NoAvailability(NoAvailabilityReason.PARTY_TOO_LARGE)
        return
    if isinstance(result, NoAvailability):
        assert result.reason is NoAvailabilityReason.NO_TABLE
        assert not fitting_singles
        return

    chosen = [by_id[table_id] for table_id in result.table_ids]
    # Never a busy table, never outside the bookable zones or the requested zone
    assert not busy & set(result.table_ids)
    assert all(t.zone in venue.policy.bookable_zones and zone in (None, t.zone) for t in chosen)
    # Never too small, answered sorted with the tables' real capacities
    assert result.total_capacity >= party_size
    assert list(result.table_ids) == sorted(result.table_ids)
    assert [(a.id, a.capacity) for a in result.tables] == [(t.id, t.capacity) for t in chosen]
    # A single fitting table whenever there is one, of the least capacity
    if fitting_singles:
        assert len(chosen) == 1
        assert chosen[0].min_party <= party_size
        assert chosen[0].capacity == min(t.capacity for t in fitting_singles)
    else:
        # Otherwise at most 3 distinct tables, pairwise mutually combinable, allowed by the policy
        assert venue.policy.allow_combinations
        assert 2 <= len(set(result.table_ids)) == len(chosen) <= 3
        assert all(_mutual(one, other) for one, other in itertools.combinations(chosen, 2))


@settings(max_examples=100, deadline=None)
@given(request=requests(max_tables=12), data=st.data())
def test_the_answer_depends_on_the_venue_not_on_the_order_of_its_tables(
    request: Request, data: st.DataObject
) -> None:
    venue, party_size, zone, busy = request
    reordered = venue.model_copy(update={"tables": data.draw(st.permutations(venue.tables))})
    first = allocate(venue, party_size, zone, busy)
    assert allocate(venue, party_size, zone, busy) == first
    assert allocate(reordered, party_size, zone, busy) == first
    assert allocate(venue.normalized(), party_size, zone, busy) == first


def _seats_by_the_contract(
    venue: VenueConfig, party_size: int, ids: tuple[str, ...], zone: str | None
) -> bool:
    """The rule of docs/reference/http-api.md#allocation-rule for a party on given tables, written from its
    words: the venue's own distinct tables in bookable zones (and the zone asked), within
    max_party_size; one table by min_party and capacity; 2 or 3 only when combinations are allowed,
    pairwise mutually combinable, seating the party together and reaching one table's min_party."""
    by_id = {t.id: t for t in venue.tables}
    if party_size > venue.policy.max_party_size or not 1 <= len(ids) <= 3 or len(set(ids)) != len(ids):
        return False
    if any(table_id not in by_id for table_id in ids):
        return False
    tables = [by_id[table_id] for table_id in ids]
    if not all(t.zone in venue.policy.bookable_zones and zone in (None, t.zone) for t in tables):
        return False
    if len(tables) == 1:
        return tables[0].min_party <= party_size <= tables[0].capacity
    return (
        venue.policy.allow_combinations
        and all(_mutual(one, other) for one, other in itertools.combinations(tables, 2))
        and sum(t.capacity for t in tables) >= party_size
        and party_size >= min(t.min_party for t in tables)
    )


@settings(max_examples=300, deadline=None)
@given(request=requests(max_tables=8), data=st.data())
def test_a_party_fits_given_tables_exactly_when_the_contracts_rule_says_so(
    request: Request, data: st.DataObject
) -> None:
    # Any tables a hold might name, the venue's or not (an import may name anything)
    venue, party_size, zone, _busy = request
    ids = tuple(
        data.draw(st.lists(st.sampled_from([t.id for t in venue.tables] + ["T99"]), min_size=1, max_size=4))
    )
    fits = seats_party(venue, party_size, ids, zone)
    event("fits" if fits else "does not fit")
    assert fits == _seats_by_the_contract(venue, party_size, ids, zone)


@settings(max_examples=100, deadline=None)
@given(request=requests(max_tables=12) | combination_requests(max_tables=12))
def test_every_allocation_seats_its_party_by_the_one_fit_rule(request: Request) -> None:
    # One definition: what the allocator hands out is what confirmation and the import accept
    venue, party_size, zone, busy = request
    result = allocate(venue, party_size, zone, busy)
    if isinstance(result, Allocation):
        assert seats_party(venue, party_size, result.table_ids, zone)
