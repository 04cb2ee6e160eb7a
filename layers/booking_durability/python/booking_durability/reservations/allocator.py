"""Which free tables seat a party (docs/reference/http-api.md#allocation-rule): pure and deterministic.

The same venue, party, zone and busy set always give the same answer, whatever the order of the
venue's tables, so a re-quote or a retry under contention lands on the same choice.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from booking_durability.metric_names import NoAvailabilityReason as NoAvailabilityReason
from booking_durability.reservations.venues import Table, VenueConfig

#: The most tables one party is seated at: a single table, a pair or a triple.
MOST_COMBINED = 3


@dataclass(frozen=True, slots=True)
class AllocatedTable:
    id: str
    capacity: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """One table, or 2..3 mutually combinable ones, sorted by id."""

    tables: tuple[AllocatedTable, ...]

    @property
    def table_ids(self) -> tuple[str, ...]:
        return tuple(table.id for table in self.tables)

    @property
    def total_capacity(self) -> int:
        return sum(table.capacity for table in self.tables)


@dataclass(frozen=True, slots=True)
class NoAvailability:
    reason: NoAvailabilityReason


def allocate(
    config: VenueConfig, party_size: int, zone: str | None, busy: AbstractSet[str]
) -> Allocation | NoAvailability:
    """Pick the tables for a party among the venue's free tables.

    Candidates are the tables in the policy's bookable zones (and in ``zone`` when one is asked)
    whose ids are not in ``busy``. The answer is, in order of preference:

    1. the smallest single table that fits (``min_party <= party_size <= capacity``), by capacity,
       then id;
    2. when the policy allows combinations, the smallest combination of 2 or 3 candidates that
       are pairwise mutually combinable (each lists the other in ``combinable_with``): fewest
       tables, then least total capacity, then the smallest sorted id tuple. A combination seats
       the party when its total capacity reaches ``party_size`` and ``party_size`` is at least
       the smallest ``min_party`` among its tables: joined tables seat one party, which must be
       big enough for one of them (so two 4-tops with ``min_party`` 4 never seat a party of 3),
       but need not be for each (a 6-top with ``min_party`` 5 may be joined to a 2-top for 4);
    3. otherwise ``NoAvailability``: ``party_too_large`` above ``max_party_size``, else ``no_table``.
    """
    policy = config.policy
    if party_size > policy.max_party_size:
        return NoAvailability(NoAvailabilityReason.PARTY_TOO_LARGE)
    candidates = sorted(
        (table for table in config.tables if _bookable(table, config, zone) and table.id not in busy),
        key=lambda table: table.id,
    )
    single = _smallest_single(candidates, party_size)
    if single is not None:
        return _allocation([single])
    if policy.allow_combinations:
        combination = _smallest_combination(candidates, party_size)
        if combination is not None:
            return _allocation(combination)
    return NoAvailability(NoAvailabilityReason.NO_TABLE)


def seats(tables: Sequence[Table], party_size: int) -> bool:
    """Whether these tables, together, may seat the party (the rule ``allocate`` documents)."""
    if len(tables) == 1:
        return tables[0].min_party <= party_size <= tables[0].capacity
    return sum(t.capacity for t in tables) >= party_size and party_size >= min(t.min_party for t in tables)


def seats_party(config: VenueConfig, party_size: int, table_ids: Sequence[str], zone: str | None) -> bool:
    """Whether ``table_ids`` are tables ``allocate`` could give this party under ``config``: the
    one definition of a hold's tables seating its party, whoever wrote the hold.

    The party is within ``max_party_size``; the tables are the venue's, distinct, in its bookable
    zones (and in ``zone`` when one was asked); one table seats the party by its ``min_party`` and
    ``capacity``; two or three only when the policy allows combinations, each listing every other,
    together seating it by the combination rule of :func:`allocate`.
    """
    by_id = {table.id: table for table in config.tables}
    ids = list(table_ids)
    if party_size > config.policy.max_party_size or not 1 <= len(ids) <= MOST_COMBINED:
        return False
    if len(set(ids)) != len(ids) or not by_id.keys() >= set(ids):
        return False
    tables = [by_id[table_id] for table_id in ids]
    if not all(_bookable(table, config, zone) for table in tables):
        return False
    if len(tables) > 1 and not (config.policy.allow_combinations and _mutually_combinable(tables)):
        return False
    return seats(tables, party_size)


def _bookable(table: Table, config: VenueConfig, zone: str | None) -> bool:
    return table.zone in config.policy.bookable_zones and (zone is None or table.zone == zone)


def _mutually_combinable(tables: Sequence[Table]) -> bool:
    return all(
        other.id in table.combinable_with for table in tables for other in tables if other is not table
    )


def _allocation(tables: Iterable[Table]) -> Allocation:
    ordered = sorted(tables, key=lambda table: table.id)
    return Allocation(tuple(AllocatedTable(table.id, table.capacity) for table in ordered))


def _size_order(table: Table) -> tuple[int, str]:
    return (table.capacity, table.id)


def _smallest_single(candidates: Sequence[Table], party_size: int) -> Table | None:
    fitting = [table for table in candidates if seats([table], party_size)]
    return min(fitting, key=_size_order, default=None)


def _smallest_combination(candidates: Sequence[Table], party_size: int) -> list[Table] | None:
    by_id = {table.id: table for table in candidates}
    listed = {table.id: frozenset(table.combinable_with) for table in candidates}
    # Only free candidates that list each other: the graph is as sparse as the venue's
    # combinations, and each table's partners are sorted by (capacity, id) so that a search can
    # start at the first partner big enough (bisect) and stop at the first one that fits.
    partners = {
        table.id: _Partners(
            sorted(
                (by_id[other] for other in listed[table.id] if other in by_id and table.id in listed[other]),
                key=_size_order,
            )
        )
        for table in candidates
    }
    return _smallest_pair(candidates, partners, party_size) or _smallest_triple(
        candidates, partners, party_size
    )


class _Partners:
    """A table's mutually combinable free partners, in (capacity, id) order."""

    def __init__(self, tables: list[Table]) -> None:
        self.tables = tables
        self.ids = frozenset(table.id for table in tables)
        self._capacities = [table.capacity for table in tables]

    def from_capacity(self, capacity: int) -> list[Table]:
        """The partners with at least this capacity, smallest first."""
        return self.tables[bisect_left(self._capacities, capacity) :]


