"""When a hold or booking owns its tables: half-open intervals and the hour buckets they touch.

A live hold or booking owns its tables over ``[starts_at, ends_at + buffer_minutes)``
(docs/reference/http-api.md#ownership-intervals), so the next one may start exactly when a buffer
ends. Ownership is recorded per table and per bucket; two owners that overlap always share a bucket,
whatever either policy's slot length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# A constant, not the policy's slot length: owners recorded before and after a policy change
# would otherwise use bucket sizes whose keys never collide. An hour keeps the longest owner
# (480-minute hold + 120-minute buffer) within 11 buckets.
OWNERSHIP_BUCKET_MINUTES = 60

_BUCKET = timedelta(minutes=OWNERSHIP_BUCKET_MINUTES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must carry a time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Interval:
    """The half-open interval ``[start, end)`` of two aware instants, kept in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start, end = _utc(self.start), _utc(self.end)
        if start >= end:
            raise ValueError("an interval must end after it starts")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def overlaps(self, other: Interval) -> bool:
        """True when some instant lies in both; touching ends (one's end is the other's start) do not."""
        return self.start < other.end and other.start < self.end


def falls_on_slot(moment: datetime, slot_minutes: int) -> bool:
    """Whether ``moment`` is a whole number of ``slot_minutes`` after the epoch, in UTC.

    Slots are counted in UTC, not on a local clock: under a +05:45 offset, 21:45 is on the hour.
    """
    return not (_utc(moment) - _EPOCH) % timedelta(minutes=slot_minutes)


def ownership_interval(starts_at: datetime, ends_at: datetime, buffer_minutes: int) -> Interval:
    """What a hold or booking owns its tables over: ``[starts_at, ends_at + buffer)``."""
    return Interval(starts_at, ends_at + timedelta(minutes=buffer_minutes))


def buckets(interval: Interval) -> list[datetime]:
    """The UTC starts of every ownership bucket the interval touches, earliest first.

    Buckets are aligned to the epoch (so to the hour); an interval ending exactly on a bucket
    boundary does not touch the bucket that starts there.
    """
    first = _EPOCH + (interval.start - _EPOCH) // _BUCKET * _BUCKET
    starts = []
    bucket = first
    while bucket < interval.end:
        starts.append(bucket)
        bucket += _BUCKET
    return starts
