"""Dead letters as an operator sees them: ids, age and attribute values, never a body's contents.

An email job's body carries the guest's address and name, so it is never parsed here: its type
is the ``email_type`` attribute. A drift event's body carries ids and hashes only (CONTRACT §4),
so its ``type`` is read from the body, and only when it is one of the known types. Every value
shown passes ``label``, so even an attribute someone set by hand cannot print free text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import get_args

from booking_durability.emails.models import EmailType, FailureReason, PolicyDriftData
from booking_durability.notifications.failure_policy import NotificationFailureReason

#: A letter without ``failure_reason``: SQS's own redrive after ``maxReceiveCount`` receives
#: (the consumer crashed or timed out on it every time), not the consumer's decision.
NO_REASON = "none"
#: A letter whose type cannot be told: no ``email_type`` (a body that did not parse), or a
#: notification body that is not a known drift event.
UNKNOWN_TYPE = "unknown"
#: A value that is not a plain identifier: never printed.
UNRECOGNIZED = "unrecognized"

_LABEL = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")

NOTIFICATION_TYPES: tuple[str, ...] = tuple(get_args(PolicyDriftData.model_fields["type"].annotation))


class QueueKind(StrEnum):
    """The two DLQs, each redriven to the queue it came from."""

    EMAIL = "email"
    NOTIFICATIONS = "notifications"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every ``failure_reason`` a letter of this DLQ can carry (CONTRACT §2, §4), and ``none``."""
        members = FailureReason if self is QueueKind.EMAIL else NotificationFailureReason
        return (*(reason.value for reason in members), NO_REASON)

    @property
    def types(self) -> tuple[str, ...]:
        """Every type a letter of this DLQ can show, ``unknown`` included."""
        known = [t.value for t in EmailType] if self is QueueKind.EMAIL else list(NOTIFICATION_TYPES)
        return (*known, UNKNOWN_TYPE)


@dataclass(frozen=True)
class DeadLetter:
    """One message of a DLQ. ``body`` and ``handle`` never appear in a repr (nor in output)."""

    message_id: str
    sent_at: datetime
    failure_reason: str
    message_type: str
    #: The contract's attributes as received (``attempts`` an int when numeric).
    attributes: Mapping[str, str | int]
    body: str = field(repr=False, compare=False)
    handle: str = field(repr=False, compare=False)

    def age(self, now: datetime) -> timedelta:
        """How long it has been in the DLQ (since SQS's ``SentTimestamp``; never negative)."""
        return max(now - self.sent_at, timedelta(0))

    @property
    def attempts(self) -> str:
        value = self.attributes.get("attempts")
        return label(str(value)) if value is not None else "-"


def label(value: str | None, missing: str = UNKNOWN_TYPE) -> str:
    """``value`` when it is a plain identifier, ``missing`` when absent, else ``unrecognized``."""
    if value is None or value == "":
        return missing
    return value if _LABEL.fullmatch(value) else UNRECOGNIZED


def failure_reason_of(attributes: Mapping[str, str | int]) -> str:
    value = attributes.get("failure_reason")
    return label(None if value is None else str(value), missing=NO_REASON)


def message_type_of(kind: QueueKind, attributes: Mapping[str, str | int], body: str) -> str:
    """The letter's type: the ``email_type`` attribute, or a drift event's ``type`` field."""
    if kind is QueueKind.EMAIL:
        # Never the body: it holds the guest's address and name.
        value = attributes.get("email_type")
        return label(None if value is None else str(value))
    try:
        event = json.loads(body)
    except ValueError:
        return UNKNOWN_TYPE
    kind_of_event = event.get("type") if isinstance(event, dict) else None
    return kind_of_event if kind_of_event in NOTIFICATION_TYPES else UNKNOWN_TYPE


def redriven_attributes(letter: DeadLetter) -> dict[str, str | int]:
    """The attributes of the copy sent back to the source queue: all but ``failure_reason``.

    ``email_type`` and ``schema`` are the producer's and stay. ``attempts`` stays too: the
    consumer counts delivery attempts in the ledger and only passes this one on when it
    dead-letters a body that does not parse. ``failure_reason`` goes: the copy has not failed.
    """
    return {name: value for name, value in letter.attributes.items() if name != "failure_reason"}
