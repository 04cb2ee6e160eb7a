"""Dead letters as an operator sees them: ids, ages and attribute values, never a body's contents.

An email job's body carries the guest's address and name, so it is never parsed here: its type
is the ``email_type`` attribute and its dedupe key the ``dedupe_key`` attribute. A drift event's
body carries ids and hashes only, so its ``type`` and ``event_id`` are read from the body, each
only when it is a valid value of its kind.

Every attribute is the sender's text, and a letter SQS moved itself keeps the publisher's
attributes as they were sent, so nothing is shown as it came: ``failure_reason`` and
``email_type`` only when they are values the DLQ knows (``QueueKind.reasons`` /
``QueueKind.types``), ``attempts`` only when it is a count of at most three digits, a dedupe key
only when it has the dedupe key's form, ``first_dead_lettered_at`` only when it is an instant no
later than the letter's arrival; anything else shows as ``unrecognized`` (or, for the time, is
replaced by the arrival). A plain-looking value is not enough: a name or a phone number would
pass any character check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import get_args

from booking_durability.emails.models import (
    MAX_REVISION,
    SCHEMA_ID,
    EmailType,
    FailureReason,
    PolicyDriftData,
)
from booking_durability.notifications.failure_policy import NotificationFailureReason
from booking_durability.queue_attributes import attempts_of
from booking_durability.times import iso, parse_instant
from booking_durability.validation import ID_CHARACTERS, ID_MAX_LENGTH, UUID_PATTERN

#: A letter without ``failure_reason``: SQS's own redrive after ``maxReceiveCount`` receives
#: (the consumer crashed or timed out on it every time), not the consumer's decision.
NO_REASON = "none"
#: A letter whose type cannot be told: no ``email_type`` (a body that did not parse), or a
#: notification body that is not a known drift event.
UNKNOWN_TYPE = "unknown"
#: What is shown instead of a value the DLQ does not know: the value itself is never printed.
UNRECOGNIZED = "unrecognized"
#: Shown for a value the letter does not carry (no attempts, no dedupe key).
ABSENT = "-"

_LABEL = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
#: ``{booking_id}#{email_type}#{revision}``, the booking id as the email request allows it.
_UUID = re.compile(UUID_PATTERN)
_DEDUPE_KEY = re.compile(rf"^({ID_CHARACTERS}{{1,{ID_MAX_LENGTH}}})#([a-z_]{{1,64}})#(0|[1-9][0-9]{{0,9}})$")
#: How far ``first_dead_lettered_at`` (the consumer's clock) may lie after the letter's arrival
#: (SQS's clock) and still be believed.
CLOCK_SKEW = timedelta(minutes=5)

NOTIFICATION_TYPES: tuple[str, ...] = tuple(get_args(PolicyDriftData.model_fields["type"].annotation))

_PERMANENT: dict[str, frozenset[str]] = {
    # A redrive fails the same way unless the cause was fixed first.
    "email": frozenset(
        {
            FailureReason.INVALID_JSON,
            FailureReason.SCHEMA_INVALID,
            FailureReason.RENDER_FAILED,
            FailureReason.PROVIDER_REJECTED,
        }
    ),
    "notifications": frozenset(
        {NotificationFailureReason.WEBHOOK_REJECTED, NotificationFailureReason.INVALID_EVENT}
    ),
}


class QueueKind(StrEnum):
    """The two DLQs, each redriven to the queue it came from."""

    EMAIL = "email"
    NOTIFICATIONS = "notifications"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every ``failure_reason`` a letter of this DLQ can carry, and ``none``."""
        members = FailureReason if self is QueueKind.EMAIL else NotificationFailureReason
        return (*(reason.value for reason in members), NO_REASON)

    @property
    def selectable_reasons(self) -> tuple[str, ...]:
        """What ``--reason`` accepts: every reason, and ``unrecognized`` for unreadable ones."""
        return (*self.reasons, UNRECOGNIZED)

    @property
    def permanent_reasons(self) -> frozenset[str]:
        """Reasons a redrive takes only when asked explicitly (``--force``): the letter fails the
        same way again unless its cause was fixed."""
        return _PERMANENT[self.value]

    @property
    def types(self) -> tuple[str, ...]:
        """Every type a letter of this DLQ can show, ``unknown`` included."""
        known = [t.value for t in EmailType] if self is QueueKind.EMAIL else list(NOTIFICATION_TYPES)
        return (*known, UNKNOWN_TYPE)

    @property
    def selectable_types(self) -> tuple[str, ...]:
        """What ``--type`` accepts: every type, and ``unrecognized`` for unreadable ones."""
        return (*self.types, UNRECOGNIZED) if self is QueueKind.EMAIL else self.types

    @property
    def key_name(self) -> str:
        """What identifies one letter's email or event across logs and tools."""
        return "dedupe_key" if self is QueueKind.EMAIL else "event_id"


