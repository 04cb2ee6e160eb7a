"""Bringing holds over from the booking app (docs/reference/importing-holds.md): importing its exported holds,
and completing (or releasing) active holds that lack the metadata confirmation needs.

**Import.** Each JSON line is a hold with the fields of docs/reference/importing-holds.md#import-lines;
``policy_hash``, ``policy_version`` and ``selection_snapshot`` may be missing, ``status`` when given
is ``held``. It is stored as a ``held`` hold owning its tables, written in one transaction with its ownership
records, conditioned on every record still being at the version read (as ``holding.hold_tables``
writes a new hold), so two owners never overlap on a table.

A hold is refused when its tables cannot seat its party (``allocator.seats_party``, the rule the
allocator and confirmation apply) under the venue version it names, else the current one: such a
hold could never be confirmed (``HOLD_INVALID``), and would only keep its tables from others.

The interval an imported hold owns is ``[starts_at, ends_at + buffer)`` with the buffer of the
venue's *current* policy: the hold may carry no policy at all, and the current policy is the one
every hold quoted from now on keeps clear of, so imported and new holds are spaced alike. The
transaction is conditioned on the venue still having that policy (a change meanwhile re-reads).

A line whose hold already exists as given is skipped: every field the line gives equals the
stored one. Fields the line leaves out may have been filled since (by the backfill), and the
stored ``status`` is the service's own (the hold may have been confirmed or released since):
neither makes it a different hold, so re-running a file imports nothing and refuses nothing new.

**Backfill.** An active hold (``held``, not expired) lacking metadata (``missing_metadata``) is
completed from the venue version it was quoted under: its ``policy_version`` names it, else its
``policy_hash`` (the latest version with that hash: equal hashes are equal configs); with
neither it cannot be completed. The snapshot keeps every field the hold's snapshot gives and
derives the rest: party, start and end from the hold; ``zone`` null (a hold whose tables all sit
in one zone does not mean that zone was asked); the tables with their capacities in that
version; ``quoted_at`` = ``expires_at`` - that version's ``hold_ttl_seconds`` (derived: the time
a hold under that policy would have been quoted to expire then). A hold whose tables that
version does not have, or cannot seat its party, is not completed: confirmation would refuse it.
A hold that cannot be completed is released and its tables freed, or left as it is when asked to.
Every write is conditioned on the hold being ``held`` with exactly the document read, so a
concurrent confirm (or any other change) is never overwritten: it is reported as changed meanwhile.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from booking_durability.reservations.allocator import seats_party
from booking_durability.reservations.catalog import Venue, quoted_policy
from booking_durability.reservations.holds import (
    Hold,
    HoldStatus,
    SelectionSnapshot,
    SnapshotTable,
    missing_metadata,
)
from booking_durability.reservations.intervals import Interval, ownership_interval
from booking_durability.reservations.ownership import (
    Slot,
    SlotRecord,
    SlotWrite,
    busy_tables,
    claim,
    pause_after_lost_race,
    release,
    rounds,
)
from booking_durability.reservations.ports import StoredHold, StoredVenue, WriteConflict
from booking_durability.reservations.venues import VenueConfig
from booking_durability.validation import ID_MAX_LENGTH, ID_PATTERN, StandardJsonSchema

# Re-reads after a write lost a race with the live service, per hold.
MAX_ROUNDS = 12
_HOLD_ID = re.compile(ID_PATTERN)


# -- the store ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScannedHold:
    """A hold as a scan read it; ``token`` is its stored document, which a write must still find."""

    stored: StoredHold
    token: str


@dataclass(frozen=True)
class ActivePage:
    """One page of a scan: the active holds on it, and how many items it examined."""

    holds: list[ScannedHold]
    examined: int


class MigrationStore(Protocol):
    """What import and backfill need of the store: a few of the service's reads, and their own."""

    def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None: ...

    def hold(self, hold_id: str) -> StoredHold | None: ...

    def slot_records(self, venue_id: str, interval: Interval) -> dict[Slot, SlotRecord]: ...

    def venue_versions(self, venue_id: str) -> list[StoredVenue]:
        """Every version of the venue, any order (none when the venue does not exist)."""
        ...

    def import_hold(
        self, hold: Hold, owns_until: datetime, writes: Sequence[SlotWrite], policy_hash: str, now: datetime
    ) -> None:
        """Store an imported hold and its ownership at once, only while the hold id is free, the
        venue's current policy is ``policy_hash`` and every record is as read; else ``WriteConflict``."""
        ...

    def active_holds(self, now: datetime, page_size: int) -> Iterator[ActivePage]:
        """Every ``held`` hold not expired at ``now``, page by page."""
        ...

    def fill_hold(self, filled: StoredHold, token: str, now: datetime) -> bool:
        """Store ``filled.hold`` as the hold's document while it is ``held`` and its document is
        still ``token``; False when it is not."""
        ...

    def release_unchanged(self, hold: Hold, token: str, writes: Sequence[SlotWrite], now: datetime) -> None:
        """Release a live ``held`` hold whose document is still ``token`` and write its ownership
        away, at once; ``WriteConflict`` (``hold`` refused when the hold itself changed)."""
        ...


