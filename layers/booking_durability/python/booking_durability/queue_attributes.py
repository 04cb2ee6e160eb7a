"""The message attributes a consumer reads from a received SQS message
(docs/reference/queue-message.md#message-attributes), validated.

A message's attributes are whatever its sender set: the service's own re-queued and
dead-lettered copies, but also any producer, and an operator's redrive. So each value is checked
against what it may be before anything logs it or sends it on, and anything else is dropped:
``attempts`` a decimal count 0..999999 (a phone number has more digits), ``failure_reason`` and
``email_type`` one of the values the queue knows, ``first_dead_lettered_at`` an RFC 3339 instant
with a year from 2000 to 2099 and an offset within ±14:00.

Shared by the email consumer and the drift notifier, and kept free of either's imports; an
instant is read by the rule every model reads one by (``times.parse_instant``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from booking_durability.times import parse_instant

#: The largest ``attempts`` written or read: a count of up to six digits. Redrives add to a key's
#: count for ever, so three digits are not enough; a phone number planted there has more than six.
MAX_ATTEMPTS = 999_999
_ATTEMPTS = re.compile(r"0|[1-9][0-9]{0,5}")
_RECEIVE_COUNT = re.compile(r"[0-9]{1,9}")


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
    return int(text) if text is not None and _RECEIVE_COUNT.fullmatch(text) and int(text) > 0 else 1


def attempts_of(text: str | None) -> int | None:
    """A decimal count 0..``MAX_ATTEMPTS`` written without leading zeros, else None."""
    return int(text) if text is not None and _ATTEMPTS.fullmatch(text) else None


def one_of(text: str | None, allowed: Collection[str]) -> str | None:
    return text if text is not None and text in allowed else None


def instant_of(text: str | None) -> datetime | None:
    """An RFC 3339 instant with a year 2000..2099 and an offset within ±14:00, in UTC, else None."""
    return None if text is None else parse_instant(text)
