"""The allocator's choices, by example (docs/reference/http-api.md#allocation-rule); properties live in
test_allocator_properties."""

from __future__ import annotations

from typing import Any

import pytest

from booking_durability.reservations.allocator import (
    AllocatedTable,
    Allocation,
    NoAvailability,
    NoAvailabilityReason,
    allocate,
)
from tests.unit.reservations.builders import config, mutual, table

NO_TABLE = NoAvailability(NoAvailabilityReason.NO_TABLE)
TOO_LARGE = NoAvailability(NoAvailabilityReason.PARTY_TOO_LARGE)


def _ids(
    tables: list[dict[str, Any]] | None,
    party_size: int,
    *,
    zone: str | None = None,
    busy: frozenset[str] = frozenset(),
    **policy: Any,
) -> tuple[str, ...] | NoAvailability:
    """The table ids chosen for the party (or the refusal) in a venue of these tables."""
    result = allocate(config(tables, **policy), party_size, zone, busy)
    return result.table_ids if isinstance(result, Allocation) else result


# --- single tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("party_size", "expected"), [(1, ("T1",)), (2, ("T1",)), (3, ("T2",)), (6, ("T3",))])
def test_the_smallest_fitting_table_is_chosen(party_size: int, expected: tuple[str, ...]) -> None:
    # Given the contract's venue (T1: 2 seats, T2: 4, T3: 6 from 3 guests)  Then the smallest that fits
    assert _ids(None, party_size) == expected


def test_ties_in_capacity_go_to_the_smallest_id() -> None:
    assert _ids([table("B", 4), table("A", 4), table("C", 4)], 3) == ("A",)


def test_a_table_is_not_given_to_a_party_below_its_min_party() -> None:
    # Given only the terraza's 6-top, which seats 3 or more  When 2 ask for the terraza
    # Then there is no table for them, though the 6-top is free
    assert _ids(None, 2, zone="terraza") == NO_TABLE
    assert _ids(None, 3, zone="terraza") == ("T3",)


def test_a_single_table_beats_any_combination() -> None:
    # Given two mutually combinable 2-tops and a free 6-top  When 4 ask
    tables = [*mutual(table("A", 2), table("B", 2)), table("C", 6)]
    # Then they get the 6-top alone, though the pair would be tighter
    assert _ids(tables, 4) == ("C",)


def test_busy_tables_are_skipped() -> None:
    assert _ids(None, 2, busy=frozenset({"T1"})) == ("T2",)
    assert _ids(None, 2, busy=frozenset({"T1", "T2", "T3"})) == NO_TABLE


def test_busy_ids_the_venue_does_not_have_change_nothing() -> None:
    assert _ids(None, 2, busy=frozenset({"gone", "T9"})) == ("T1",)


# --- combinations ----------------------------------------------------------------------------------


def test_two_mutually_combinable_tables_seat_a_party_none_fits_alone() -> None:
    # Given the contract's venue with the 6-top taken  When 6 ask
    # Then T1 and T2, which list each other, are joined
    assert _ids(None, 6, busy=frozenset({"T3"})) == ("T1", "T2")


def test_three_tables_are_joined_when_no_pair_is_enough() -> None:
    tables = mutual(table("A", 2), table("B", 2), table("C", 2), table("D", 2))
    assert _ids(tables, 5) == ("A", "B", "C")


def test_more_than_three_tables_are_never_joined() -> None:
    tables = mutual(*(table(f"T{n}", 2) for n in range(6)))
    assert _ids(tables, 7) == NO_TABLE


def test_fewest_tables_first_then_least_capacity_then_smallest_ids() -> None:
    # Given a pair of 4-tops and a trio of 2-tops, all combinable within their group
    tables = [*mutual(table("X", 4), table("Y", 4)), *mutual(table("A", 2), table("B", 2), table("C", 2))]
    # When 6 ask  Then the pair wins, though the trio has fewer seats
    assert _ids(tables, 6) == ("X", "Y")
    # Given pairs of 8 and 7 seats  Then the 7 wins
    tables = [*mutual(table("A", 2), table("B", 6)), *mutual(table("C", 4), table("D", 3))]
    assert _ids(tables, 7) == ("C", "D")
    # Given two pairs of 6 seats  Then the smaller ids win
    tables = [*mutual(table("C", 3), table("D", 3)), *mutual(table("A", 2), table("B", 4))]
    assert _ids(tables, 5) == ("A", "B")


def test_the_triple_with_least_capacity_wins_and_ties_go_to_the_smallest_ids() -> None:
    tables = mutual(table("E", 4), table("D", 3), table("C", 3), table("B", 2), table("A", 1))
    # Pairs top out at 7 seats; the cheapest triple for 8 is 8 seats: E+C+A or E+D+A (C < D)
    assert _ids(tables, 8) == ("A", "C", "E")


