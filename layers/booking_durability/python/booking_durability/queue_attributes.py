"""The message attributes a consumer reads from a received SQS message
(docs/reference/queue-message.md#message-attributes), validated.

A message's attributes are whatever its sender set: the service's own re-queued and
dead-lettered copies, but also any producer, and an operator's redrive. So each value is checked
against what it may be before anything logs it or sends it on, and anything else is dropped:
``attempts`` a decimal count 0..999 (a phone number is digits too), ``failure_reason`` and
``email_type`` one of the values the queue knows, ``first_dead_lettered_at`` an RFC 3339 instant
with a year from 2000 to 2099 and an offset within ±14:00.

Shared by the email consumer and the drift notifier, and kept free of either's imports.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: The largest ``attempts`` written or read: a count of up to six digits. Redrives add to a key's
#: count for ever, so three digits are not enough; a phone number planted there has more than six.
MAX_ATTEMPTS = 999_999
_ATTEMPTS = re.compile(r"0|[1-9][0-9]{0,5}")
# RFC 3339 date-time, ASCII digits only (``\d`` would take any script's digits).
_INSTANT = re.compile(
    r"(?P<date>(?P<year>[0-9]{4})-[0-9]{2}-[0-9]{2})[Tt](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?P<fraction>\.[0-9]{1,9})?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_MAX_OFFSET = timedelta(hours=14)


@dataclass(frozen=True)
class ReceivedAttributes:
    """A received message's attributes, each None when absent or not a value it may take."""

    attempts: int | None = None
    failure_reason: str | None = None
    email_type: str | None = None
    first_dead_lettered_at: datetime | None = None


def received_attributes(
    raw: Mapping[str, Any], *, reasons: Collection[str], email_types: Collection[str] = ()
) -> ReceivedAttributes:
    """The attributes of an SQS event record (``messageAttributes``: name → ``{"stringValue"}``),
    each validated; ``reasons`` and ``email_types`` are the values this queue's messages carry."""

    def value(name: str) -> str | None:
        attribute = raw.get(name)
        text = attribute.get("stringValue") if isinstance(attribute, Mapping) else None
        return text if isinstance(text, str) else None

    return ReceivedAttributes(
        attempts=attempts_of(value("attempts")),
        failure_reason=one_of(value("failure_reason"), reasons),
        email_type=one_of(value("email_type"), email_types),
        first_dead_lettered_at=instant_of(value("first_dead_lettered_at")),
    )


def receive_count_of(text: str | None) -> int:
    """SQS's ``ApproximateReceiveCount`` (SQS sets it, not the sender); 1 when unreadable."""
    return int(text) if text is not None and re.fullmatch(r"[0-9]{1,9}", text) and int(text) > 0 else 1


def attempts_of(text: str | None) -> int | None:
    """A decimal count 0..``MAX_ATTEMPTS`` written without leading zeros, else None."""
    return int(text) if text is not None and _ATTEMPTS.fullmatch(text) else None


def one_of(text: str | None, allowed: Collection[str]) -> str | None:
    return text if text is not None and text in allowed else None


def instant_of(text: str | None) -> datetime | None:
    """An RFC 3339 instant with a year 2000..2099 and an offset within ±14:00, else None."""
    if text is None:
        return None
    match = _INSTANT.fullmatch(text)
    if match is None or not 2000 <= int(match["year"]) <= 2099:
        return None
    fraction = (match["fraction"] or "")[:7]  # to the microsecond
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}{fraction}{offset}")
    except ValueError:  # no such day, hour or offset
        return None
    shift = moment.utcoffset()
    if shift is None or abs(shift) > _MAX_OFFSET:
        return None
    return moment.astimezone(UTC)
