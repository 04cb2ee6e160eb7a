"""Dead letters as an operator sees them: ids, age and attribute values, never a body's contents.

An email job's body carries the guest's address and name, so it is never parsed here: its type
is the ``email_type`` attribute. A drift event's body carries ids and hashes only (CONTRACT §4),
so its ``type`` is read from the body, and only when it is one of the known types.

A ``failure_reason`` or ``email_type`` is shown only when it is one the DLQ knows
(``QueueKind.reasons`` / ``QueueKind.types``), and ``attempts`` only when it is a small count;
anything else shows as ``unrecognized``. A plain-looking value is not enough: a letter SQS moved
itself keeps the publisher's attributes as they were sent, and a value such as a name or a phone
number would pass any character check.
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
#: What is shown instead of a value the DLQ does not know: the value itself is never printed.
UNRECOGNIZED = "unrecognized"

_LABEL = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
#: ``attempts`` is shown when it is a count of at most three digits (a phone number is not).
_ATTEMPTS = re.compile(r"^[0-9]{1,3}$")

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
        if value is None:
            return "-"
        return str(value) if _ATTEMPTS.fullmatch(str(value)) else UNRECOGNIZED


def label(value: str | None, missing: str = UNKNOWN_TYPE) -> str:
    """``value`` when it is a plain identifier, ``missing`` when absent, else ``unrecognized``.

    Only for values that come from the service's own code paths (the local inbox page); a DLQ
    attribute is shown through ``known`` instead.
    """
    if value is None or value == "":
        return missing
    return value if _LABEL.fullmatch(value) else UNRECOGNIZED


def known(value: str | int | None, allowed: tuple[str, ...], missing: str) -> str:
    """``value`` when it is one of ``allowed``, ``missing`` when absent, else ``unrecognized``."""
    if value is None or value == "":
        return missing
    text = str(value)
    return text if text in allowed else UNRECOGNIZED


def failure_reason_of(kind: QueueKind, attributes: Mapping[str, str | int]) -> str:
    """The letter's ``failure_reason``: ``none`` when absent (SQS moved it itself)."""
    return known(attributes.get("failure_reason"), kind.reasons, missing=NO_REASON)


def message_type_of(kind: QueueKind, attributes: Mapping[str, str | int], body: str) -> str:
    """The letter's type: the ``email_type`` attribute, or a drift event's ``type`` field."""
    if kind is QueueKind.EMAIL:
        # Never the body: it holds the guest's address and name.
        return known(attributes.get("email_type"), kind.types, missing=UNKNOWN_TYPE)
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
