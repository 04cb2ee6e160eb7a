"""Holds (``POST /v1/holds``): the request, its timing rules, and the hold itself
(docs/reference/http-api.md#holds).

A hold owns its tables while it is ``held`` and not past ``expires_at``, or once ``confirmed``.
Imported holds (docs/reference/importing-holds.md#what-an-import-stores) may lack ``policy_hash``,
``policy_version`` and the snapshot.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from booking_durability.reservations.allocator import Allocation
from booking_durability.reservations.intervals import falls_on_slot
from booking_durability.reservations.refusals import HoldTimingInvalid
from booking_durability.reservations.venues import (
    MAX_DURATION_MINUTES,
    MAX_SEATS,
    MAX_TABLES,
    SeatingPolicy,
    TableId,
    VenueId,
    ZoneName,
)
from booking_durability.times import Instant, UtcInstant
from booking_durability.validation import ID_MAX_LENGTH, ID_PATTERN, JsonInteger, PolicyHash

_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

MAX_DAYS_AHEAD = 365

HoldId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
# Wider than any policy's max_party_size: a party above it is a 409 party_too_large, not a 422.
PartySize = Annotated[int, JsonInteger(ge=1, le=MAX_SEATS)]


class HoldStatus(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


class HoldRequest(BaseModel):
    """The body of ``POST /v1/holds``."""

    model_config = _STRICT

    venue_id: VenueId
    party_size: PartySize
    starts_at: Instant
    # The slot rule depends on the venue: check_hold_timing applies it.
    duration_minutes: Annotated[int, JsonInteger(ge=1, le=MAX_DURATION_MINUTES)] | None = None
    zone: ZoneName | None = None


def check_hold_timing(
    request: HoldRequest, policy: SeatingPolicy, now: datetime
) -> tuple[datetime, datetime]:
    """The hold's ``(starts_at, ends_at)`` in UTC, or ``HoldTimingInvalid`` listing every rule broken.

    ``starts_at`` must fall on the policy's slots (whole UTC minutes since the epoch, a multiple
    of ``slot_minutes``), be after ``now`` and at most 365 days after it. The duration
    (``policy.default_duration_minutes`` when not given) must be a multiple of ``slot_minutes``
    and at most 480 minutes.
    """
    now = now.astimezone(UTC)
    starts_at = request.starts_at.astimezone(UTC)
    slot = policy.slot_minutes
    errors: list[dict[str, Any]] = []

    if not falls_on_slot(starts_at, slot):
        errors.append(_error("starts_at", f"starts_at must fall on the venue's {slot}-minute slots"))
    if starts_at <= now:
        errors.append(_error("starts_at", "starts_at must be in the future"))
    elif starts_at > now + timedelta(days=MAX_DAYS_AHEAD):
        errors.append(_error("starts_at", f"starts_at must be at most {MAX_DAYS_AHEAD} days ahead"))

    duration = (
        policy.default_duration_minutes if request.duration_minutes is None else request.duration_minutes
    )
    if duration > MAX_DURATION_MINUTES:
        errors.append(_error("duration_minutes", f"duration_minutes must be at most {MAX_DURATION_MINUTES}"))
    elif duration % slot and request.duration_minutes is None:
        # The policy accepts any default duration; say whose value does not fit.
        errors.append(
            _error("duration_minutes", f"the venue's default duration does not fit its {slot}-minute slots")
        )
    elif duration % slot:
        errors.append(_error("duration_minutes", f"duration_minutes must be a multiple of {slot}"))

    if errors:
        raise HoldTimingInvalid(errors)
    return starts_at, starts_at + timedelta(minutes=duration)


def _error(field: str, msg: str) -> dict[str, Any]:
    return {"loc": [field], "msg": msg}


class SnapshotTable(BaseModel):
    model_config = _STRICT

    id: TableId
    capacity: Annotated[int, JsonInteger(ge=1, le=MAX_SEATS)]


class SelectionSnapshot(BaseModel):
    """What was asked and chosen when the hold was quoted: what a re-quote after a policy change
    repeats. An imported hold's snapshot may lack any field; a null zone means no zone was asked."""

    # A missing field is told apart from a null ``zone`` by ``model_fields_set``: build snapshots
    # with every field given.
    model_config = _STRICT

    party_size: PartySize | None = None
    starts_at: UtcInstant | None = None
    ends_at: UtcInstant | None = None
    zone: ZoneName | None = None
    tables: Annotated[tuple[SnapshotTable, ...], Field(max_length=MAX_TABLES)] | None = None
    quoted_at: UtcInstant | None = None

    def is_complete(self) -> bool:
        """Every field given; only ``zone`` may be null, and ``tables`` must name a table."""
        given = self.model_fields_set
        return "zone" in given and all(
            name in given and getattr(self, name) not in (None, ())
            for name in ("party_size", "starts_at", "ends_at", "tables", "quoted_at")
        )