# For a fixed part of a combination, the best last table is the first fitting one in (capacity,
# id) order: least capacity, and among equals the smallest id, which also gives the smallest
# sorted id tuple. So each search below stops at its first fit, or once it cannot beat the best.


def _smallest_pair(
    candidates: Sequence[Table], partners: dict[str, _Partners], party_size: int
) -> list[Table] | None:
    best: tuple[int, tuple[str, ...]] | None = None
    chosen: list[Table] | None = None
    for first in candidates:
        for second in partners[first.id].from_capacity(party_size - first.capacity):
            total = first.capacity + second.capacity
            if best is not None and total > best[0]:
                break
            if not seats([first, second], party_size):
                continue
            key = (total, tuple(sorted((first.id, second.id))))
            if best is None or key < best:
                best, chosen = key, [first, second]
            break
    return chosen


def _smallest_triple(
    candidates: Sequence[Table], partners: dict[str, _Partners], party_size: int
) -> list[Table] | None:
    best: tuple[int, tuple[str, ...]] | None = None
    chosen: list[Table] | None = None
    for first in candidates:
        around_first = partners[first.id]
        for second in around_first.tables:
            if second.id < first.id:  # each pair once; the third may have any id
                continue
            pair_capacity = first.capacity + second.capacity
            around_second = partners[second.id].ids
            for third in around_first.from_capacity(party_size - pair_capacity):
                total = pair_capacity + third.capacity
                if best is not None and total > best[0]:
                    break
                if third.id not in around_second or not seats([first, second, third], party_size):
                    continue
                key = (total, tuple(sorted((first.id, second.id, third.id))))
                if best is None or key < best:
                    best, chosen = key, [first, second, third]
                break
    return chosen
