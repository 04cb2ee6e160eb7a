"""Ownership intervals and the hour buckets they are recorded under
(docs/reference/http-api.md#ownership-intervals)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_durability.reservations.intervals import (
    OWNERSHIP_BUCKET_MINUTES,
    Interval,
    buckets,
    falls_on_slot,
    ownership_interval,
)

T = datetime(2026, 12, 24, 20, 0, tzinfo=UTC)


def _minutes(start: int, end: int) -> Interval:
    return Interval(T + timedelta(minutes=start), T + timedelta(minutes=end))


def test_ownership_runs_from_start_to_end_plus_buffer() -> None:
    owned = ownership_interval(T, T + timedelta(minutes=90), buffer_minutes=10)
    assert (owned.start, owned.end) == (T, T + timedelta(minutes=100))


def test_the_next_owner_may_start_when_the_buffer_ends() -> None:
    # Given a booking 20:00-21:30 with a 10-minute buffer
    first = ownership_interval(T, T + timedelta(minutes=90), buffer_minutes=10)
    # Then one starting at 21:40 does not overlap it, one starting at 21:35 does
    assert not first.overlaps(_minutes(100, 190))
    assert not _minutes(100, 190).overlaps(first)
    assert first.overlaps(_minutes(95, 190))
    assert _minutes(95, 190).overlaps(first)


@pytest.mark.parametrize(
    ("other", "overlaps"),
    [
        (_minutes(-30, 0), False),  # ends where it starts
        (_minutes(-30, 1), True),
        (_minutes(10, 20), True),  # inside
        (_minutes(-10, 70), True),  # around
        (_minutes(59, 90), True),
        (_minutes(60, 90), False),  # starts where it ends
    ],
)
def test_intervals_are_half_open(other: Interval, overlaps: bool) -> None:
    assert _minutes(0, 60).overlaps(other) is overlaps


def test_intervals_are_kept_in_utc_and_compare_as_instants() -> None:
    madrid = timezone(timedelta(hours=1))
    interval = Interval(
        datetime(2026, 12, 24, 21, 0, tzinfo=madrid), datetime(2026, 12, 24, 22, 0, tzinfo=madrid)
    )
    assert interval == _minutes(0, 60)
    assert interval.start.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end"),
    [(T, T), (T, T - timedelta(minutes=1)), (T.replace(tzinfo=None), T + timedelta(hours=1))],
)
def test_empty_reversed_or_naive_intervals_are_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match=r"interval|time zone"):
        Interval(start, end)


def test_buckets_are_the_hours_an_interval_touches() -> None:
    # Given 20:15 to 21:45
    touched = buckets(_minutes(15, 105))
    # Then it is recorded under the 20:00 and 21:00 buckets
    assert touched == [T, T + timedelta(hours=1)]


def test_an_interval_ending_on_a_boundary_does_not_touch_the_next_bucket() -> None:
    assert buckets(_minutes(0, 60)) == [T]
    assert buckets(_minutes(30, 120)) == [T, T + timedelta(hours=1)]


def test_buckets_are_utc_hours_whatever_the_offset() -> None:
    # Given a start at 21:45 in a +05:45 zone, that is 16:00 UTC
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    start = datetime(2026, 12, 24, 21, 45, tzinfo=kathmandu)
    touched = buckets(Interval(start, start + timedelta(minutes=30)))
    assert touched == [datetime(2026, 12, 24, 16, 0, tzinfo=UTC)]


@pytest.mark.parametrize(("offset_minutes", "expected"), [(0, 10), (5, 11), (59, 11)])
def test_the_longest_owner_touches_at_most_11_buckets(offset_minutes: int, expected: int) -> None:
    # Given a 480-minute hold with a 120-minute buffer, aligned to the hour or not
    start = T + timedelta(minutes=offset_minutes)
    owned = ownership_interval(start, start + timedelta(minutes=480), buffer_minutes=120)
    # Then it is recorded under at most 11 buckets
    assert len(buckets(owned)) == expected


_starts = st.integers(min_value=0, max_value=3 * 24 * 60 * 60).map(lambda s: T + timedelta(seconds=s))
_lengths = st.integers(min_value=1, max_value=600 * 60).map(lambda s: timedelta(seconds=s))


@settings(max_examples=200, deadline=None)
@given(start=_starts, length=_lengths, other_start=_starts, other_length=_lengths)
def test_overlapping_owners_always_share_a_bucket(
    start: datetime, length: timedelta, other_start: datetime, other_length: timedelta
) -> None:
    # Given any two owners (whatever slot grid either policy used)
    one, other = Interval(start, start + length), Interval(other_start, other_start + other_length)
    # Then if they overlap, they meet in some bucket, so one conditional write sees the other
    if one.overlaps(other):
        assert set(buckets(one)) & set(buckets(other))


@settings(max_examples=200, deadline=None)
@given(start=_starts, length=_lengths)
def test_buckets_cover_the_interval_exactly(start: datetime, length: timedelta) -> None:
    interval = Interval(start, start + length)
    touched = buckets(interval)
    size = timedelta(minutes=OWNERSHIP_BUCKET_MINUTES)
    # Hour-aligned, consecutive, and each one really shares an instant with the interval
    assert all(b.minute == b.second == b.microsecond == 0 and b.tzinfo is UTC for b in touched)
    assert all(later - earlier == size for earlier, later in itertools.pairwise(touched))
    assert touched[0] <= interval.start < touched[0] + size
    assert touched[-1] < interval.end <= touched[-1] + size
    assert all(Interval(b, b + size).overlaps(interval) for b in touched)


@pytest.mark.parametrize(
    ("moment", "slot_minutes", "on_slot"),
    [
        (T + timedelta(minutes=45), 15, True),
        (T + timedelta(minutes=45), 30, False),
        (T + timedelta(minutes=45, seconds=1), 15, False),
        (T + timedelta(microseconds=1), 5, False),
        (datetime(2026, 12, 24, 21, 45, tzinfo=timezone(timedelta(hours=5, minutes=45))), 60, True),
    ],
)
def test_slots_are_counted_in_utc_minutes_since_the_epoch(
    moment: datetime, slot_minutes: int, on_slot: bool
) -> None:
    assert falls_on_slot(moment, slot_minutes) is on_slot