def test_only_tables_that_list_each_other_are_joined() -> None:
    # Given A listing B, but B not listing A
    tables = [table("A", 2, combinable_with=["B"]), table("B", 2)]
    assert _ids(tables, 4) == NO_TABLE
    # Given both listing each other
    assert _ids(mutual(table("A", 2), table("B", 2)), 4) == ("A", "B")


def test_three_tables_are_joined_only_when_every_pair_is_mutually_combinable() -> None:
    # Given A-B and B-C combinable, but A and C not
    tables = [
        table("A", 2, combinable_with=["B"]),
        table("B", 2, combinable_with=["A", "C"]),
        table("C", 2, combinable_with=["B"]),
    ]
    assert _ids(tables, 5) == NO_TABLE


def test_combinations_need_the_policy_to_allow_them() -> None:
    assert _ids(None, 6, busy=frozenset({"T3"}), allow_combinations=False) == NO_TABLE


def test_a_combination_must_suit_the_min_party_of_at_least_one_table() -> None:
    # Given two 4-tops for 4 or more  When 3 ask  Then joining them does not get round min_party
    assert _ids(mutual(table("A", 4, min_party=4), table("B", 4, min_party=4)), 3) == NO_TABLE
    # Given a 6-top for 5 or more and a 2-top  When 4 ask  Then the 2-top's min_party lets them join
    assert _ids(mutual(table("A", 6, min_party=5), table("B", 2)), 4) == ("A", "B")


def test_combined_tables_are_answered_sorted_with_their_capacities() -> None:
    result = allocate(config(mutual(table("Z", 4), table("A", 2))), 5, None, frozenset())
    assert result == Allocation((AllocatedTable("A", 2), AllocatedTable("Z", 4)))
    assert isinstance(result, Allocation)
    assert result.total_capacity == 6


# --- zones -----------------------------------------------------------------------------------------


def test_a_requested_zone_limits_the_choice() -> None:
    assert _ids(None, 3, zone="terraza") == ("T3",)
    assert _ids(None, 3, zone="main") == ("T2",)


def test_tables_outside_the_bookable_zones_are_never_chosen() -> None:
    # Given the terraza not bookable  Then its 6-top is not offered, even when asked for by zone
    assert _ids(None, 6, bookable_zones=["main"]) == ("T1", "T2")
    assert _ids(None, 3, zone="terraza", bookable_zones=["main"]) == NO_TABLE
    assert _ids(None, 2, bookable_zones=[]) == NO_TABLE


def test_tables_are_not_combined_across_the_requested_zone() -> None:
    tables = mutual(table("A", 2, zone="main"), table("B", 2, zone="terraza"))
    assert _ids(tables, 4) == ("A", "B")
    assert _ids(tables, 4, zone="main") == NO_TABLE


def test_an_unknown_zone_has_no_table() -> None:
    assert _ids(None, 2, zone="garden") == NO_TABLE


# --- refusals --------------------------------------------------------------------------------------


def test_a_party_above_max_party_size_is_too_large_even_when_a_table_fits() -> None:
    tables = [table("Big", 20)]
    assert _ids(tables, 11, max_party_size=10) == TOO_LARGE
    assert _ids(tables, 10, max_party_size=10) == ("Big",)


def test_no_table_when_nothing_fits() -> None:
    assert _ids(None, 7) == NO_TABLE


# --- at the venue-size limit -----------------------------------------------------------------------


def test_200_combinable_one_seaters_give_the_first_three() -> None:
    # Given 200 one-seat tables, all combinable with each other (1.3M possible triples)
    tables = mutual(*(table(f"T{n:03}", 1) for n in range(200)))
    venue = config(tables, max_party_size=100)
    # Then three guests get the three smallest ids, and busy ones are passed over
    assert allocate(venue, 3, None, frozenset()).table_ids == ("T000", "T001", "T002")  # type: ignore[union-attr]
    assert allocate(venue, 3, None, frozenset({"T001"})).table_ids == ("T000", "T002", "T003")  # type: ignore[union-attr]


def test_200_combinable_tables_too_small_even_three_together() -> None:
    tables = mutual(*(table(f"T{n:03}", 33) for n in range(200)))
    assert allocate(config(tables, max_party_size=100), 100, None, frozenset()) == NO_TABLE


def test_200_tables_of_mixed_sizes_find_the_tightest_triple() -> None:
    # Given 200 combinable tables of 20..39 seats (T000 has 20, T019 has 39, T039 has 39 again...)
    tables = mutual(*(table(f"T{n:03}", 20 + n % 20) for n in range(200)))
    # When 100 ask (no pair reaches 100: two 39s make 78)
    result = allocate(config(tables, max_party_size=100), 100, None, frozenset())
    # Then three tables of exactly 100 seats, the smallest ids that can: 22 + 39 + 39
    assert isinstance(result, Allocation)
    assert result.total_capacity == 100
    assert result.table_ids == ("T002", "T019", "T039")
