"""Which dead letters an operator means (reason, type, age), and how they group in a report."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from operations.dead_letters import DeadLetter

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``7d``, ``1w`` or a sum of them (``1h30m``); ``ValueError`` else."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError("a duration is a number and a unit (s, m, h, d, w), e.g. 90m, 2h, 7d, 1h30m")
    return sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta(0))


def describe_duration(span: timedelta) -> str:
    """``span`` for people, to two units at most: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


class AgeBucket(StrEnum):
    """How long letters have waited; the DLQs keep them 14 days."""

    UNDER_AN_HOUR = "<1h"
    UNDER_A_DAY = "<1d"
    UNDER_A_WEEK = "<7d"
    OLDER = ">=7d"


_BUCKET_LIMITS = (
    (timedelta(hours=1), AgeBucket.UNDER_AN_HOUR),
    (timedelta(days=1), AgeBucket.UNDER_A_DAY),
    (timedelta(days=7), AgeBucket.UNDER_A_WEEK),
)
_BUCKET_ORDER = {bucket: index for index, bucket in enumerate(AgeBucket)}


def age_bucket(age: timedelta) -> AgeBucket:
    for limit, bucket in _BUCKET_LIMITS:
        if age < limit:
            return bucket
    return AgeBucket.OLDER


@dataclass(frozen=True)
class Selection:
    """Letters matching every given criterion (no criterion: every letter).

    ``older_than`` keeps letters dead-lettered at least that long ago, ``newer_than`` those
    dead-lettered more recently (ages count from the first dead-lettering, across redrives).
    ``keys`` are dedupe keys (email) or event ids (notifications); ``message_ids`` the DLQ's own.
    """

    reasons: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    keys: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not (
            self.reasons
            or self.types
            or self.older_than is not None
            or self.newer_than is not None
            or self.keys
            or self.message_ids
        )

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        age = letter.age(now)
        return (
            (not self.reasons or letter.failure_reason in self.reasons)
            and (not self.types or letter.message_type in self.types)
            and (self.older_than is None or age >= self.older_than)
            and (self.newer_than is None or age < self.newer_than)
            and (not self.keys or letter.key in self.keys)
            and (not self.message_ids or letter.message_id in self.message_ids)
        )

    def describe(self, key_name: str = "dedupe_key") -> str:
        if self.everything:
            return "every dead letter"
        parts = []
        if self.reasons:
            parts.append("reason " + "|".join(sorted(self.reasons)))
        if self.types:
            parts.append("type " + "|".join(sorted(self.types)))
        if self.older_than is not None:
            parts.append(f"older than {describe_duration(self.older_than)}")
        if self.newer_than is not None:
            parts.append(f"newer than {describe_duration(self.newer_than)}")
        if self.keys:
            parts.append(f"{key_name} " + "|".join(sorted(self.keys)))
        if self.message_ids:
            parts.append("message id " + "|".join(sorted(self.message_ids)))
        return ", ".join(parts)


@dataclass(frozen=True)
class Group:
    """Letters sharing a reason, a type and an age bucket; ``oldest`` is the oldest one's age,
    ``expires`` how soon the first of them is deleted by SQS (when the retention is known)."""

    failure_reason: str
    message_type: str
    age: AgeBucket
    count: int
    oldest: timedelta
    expires: timedelta | None = None


def group(letters: Iterable[DeadLetter], now: datetime, retention: timedelta | None = None) -> list[Group]:
    """Letters counted by (reason, type, age bucket), ordered by reason, type, then youngest first."""
    counts: dict[tuple[str, str, AgeBucket], tuple[int, timedelta, timedelta | None]] = {}
    for letter in letters:
        age = letter.age(now)
        expires = letter.expires_in(now, retention) if retention is not None else None
        key = (letter.failure_reason, letter.message_type, age_bucket(age))
        count, oldest, soonest = counts.get(key, (0, timedelta(0), None))
        if expires is not None and (soonest is None or expires < soonest):
            soonest = expires
        counts[key] = (count + 1, max(oldest, age), soonest)
    ordered = sorted(counts.items(), key=lambda item: (item[0][0], item[0][1], _BUCKET_ORDER[item[0][2]]))
    return [
        Group(reason, type_, bucket, count, oldest, soonest)
        for (reason, type_, bucket), (count, oldest, soonest) in ordered
    ]