# -- import ---------------------------------------------------------------------------------------


class LineOutcome(StrEnum):
    IMPORTED = "imported"
    SKIPPED = "skipped"
    REFUSED = "refused"


class Refusal(StrEnum):
    """Why a line was refused: a stable code, printed with the line number (never its content)."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    STATUS_NOT_HELD = "status_not_held"
    VENUE_UNKNOWN = "venue_unknown"
    UNKNOWN_TABLE = "unknown_table"  # a table the venue's current config does not have
    # Its tables cannot seat its party (allocator.seats_party) under the version it names, else
    # the current one: confirmation would refuse it with HOLD_INVALID.
    PARTY_DOES_NOT_FIT = "party_does_not_fit"
    EXPIRED = "expired"  # past expires_at: it would own nothing and could never be confirmed
    HOLD_ID_TAKEN = "hold_id_taken"  # the id names a stored hold with other content
    TABLES_TAKEN = "tables_taken"  # another live owner holds a table during its interval
    CONTENTION = "contention"  # kept losing races with the live service: run the file again


@dataclass(frozen=True)
class Refused:
    """A refusal; ``field`` is a field of the hold's schema (never a name the line made up) and
    ``hold_id`` the line's id when it is a valid one."""

    reason: Refusal
    field: str | None = None
    hold_id: str | None = None


@dataclass(frozen=True)
class LineResult:
    line: int  # 1-based, as an editor counts
    outcome: LineOutcome
    hold_id: str | None = None
    refused: Refused | None = None


class HoldImportLine(Hold):
    """One line of the booking app's hold export (docs/booking-app.md): a hold, ``held`` if its
    status is given. Only its JSON Schema is generated from it; ``parse_line`` reads a line."""

    status: Literal[HoldStatus.HELD] = HoldStatus.HELD


def import_line_json_schema() -> dict[str, Any]:
    """An export line as a JSON Schema, committed under ``schemas/`` (a test fails when it is
    stale). It states every rule of a line alone; ``ends_at`` after ``starts_at`` and what depends
    on the store (the venue, its tables, the seating, expiry, ids taken) are checked on import."""
    schema = HoldImportLine.model_json_schema(schema_generator=StandardJsonSchema)
    schema["$id"] = "https://booking.local/schemas/hold-import-line-v1.json"
    schema["title"] = "hold import line/v1"
    return schema


def parse_line(text: str) -> Hold | Refused:
    """The hold a line describes, strictly typed (``"2"`` is not a party size), or why not."""
    try:
        document = json.loads(text)
    except ValueError:
        return Refused(Refusal.INVALID_JSON)
    if not isinstance(document, dict):
        return Refused(Refusal.NOT_AN_OBJECT)
    hold_id = _valid_id(document.get("hold_id"))
    if "status" in document and document["status"] != HoldStatus.HELD.value:
        return Refused(Refusal.STATUS_NOT_HELD, "status", hold_id)
    try:
        return Hold.model_validate_json(text, strict=True)
    except ValidationError as invalid:
        return _refusal(invalid, hold_id)


def _refusal(invalid: ValidationError, hold_id: str | None) -> Refused:
    errors = invalid.errors(include_input=False, include_url=False)
    if any(error["type"] == "extra_forbidden" for error in errors):
        # Its location is a name the line made up: not printed.
        return Refused(Refusal.UNKNOWN_FIELD, None, hold_id)
    missing = [error for error in errors if error["type"] == "missing"]
    first = (missing or errors)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return Refused(Refusal.MISSING_FIELD if missing else Refusal.INVALID_FIELD, field, hold_id)