@dataclass(frozen=True)
class DeadLetter:
    """One message of a DLQ. ``body`` and ``handle`` never appear in a repr (nor in output)."""

    message_id: str
    #: SQS's ``SentTimestamp``: when it reached the DLQ (for a letter SQS moved itself, when it
    #: was first published); SQS deletes it ``MessageRetentionPeriod`` after this.
    sent_at: datetime
    failure_reason: str
    message_type: str
    #: The contract's attributes as received (``attempts`` an int when numeric).
    attributes: Mapping[str, str | int]
    body: str = field(repr=False, compare=False)
    handle: str = field(repr=False, compare=False)
    #: Its dedupe key (email) or event id (notification) when valid, ``unrecognized`` when not,
    #: ``-`` when it carries none.
    key: str = ABSENT
    #: When it was first dead-lettered (a valid ``first_dead_lettered_at``), if known: a redrive
    #: sends a new message, so ``sent_at`` starts again with each.
    first_dead_lettered_at: datetime | None = None

    @property
    def dead_since(self) -> datetime:
        """When it was first dead-lettered, or else when it reached the DLQ."""
        return self.first_dead_lettered_at or self.sent_at

    def age(self, now: datetime) -> timedelta:
        """How long it has been dead-lettered, across redrives (never negative)."""
        return max(now - self.dead_since, timedelta(0))

    def expires_in(self, now: datetime, retention: timedelta) -> timedelta:
        """How long before SQS deletes it (never negative)."""
        return max(self.sent_at + retention - now, timedelta(0))

    @property
    def attempts(self) -> str:
        value = self.attributes.get("attempts")
        if value is None:
            return ABSENT
        count = attempts_of(str(value))
        return UNRECOGNIZED if count is None else str(count)


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
    """The letter's type: the ``email_type`` attribute (whether or not the body validated), or a
    drift event's ``type`` field."""
    if kind is QueueKind.EMAIL:
        # Never the body: it holds the guest's address and name.
        return known(attributes.get("email_type"), kind.types, missing=UNKNOWN_TYPE)
    kind_of_event = _event_field(body, "type")
    return kind_of_event if kind_of_event in NOTIFICATION_TYPES else UNKNOWN_TYPE


def key_of(kind: QueueKind, attributes: Mapping[str, str | int], body: str) -> str:
    """The letter's dedupe key (the ``dedupe_key`` attribute) or, for a drift event, the
    ``event_id`` of its body: the value when valid, ``unrecognized`` when not, ``-`` when none."""
    if kind is QueueKind.EMAIL:
        value = attributes.get("dedupe_key")
        if value is None or value == "":
            return ABSENT
        return str(value) if is_dedupe_key(str(value)) else UNRECOGNIZED
    event_id = _event_field(body, "event_id")
    if event_id is None:
        return ABSENT
    return event_id if isinstance(event_id, str) and is_uuid(event_id) else UNRECOGNIZED


def is_dedupe_key(text: str) -> bool:
    """``{booking_id}#{email_type}#{revision}`` with a booking id, type and revision the email
    request allows."""
    match = _DEDUPE_KEY.fullmatch(text)
    return (
        match is not None
        and match.group(2) in {t.value for t in EmailType}
        and int(match.group(3)) <= MAX_REVISION
    )


def is_uuid(text: str) -> bool:
    """A UUID as the notifier writes an event id and SQS a message id (hyphenated)."""
    return _UUID.fullmatch(text) is not None


def first_dead_lettered_at_of(attributes: Mapping[str, str | int], sent_at: datetime) -> datetime | None:
    """The ``first_dead_lettered_at`` attribute when it is an instant (RFC 3339, years 2000 to
    2099) no later than the letter's arrival ``sent_at`` (give or take ``CLOCK_SKEW``)."""
    value = attributes.get("first_dead_lettered_at")
    moment = parse_instant(value) if isinstance(value, str) else None
    return moment if moment is not None and moment <= sent_at + CLOCK_SKEW else None


def _event_field(body: str, name: str) -> object:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event.get(name) if isinstance(event, dict) else None


def needs_force(kind: QueueKind, letter: DeadLetter) -> bool:
    """Whether a redrive takes ``letter`` only when asked explicitly."""
    return letter.failure_reason in kind.permanent_reasons


def redriven_attributes(kind: QueueKind, letter: DeadLetter) -> dict[str, str | int]:
    """The attributes of the copy sent back to the source queue: those the letter carries with a
    value the DLQ recognises, but ``failure_reason``, and ``first_dead_lettered_at`` set to when
    the letter was first dead-lettered.

    ``email_type`` and ``schema`` are the producer's and stay. ``attempts`` stays too: the
    consumer counts delivery attempts in the ledger and only passes this one on when it
    dead-letters a body that does not parse. ``dedupe_key`` stays, so a copy SQS moves itself
    can still be traced. ``failure_reason`` goes: the copy has not failed. The consumer keeps a
    valid ``first_dead_lettered_at`` when it dead-letters the copy again, so a letter's age
    counts from its first dead-lettering, whatever the redrives in between. A value the DLQ does
    not recognise is the sender's text and is not passed on.
    """
    given = letter.attributes
    attributes: dict[str, str | int] = {"first_dead_lettered_at": iso(letter.dead_since)}
    if letter.attempts not in (ABSENT, UNRECOGNIZED):
        attributes["attempts"] = int(letter.attempts)
    if given.get("schema") == SCHEMA_ID:
        attributes["schema"] = SCHEMA_ID
    if kind is QueueKind.EMAIL:
        if letter.message_type in kind.types and letter.message_type != UNKNOWN_TYPE:
            attributes["email_type"] = letter.message_type
        if letter.key not in (ABSENT, UNRECOGNIZED):
            attributes["dedupe_key"] = letter.key
    return attributes
