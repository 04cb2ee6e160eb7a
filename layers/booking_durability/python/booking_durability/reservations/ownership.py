"""Who owns which table when: the records that keep two live owners off one table.

Ownership is kept per table and per hour bucket (``intervals.OWNERSHIP_BUCKET_MINUTES``): one
record per (bucket, table) maps each owner (a hold, or the hold a booking confirmed) to the
half-open interval it owns and, for a ``held`` hold, the instant it stops owning it. A record
carries a version: a new owner is written only if the record is still at the version read, so
two writers that both saw a table free cannot both take it. An owner past its expiry owns
nothing, decided here by time (TTL only cleans up later), and is dropped on the next write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from booking_durability.reservations.intervals import Interval, buckets


@dataclass(frozen=True)
class Owner:
    """One owner's claim in a record: ``[start, end)`` in epoch seconds, ``until`` 0 for ever."""

    start: int
    end: int
    until: int = 0

    def live(self, now: datetime) -> bool:
        return self.until == 0 or now.timestamp() < self.until

    def overlaps(self, interval: Interval) -> bool:
        return self.start < interval.end.timestamp() and interval.start.timestamp() < self.end


@dataclass(frozen=True)
class Slot:
    """One ownership record's identity: a table in an hour bucket."""

    bucket: datetime
    table_id: str


@dataclass(frozen=True)
class SlotRecord:
    """A record as read: ``version`` None when it does not exist yet."""

    slot: Slot
    version: int | None = None
    owners: Mapping[str, Owner] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotWrite:
    """The record as it must be written, if it is still at ``expected_version``."""

    slot: Slot
    expected_version: int | None
    owners: Mapping[str, Owner]


def slots(table_ids: Iterable[str], interval: Interval) -> list[Slot]:
    return [Slot(bucket, table_id) for table_id in sorted(table_ids) for bucket in buckets(interval)]


def busy_tables(
    records: Iterable[SlotRecord], interval: Interval, now: datetime, *, ignoring: str | None = None
) -> frozenset[str]:
    """Tables some live owner (other than ``ignoring``) holds during ``interval``."""
    return frozenset(
        record.slot.table_id
        for record in records
        for owner_id, owner in record.owners.items()
        if owner_id != ignoring and owner.live(now) and owner.overlaps(interval)
    )


def claim(
    records: Mapping[Slot, SlotRecord],
    table_ids: Iterable[str],
    interval: Interval,
    owner_id: str,
    expires_at: datetime,
    now: datetime,
    *,
    releasing: str | None = None,
) -> list[SlotWrite]:
    """The writes that give ``owner_id`` the tables ``table_ids`` over ``interval``, owned until
    ``expires_at`` (and take ``releasing``'s away).

    Slots only ``releasing`` had are written too, without it, so a replaced hold frees what its
    replacement does not take.
    """
    owner = Owner(epoch(interval.start), epoch(interval.end), epoch(expires_at))
    wanted = dict.fromkeys(slots(table_ids, interval), (owner_id, owner))
    return _rewrite(records, wanted, {owner_id, releasing}, now)


def release(records: Mapping[Slot, SlotRecord], owner_id: str, now: datetime) -> list[SlotWrite]:
    """The writes that take ``owner_id`` off every record it is on."""
    return _rewrite(records, {}, {owner_id}, now)


def _rewrite(
    records: Mapping[Slot, SlotRecord],
    adding: Mapping[Slot, tuple[str, Owner]],
    dropping: set[str | None],
    now: datetime,
) -> list[SlotWrite]:
    # Expired owners are dropped from every record written.
    touched = set(adding) | {slot for slot, record in records.items() if dropping & set(record.owners)}
    writes = []
    for slot in sorted(touched, key=lambda s: (s.bucket, s.table_id)):
        record = records.get(slot, SlotRecord(slot))
        owners = {
            other: held for other, held in record.owners.items() if held.live(now) and other not in dropping
        }
        if slot in adding:
            owner_id, owner = adding[slot]
            owners[owner_id] = owner
        writes.append(SlotWrite(slot, record.version, owners))
    return writes


def epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def pause_after_lost_race(round_: int) -> None:
    """A little jitter, growing with each round, so racing writers do not collide again."""
    time.sleep(random.uniform(0, 0.01 * (round_ + 1)))


def rounds(limit: int, pause: Callable[[int], None] = pause_after_lost_race) -> Iterator[int]:
    """The rounds of a read, decide and write loop, at most ``limit``.

    A round after the first follows a write that lost a race, so ``pause`` (told the number of
    the round that lost) comes before it; the loop leaves by ``return`` once a write lands.
    """
    for round_ in range(limit):
        if round_:
            pause(round_ - 1)
        yield round_