def _valid_id(value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= ID_MAX_LENGTH and _HOLD_ID.fullmatch(value):
        return value
    return None


def same_as_given(given: Hold, stored: Hold) -> bool:
    """Whether ``stored`` is the hold ``given`` describes: every field given is stored alike.

    ``status`` is not compared (the service moves it on), nor fields the line leaves out or
    gives as null (the backfill may have filled them); a snapshot is compared field by field.
    """
    ours, theirs = _given_fields(given), _given_fields(stored)
    if any(theirs.get(name) != value for name, value in ours.items()):
        return False
    if given.selection_snapshot is None:
        return True
    if stored.selection_snapshot is None:
        return False
    ours = given.selection_snapshot.model_dump(mode="json", exclude_unset=True)
    theirs = stored.selection_snapshot.model_dump(mode="json", exclude_unset=True)
    return all(name in theirs and theirs[name] == value for name, value in ours.items())


def _given_fields(hold: Hold) -> dict[str, Any]:
    return hold.model_dump(mode="json", exclude={"status", "selection_snapshot"}, exclude_none=True)


def import_hold(
    store: MigrationStore,
    hold: Hold,
    now: Callable[[], datetime],
    *,
    pause: Callable[[int], None] = pause_after_lost_race,
) -> LineOutcome | Refused:
    """Store ``hold`` owning its tables, or say why not (see the module's docstring)."""
    for _ in rounds(MAX_ROUNDS, pause):
        moment = now()
        existing = store.hold(hold.hold_id)
        if existing is not None:
            if same_as_given(hold, existing.hold):
                return LineOutcome.SKIPPED
            return Refused(Refusal.HOLD_ID_TAKEN, hold_id=hold.hold_id)
        venue = _importable(store, hold, moment)
        if isinstance(venue, Refused):
            return venue
        interval = ownership_interval(hold.starts_at, hold.ends_at, venue.config.policy.buffer_minutes)
        records = store.slot_records(hold.venue_id, interval)
        if busy_tables(records.values(), interval, moment) & set(hold.table_ids):
            return Refused(Refusal.TABLES_TAKEN, hold_id=hold.hold_id)
        writes = claim(records, hold.table_ids, interval, hold.hold_id, hold.expires_at, moment)
        try:
            store.import_hold(hold, interval.end, writes, venue.policy_hash, moment)
        except WriteConflict:
            # The id was taken, the policy changed or a record moved meanwhile: decide again.
            continue
        return LineOutcome.IMPORTED
    return Refused(Refusal.CONTENTION, hold_id=hold.hold_id)


def _importable(store: MigrationStore, hold: Hold, now: datetime) -> Venue | Refused:
    """The venue's current version, when the hold may be stored under it."""
    stored = store.venue(hold.venue_id)
    if stored is None:
        return Refused(Refusal.VENUE_UNKNOWN, hold_id=hold.hold_id)
    if hold.expires_at <= now:
        return Refused(Refusal.EXPIRED, hold_id=hold.hold_id)
    venue = Venue.from_stored(stored)
    if not {table.id for table in venue.config.tables}.issuperset(hold.table_ids):
        return Refused(Refusal.UNKNOWN_TABLE, hold_id=hold.hold_id)
    config = _seating_policy(store, hold, venue)
    if not seats_party(config, hold.party_size, hold.table_ids, _asked_zone(hold)):
        return Refused(Refusal.PARTY_DOES_NOT_FIT, hold_id=hold.hold_id)
    return venue


def _seating_policy(store: MigrationStore, hold: Hold, current: Venue) -> VenueConfig:
    """The config a hold's seating is judged by, as confirmation judges it: the version it names
    (by its hash, else by its number), else the current one."""
    if hold.policy_hash is not None:
        quoted = quoted_policy(store, hold.venue_id, hold.policy_hash, hold.policy_version)
        if quoted is not None:
            return quoted
    elif hold.policy_version is not None:
        named = store.venue(hold.venue_id, hold.policy_version)
        if named is not None:
            return Venue.from_stored(named).config
    return current.config


def _asked_zone(hold: Hold) -> str | None:
    """The zone the hold's snapshot says was asked (none when it does not say)."""
    snapshot = hold.selection_snapshot
    return None if snapshot is None else snapshot.zone


def import_lines(
    store: MigrationStore,
    lines: Iterable[str],
    now: Callable[[], datetime],
    *,
    pause: Callable[[int], None] = pause_after_lost_race,
) -> Iterator[LineResult]:
    """Each non-blank line's result, in order (a blank line is not a hold, and is passed over)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        parsed = parse_line(text)
        if isinstance(parsed, Refused):
            yield LineResult(number, LineOutcome.REFUSED, parsed.hold_id, parsed)
            continue
        outcome = import_hold(store, parsed, now, pause=pause)
        if isinstance(outcome, Refused):
            yield LineResult(number, LineOutcome.REFUSED, parsed.hold_id, outcome)
        else:
            yield LineResult(number, outcome, parsed.hold_id)


# -- backfill -------------------------------------------------------------------------------------


class Underivable(StrEnum):
    """Why a hold's metadata cannot be derived."""

    UNKNOWN_VENUE = "unknown venue"
    NO_POLICY_VERSION = "no policy version"
    UNKNOWN_POLICY_VERSION = "unknown policy version"
    UNKNOWN_POLICY_HASH = "unknown policy hash"
    HASH_NOT_OF_VERSION = "policy hash is not its version's"
    NO_TABLES = "no tables"
    TABLE_NOT_IN_VERSION = "a table its policy version does not have"
    PARTY_DOES_NOT_FIT = "its tables cannot seat its party"


@dataclass(frozen=True)
class Derived:
    """The hold completed, and the fields filled (dotted for a partly given snapshot)."""

    hold: Hold
    filled: tuple[str, ...]


_SNAPSHOT_FIELDS = ("party_size", "starts_at", "ends_at", "zone", "tables", "quoted_at")


def quoted_under(hold: Hold, versions: Sequence[Venue]) -> Venue | Underivable:
    """The venue version the hold was quoted under, from its ``policy_version`` or its hash."""
    if not versions:
        return Underivable.UNKNOWN_VENUE
    if hold.policy_version is not None:
        version = next((v for v in versions if v.policy_version == hold.policy_version), None)
        if version is None:
            return Underivable.UNKNOWN_POLICY_VERSION
        if hold.policy_hash is not None and hold.policy_hash != version.policy_hash:
            return Underivable.HASH_NOT_OF_VERSION
        return version
    if hold.policy_hash is not None:
        # A venue changed and changed back has two versions with one hash (and one config):
        # the latest is the likeliest for a hold still active.
        same = [v for v in versions if v.policy_hash == hold.policy_hash]
        return max(same, key=lambda v: v.policy_version) if same else Underivable.UNKNOWN_POLICY_HASH
    return Underivable.NO_POLICY_VERSION


def derive_metadata(hold: Hold, versions: Sequence[Venue]) -> Derived | Underivable:
    """The hold with its missing metadata derived (see the module's docstring), or why it cannot be."""
    version = quoted_under(hold, versions)
    if isinstance(version, Underivable):
        return version
    if not hold.table_ids:
        return Underivable.NO_TABLES
    if not {table.id for table in version.config.tables} >= set(hold.table_ids):
        return Underivable.TABLE_NOT_IN_VERSION
    # Completed, it could be confirmed: only if its tables seat its party (allocator.seats_party).
    if not seats_party(version.config, hold.party_size, hold.table_ids, _asked_zone(hold)):
        return Underivable.PARTY_DOES_NOT_FIT
    update: dict[str, Any] = {}
    filled: list[str] = []
    if hold.policy_hash is None:
        update["policy_hash"] = version.policy_hash
        filled.append("policy_hash")
    if hold.policy_version is None:
        update["policy_version"] = version.policy_version
        filled.append("policy_version")
    if hold.selection_snapshot is None or not hold.selection_snapshot.is_complete():
        update["selection_snapshot"], snapshot_filled = _snapshot(hold, version)
        filled.extend(snapshot_filled)
    completed = hold.model_copy(update=update)
    still_missing = missing_metadata(completed)
    if still_missing:
        raise ValueError(f"the derived hold still lacks {', '.join(still_missing)}")
    return Derived(completed, tuple(filled))


def _snapshot(hold: Hold, version: Venue) -> tuple[SelectionSnapshot, list[str]]:
    given = hold.selection_snapshot
    values: dict[str, Any] = {}
    if given is not None:
        for name in _SNAPSHOT_FIELDS:
            value = getattr(given, name)
            # A null zone, when given, says no zone was asked; any other null is a gap.
            if name in given.model_fields_set and (name == "zone" or value not in (None, ())):
                values[name] = value
    derived: dict[str, Any] = {
        "party_size": hold.party_size,
        "starts_at": hold.starts_at,
        "ends_at": hold.ends_at,
        "zone": None,
        "quoted_at": hold.expires_at - timedelta(seconds=version.config.policy.hold_ttl_seconds),
    }
    if "tables" not in values:
        # derive_metadata made sure the version has every table.
        capacities = {table.id: table.capacity for table in version.config.tables}
        derived["tables"] = tuple(SnapshotTable(id=t, capacity=capacities[t]) for t in hold.table_ids)
    missing = [name for name in _SNAPSHOT_FIELDS if name not in values]
    snapshot = SelectionSnapshot(**{name: values.get(name, derived.get(name)) for name in _SNAPSHOT_FIELDS})
    filled = ["selection_snapshot"] if given is None else [f"selection_snapshot.{name}" for name in missing]
    return snapshot, filled


class BackfillAction(StrEnum):
    FILL = "fill"
    RELEASE = "release"
    LEAVE = "leave"  # underivable, and asked to leave such holds as they are


@dataclass(frozen=True)
class BackfillStep:
    """What the backfill does to one hold: ``detail`` lists the fields filled or says why not."""

    scanned: ScannedHold
    action: BackfillAction
    detail: str
    completed: Hold | None = None  # the hold as filled, for FILL

    @property
    def hold_id(self) -> str:
        return self.scanned.stored.hold.hold_id

    def describe(self) -> str:
        """``fill policy_hash,selection_snapshot``, ``release: no policy version``, ``leave: ...``."""
        separator = " " if self.action is BackfillAction.FILL else ": "
        return f"{self.action.value}{separator}{self.detail}"


def plan_step(scanned: ScannedHold, versions: Sequence[Venue], *, skip_underivable: bool) -> BackfillStep:
    derived = derive_metadata(scanned.stored.hold, versions)
    if isinstance(derived, Derived):
        return BackfillStep(scanned, BackfillAction.FILL, ",".join(derived.filled), derived.hold)
    action = BackfillAction.LEAVE if skip_underivable else BackfillAction.RELEASE
    return BackfillStep(scanned, action, derived.value)


def plan_backfill(
    store: MigrationStore,
    now: datetime,
    *,
    skip_underivable: bool = False,
    page_size: int = 100,
    on_page: Callable[[int], None] = lambda _examined: None,
) -> list[BackfillStep]:
    """A step for every active hold lacking metadata, read page by page (``on_page`` is told how
    many items each page examined). Reads only."""
    versions: dict[str, list[Venue]] = {}
    steps = []
    for page in store.active_holds(now, page_size):
        for scanned in page.holds:
            hold = scanned.stored.hold
            if hold.effective_status(now) is not HoldStatus.HELD or not missing_metadata(hold):
                continue
            if hold.venue_id not in versions:
                versions[hold.venue_id] = [Venue.from_stored(v) for v in store.venue_versions(hold.venue_id)]
            steps.append(plan_step(scanned, versions[hold.venue_id], skip_underivable=skip_underivable))
        on_page(page.examined)
    return steps


class StepResult(StrEnum):
    FILLED = "filled"
    RELEASED = "released"
    LEFT = "left"
    CHANGED = "skipped: changed meanwhile"
    CONTENDED = "skipped: its tables kept changing"


def carry_out(
    store: MigrationStore,
    step: BackfillStep,
    now: Callable[[], datetime],
    *,
    pause: Callable[[int], None] = pause_after_lost_race,
) -> StepResult:
    """Write one step, only while the hold is still ``held`` with the document read."""
    scanned = step.scanned
    if step.action is BackfillAction.LEAVE:
        return StepResult.LEFT
    if step.action is BackfillAction.FILL:
        if step.completed is None:
            raise ValueError("a fill step carries the hold as filled")
        filled = replace(scanned.stored, hold=step.completed)
        written = store.fill_hold(filled, scanned.token, now())
        return StepResult.FILLED if written else StepResult.CHANGED
    hold, owns_until = scanned.stored.hold, scanned.stored.owns_until
    for _ in rounds(MAX_ROUNDS, pause):
        moment = now()
        records = store.slot_records(hold.venue_id, Interval(hold.starts_at, owns_until))
        try:
            store.release_unchanged(hold, scanned.token, release(records, hold.hold_id, moment), moment)
        except WriteConflict as conflict:
            if "hold" in conflict.refused:
                return StepResult.CHANGED
            continue  # an ownership record moved: read them again
        return StepResult.RELEASED
    return StepResult.CONTENDED