class Hold(BaseModel):
    """A hold as stored and answered (docs/reference/http-api.md#the-hold)."""

    model_config = _STRICT

    hold_id: HoldId
    venue_id: VenueId
    status: HoldStatus = HoldStatus.HELD  # an imported line may leave it out: it is then held
    party_size: PartySize
    starts_at: UtcInstant
    ends_at: UtcInstant
    expires_at: UtcInstant
    table_ids: Annotated[tuple[TableId, ...], Field(max_length=MAX_TABLES)]
    policy_hash: PolicyHash | None = None
    policy_version: Annotated[int, JsonInteger(ge=1)] | None = None
    selection_snapshot: SelectionSnapshot | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Hold:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def effective_status(self, now: datetime) -> HoldStatus:
        """``expired`` for a ``held`` hold whose ``expires_at`` has come; otherwise the stored status.

        The TTL is half-open like ownership: at ``expires_at`` itself the hold is already expired.
        A confirmed hold is unaffected by ``expires_at``.
        """
        if self.status is HoldStatus.HELD and now >= self.expires_at:
            return HoldStatus.EXPIRED
        return self.status

    def to_response(self, now: datetime) -> dict[str, Any]:
        """The hold as the API answers it: JSON types, UTC ``Z`` times, the status as of ``now``.

        A snapshot's missing fields stay missing, so an imported hold reads as it was given.
        """
        body = self.model_dump(mode="json", exclude={"selection_snapshot"})
        body["status"] = self.effective_status(now).value
        snapshot = self.selection_snapshot
        body["selection_snapshot"] = (
            None if snapshot is None else snapshot.model_dump(mode="json", exclude_unset=True)
        )
        return body


def new_hold_id() -> str:
    """A fresh hold id: ``hld_`` and 32 hex digits (within the id pattern)."""
    return f"hld_{uuid.uuid4().hex}"


def new_hold(
    hold_id: str,
    timing: tuple[datetime, datetime],
    allocation: Allocation,
    *,
    venue_id: str,
    party_size: int,
    zone: str | None,
    policy: SeatingPolicy,
    policy_hash: str,
    policy_version: int,
    now: datetime,
) -> QuotedHold:
    """A fresh ``held`` hold on the allocated tables, expiring ``hold_ttl_seconds`` after ``now``:
    for a request, or for the re-quote of a hold whose policy changed.

    ``timing`` is the hold's ``(starts_at, ends_at)`` (what ``check_hold_timing`` returned for a
    request); the snapshot records what was asked (``party_size``, ``zone``) and the answer with
    every field given, so the hold is complete: a :class:`QuotedHold` by construction.
    """
    starts_at, ends_at = timing
    snapshot = SelectionSnapshot(
        party_size=party_size,
        starts_at=starts_at,
        ends_at=ends_at,
        zone=zone,
        tables=tuple(SnapshotTable(id=table.id, capacity=table.capacity) for table in allocation.tables),
        quoted_at=now,
    )
    hold = Hold(
        hold_id=hold_id,
        venue_id=venue_id,
        status=HoldStatus.HELD,
        party_size=party_size,
        starts_at=starts_at,
        ends_at=ends_at,
        expires_at=now + timedelta(seconds=policy.hold_ttl_seconds),
        table_ids=allocation.table_ids,
        policy_hash=policy_hash,
        policy_version=policy_version,
        selection_snapshot=snapshot,
    )
    return QuotedHold(hold, policy_hash, party_size, starts_at, ends_at, zone)


def missing_metadata(hold: Hold) -> list[str]:
    """What confirmation lacks, as the dotted paths of docs/reference/http-api.md#order-of-checks.

    ``policy_hash`` when it is absent; ``table_ids`` when empty; ``selection_snapshot`` when the
    snapshot is absent; and, as the contract words it, ``selection_snapshot.tables`` when the
    snapshot is there but any of its fields is missing (a null ``zone`` means no zone was asked
    and counts as given; an empty ``tables`` counts as missing). ``policy_version`` is not
    required. An empty list means the hold may go on to be confirmed.
    """
    missing = []
    if hold.policy_hash is None:
        missing.append("policy_hash")
    if not hold.table_ids:
        missing.append("table_ids")
    if hold.selection_snapshot is None:
        missing.append("selection_snapshot")
    elif not hold.selection_snapshot.is_complete():
        missing.append("selection_snapshot.tables")
    return missing


@dataclass(frozen=True)
class QuotedHold:
    """A hold with everything confirmation and a re-quote need, as required fields: what
    :func:`complete` establishes once for a stored hold (and :func:`new_hold` builds), so nothing
    later, the store's writes included, has to assume it."""

    hold: Hold
    policy_hash: str
    #: The selection snapshot's: what was asked when the hold was quoted.
    party_size: int
    starts_at: datetime
    ends_at: datetime
    zone: str | None


def complete(hold: Hold) -> QuotedHold | list[str]:
    """The hold as a :class:`QuotedHold`, or what it lacks (:func:`missing_metadata`)."""
    missing = missing_metadata(hold)
    snapshot = hold.selection_snapshot
    if (
        missing
        or hold.policy_hash is None
        or snapshot is None
        or snapshot.party_size is None
        or snapshot.starts_at is None
        or snapshot.ends_at is None
    ):
        return missing or ["selection_snapshot.tables"]
    return QuotedHold(
        hold=hold,
        policy_hash=hold.policy_hash,
        party_size=snapshot.party_size,
        starts_at=snapshot.starts_at,
        ends_at=snapshot.ends_at,
        zone=snapshot.zone,
    )
