"""What the reservation state machine knows, and what the reservations table says.

``VenueDraft`` is the venue the machine PUTs: a few tables from a fixed pool and a policy, edited
one field at a time. ``TableView`` reads the whole table with one scan, independently of the
adapter's read paths (raw items, JSON documents), so the invariants judge what was stored, not
what the logic believes. ``seats_under`` is the contract's rule for a party on its tables, written
from docs/reference/http-api.md#allocation-rule rather than taken from the allocator.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from booking_durability.reservations.intervals import Interval, buckets
from booking_durability.reservations.ownership import epoch
from booking_durability.reservations.venues import VenueConfig

VENUE_ID = "casa"
ZONES = ("main", "terraza", "bar")

# The tables a venue may have. T2 lists T4 but T4 does not list T2 (one way: never combined), so
# T1+T2 and T1+T4 are the main room's pairs, T3+T5 the terrace's; T4 alone is in the bar.
POOL: dict[str, dict[str, Any]] = {
    "T1": {"capacity": 2, "min_party": 1, "zone": "main", "combinable_with": ["T2", "T4"]},
    "T2": {"capacity": 4, "min_party": 1, "zone": "main", "combinable_with": ["T1", "T4"]},
    "T3": {"capacity": 6, "min_party": 3, "zone": "terraza", "combinable_with": ["T5"]},
    "T4": {"capacity": 2, "min_party": 1, "zone": "bar", "combinable_with": ["T1"]},
    "T5": {"capacity": 4, "min_party": 2, "zone": "terraza", "combinable_with": ["T3"]},
}

# One change to a venue: ("buffer_minutes", 30), ("tables", ("T1", "T3")), ("capacity", ("T2", 6)),
# ("buffer_plus", 5) (always a change), ("unchanged", None)...
Edit = tuple[str, Any]


@dataclass(frozen=True)
class VenueDraft:
    """A venue as the machine means to PUT it."""

    tables: tuple[str, ...] = ("T1", "T2", "T3", "T4")
    capacities: tuple[tuple[str, int], ...] = ()
    policy: tuple[tuple[str, Any], ...] = (
        ("slot_minutes", 15),
        ("default_duration_minutes", 60),
        ("buffer_minutes", 10),
        ("max_party_size", 6),
        ("hold_ttl_seconds", 300),
        ("allow_combinations", True),
        ("bookable_zones", ("main", "terraza")),
    )

    def edited(self, edit: Edit) -> VenueDraft:
        name, value = edit
        if name == "unchanged":
            return self
        if name == "tables":
            return replace(self, tables=tuple(value))
        if name == "capacity":
            table_id, capacity = value
            return replace(self, capacities=(*dict(self.capacities).items(), (table_id, capacity)))
        policy = dict(self.policy)
        if name == "buffer_plus":  # always a change: the buffer lengthened, back to 0 past the cap
            name, value = "buffer_minutes", (policy["buffer_minutes"] + value) % 125
        return replace(self, policy=tuple({**policy, name: value}.items()))

    def config(self) -> VenueConfig:
        capacities = dict(self.capacities)
        tables = []
        for table_id in self.tables:
            spec = POOL[table_id]
            capacity = capacities.get(table_id, spec["capacity"])
            tables.append(
                {
                    "id": table_id,
                    "capacity": capacity,
                    "min_party": min(spec["min_party"], capacity),
                    "zone": spec["zone"],
                    "combinable_with": [other for other in spec["combinable_with"] if other in self.tables],
                }
            )
        policy = dict(self.policy)
        policy["bookable_zones"] = list(policy["bookable_zones"])
        return VenueConfig.model_validate({"tables": tables, "policy": policy})


def seats_under(
    config: VenueConfig, party_size: int, zone: str | None, table_ids: Iterable[str]
) -> list[str]:
    """Why ``table_ids`` may not seat the party under ``config`` (docs/reference/http-api.md#allocation-rule);
    empty when they may.

    The venue's tables, in its bookable zones (and the zone asked), within ``max_party_size``;
    one table fits by ``min_party``/``capacity``; 2..3 tables only when combinations are allowed,
    each listing every other, together reaching the party, which reaches one table's minimum.
    """
    by_id = {table.id: table for table in config.tables}
    ids = list(table_ids)
    problems = []
    if not ids or len(ids) > 3 or len(set(ids)) != len(ids):
        return [f"{len(ids)} tables, or repeated"]
    missing = [table_id for table_id in ids if table_id not in by_id]
    if missing:
        return [f"tables {missing} are not the venue's"]
    tables = [by_id[table_id] for table_id in ids]
    policy = config.policy
    if party_size > policy.max_party_size:
        problems.append(f"party {party_size} above max_party_size {policy.max_party_size}")
    for table in tables:
        if table.zone not in policy.bookable_zones or (zone is not None and table.zone != zone):
            problems.append(f"{table.id} is in zone {table.zone}")
    if len(tables) == 1:
        (table,) = tables
        if not table.min_party <= party_size <= table.capacity:
            problems.append(f"{table.id} seats {table.min_party}..{table.capacity}, not {party_size}")
        return problems
    if not policy.allow_combinations:
        problems.append("combinations are not allowed")
    for one, other in itertools.combinations(tables, 2):
        if other.id not in one.combinable_with or one.id not in other.combinable_with:
            problems.append(f"{one.id} and {other.id} are not mutually combinable")
    if sum(table.capacity for table in tables) < party_size:
        problems.append(f"{ids} seat fewer than {party_size}")
    if party_size < min(table.min_party for table in tables):
        problems.append(f"{ids} need more than {party_size}")
    return problems


# -- the table, as stored ---------------------------------------------------------------------

_deserializer = TypeDeserializer()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


@dataclass(frozen=True)
class VersionRow:
    version: int
    policy_hash: str
    config: VenueConfig


@dataclass(frozen=True)
class FlowRow:
    """A drift flow as its original hold's item carries it."""

    booking_id: str
    state: str  # open | recovered | unrecovered
    attempts: int
    replacement_id: str | None
    key: str | None
    reason: str | None
    indexed: bool  # carries the open-flows index's keys


@dataclass(frozen=True)
class HoldRow:
    hold_id: str
    status: str  # as stored: held | confirmed | released | superseded (expiry is by time)
    party_size: int
    zone: str | None  # the zone asked, from the selection snapshot
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    owns_until: datetime
    table_ids: tuple[str, ...]
    policy_hash: str
    policy_version: int
    booking_id: str | None
    superseded_by: str | None
    flow: FlowRow | None = None  # the drift flow that superseded it
    replaces: str | None = None  # on a replacement: the hold whose flow made it

    def live(self, now: datetime) -> bool:
        """A held hold owns its tables until ``expires_at`` (half-open)."""
        return self.status == "held" and now < self.expires_at


@dataclass(frozen=True)
class BookingRow:
    booking_id: str
    hold_id: str
    status: str  # confirmed | cancelled
    table_ids: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    owns_until: datetime
    answer: dict[str, Any] | None = None  # the 200 body stored for repeats


@dataclass(frozen=True)
class Entry:
    """One owner in one ownership record (a table in an hour bucket)."""

    bucket: datetime
    table_id: str
    owner_id: str
    start: int
    end: int
    until: int  # 0: for ever (a booking)

    def live(self, now: datetime) -> bool:
        return self.until == 0 or now.timestamp() < self.until


@dataclass(frozen=True)
class LiveOwner:
    """A live hold, or the hold a live booking confirmed, and what it owns."""

    owner_id: str
    table_ids: tuple[str, ...]
    interval: Interval
    until: int  # when a held hold stops owning (epoch seconds); 0 for a booking


@dataclass
class TableView:
    versions: dict[int, VersionRow] = field(default_factory=dict)
    current: VersionRow | None = None
    holds: dict[str, HoldRow] = field(default_factory=dict)
    bookings: dict[str, BookingRow] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> body
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # Idempotency-Key -> item
    claimed: dict[str, str] = field(default_factory=dict)  # booking id -> the flow's original hold
    unknown: list[str] = field(default_factory=list)

    @classmethod
    def scan(cls, client: Any, table_name: str) -> TableView:
        view = cls()
        for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
            for raw in page["Items"]:
                view._add({name: _deserializer.deserialize(value) for name, value in raw.items()})
        return view

    def _add(self, item: dict[str, Any]) -> None:
        kind, _, rest = str(item["pk"]).partition("#")
        sk = str(item["sk"])
        if kind == "VENUE":
            row = VersionRow(
                int(item["policy_version"]),
                item["policy_hash"],
                VenueConfig.model_validate_json(item["config"]),
            )
            if sk == "CURRENT":
                self.current = row
            else:
                self.versions[row.version] = row
        elif kind == "HOLD":
            doc = json.loads(item["doc"])
            snapshot = doc.get("selection_snapshot") or {}
            self.holds[rest] = HoldRow(
                hold_id=doc["hold_id"],
                status=item["status"],
                party_size=doc["party_size"],
                zone=snapshot.get("zone"),
                starts_at=_instant(doc["starts_at"]),
                ends_at=_instant(doc["ends_at"]),
                expires_at=_instant(doc["expires_at"]),
                owns_until=_at(item["owns_until"]),
                table_ids=tuple(doc["table_ids"]),
                policy_hash=doc["policy_hash"],
                policy_version=doc["policy_version"],
                booking_id=item.get("booking_id"),
                superseded_by=item.get("superseded_by"),
                flow=None
                if "flow" not in item
                else FlowRow(
                    booking_id=item["booking_id"],
                    state=item["flow"],
                    attempts=int(item["flow_attempts"]),
                    replacement_id=item.get("superseded_by"),
                    key=item.get("flow_key"),
                    reason=item.get("flow_reason"),
                    indexed="open_flow" in item and "flow_due" in item,
                ),
                replaces=item.get("replaces"),
            )
        elif kind == "BOOKING" and item["status"] == "pending":
            self.claimed[rest] = item["flow"]
        elif kind == "BOOKING":
            doc = json.loads(item["doc"])
            self.bookings[rest] = BookingRow(
                booking_id=doc["booking_id"],
                hold_id=doc["hold_id"],
                status=item["status"],
                table_ids=tuple(doc["table_ids"]),
                starts_at=_instant(doc["starts_at"]),
                ends_at=_instant(doc["ends_at"]),
                owns_until=_at(item["owns_until"]),
                answer=json.loads(item["answer"]) if "answer" in item else None,
            )
        elif kind == "OWN":
            day = datetime.strptime(rest.rpartition("#")[2], "%Y-%m-%d").replace(tzinfo=UTC)
            hour, _, table_id = sk.partition("#")
            bucket = day.replace(hour=int(hour))
            for owner_id, owner in dict(item.get("owners", {})).items():
                self.entries.append(
                    Entry(
                        bucket, table_id, owner_id, int(owner["s"]), int(owner["e"]), int(owner.get("x", 0))
                    )
                )
        elif kind == "OUTBOX":
            self.events[rest] = json.loads(item["body"])
        elif kind == "IDEMPOTENCY":
            self.keys[rest] = item
        else:
            self.unknown.append(f"{item['pk']}/{sk}")

    def live_owners(self, now: datetime) -> list[LiveOwner]:
        """Held holds not past ``expires_at``, and the holds of bookings not cancelled."""
        owners = [
            LiveOwner(
                hold.hold_id,
                hold.table_ids,
                Interval(hold.starts_at, hold.owns_until),
                int(hold.expires_at.timestamp()),
            )
            for hold in self.holds.values()
            if hold.live(now)
        ]
        owners.extend(
            LiveOwner(booking.hold_id, booking.table_ids, Interval(booking.starts_at, booking.owns_until), 0)
            for booking in self.bookings.values()
            if booking.status == "confirmed"
        )
        return owners

    def busy(self, now: datetime, interval: Interval, *, ignoring: str | None = None) -> frozenset[str]:
        """The tables some live owner (other than ``ignoring``) holds during ``interval``."""
        return frozenset(
            table_id
            for owner in self.live_owners(now)
            if owner.owner_id != ignoring and owner.interval.overlaps(interval)
            for table_id in owner.table_ids
        )


def owned_slots(owner: LiveOwner) -> set[tuple[datetime, str]]:
    """The (bucket, table) records that must name ``owner``."""
    return {(bucket, table_id) for table_id in owner.table_ids for bucket in buckets(owner.interval)}


def assert_no_table_is_double_booked(view: TableView, now: datetime) -> None:
    """Live owners never overlap on a table over ``[starts_at, ends_at + buffer)``."""
    owners = view.live_owners(now)
    ids = [owner.owner_id for owner in owners]
    assert len(ids) == len(set(ids)), "a hold counts as both held and booked"
    for one, other in itertools.combinations(owners, 2):
        shared = set(one.table_ids) & set(other.table_ids)
        assert not (shared and one.interval.overlaps(other.interval)), (
            f"{one.owner_id} and {other.owner_id} both own {sorted(shared)}: "
            f"{one.interval} and {other.interval}"
        )


def assert_records_name_exactly_the_live_owners(view: TableView, now: datetime) -> None:
    """The ownership records name every live owner over its interval, and no ended one."""
    owners = {owner.owner_id: owner for owner in view.live_owners(now)}
    entries = {(entry.bucket, entry.table_id, entry.owner_id): entry for entry in view.entries}
    for owner in owners.values():
        for bucket, table_id in owned_slots(owner):
            entry = entries.get((bucket, table_id, owner.owner_id))
            assert entry is not None, f"{owner.owner_id} owns {table_id}@{bucket} with no record"
            assert (entry.start, entry.end, entry.until) == (
                epoch(owner.interval.start),
                epoch(owner.interval.end),
                owner.until,
            ), f"{owner.owner_id}'s record on {table_id}@{bucket} differs from its hold or booking"
    for entry in view.entries:
        if not entry.live(now):
            continue
        holder = owners.get(entry.owner_id)
        assert holder is not None, f"{entry.owner_id} ended, yet still owns {entry.table_id}@{entry.bucket}"
        assert (entry.bucket, entry.table_id) in owned_slots(holder), (
            f"{entry.owner_id} owns {entry.table_id}@{entry.bucket} outside its tables and times"
        )
