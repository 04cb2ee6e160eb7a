"""A venue's tables and seating policy (``PUT /v1/venues/{venue_id}``,
docs/reference/http-api.md#venue-config) and its hash.

Models hide input in their errors, and our own messages name positions, never submitted values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator

from booking_durability.validation import ID_MAX_LENGTH, ID_PATTERN, Boolean, JsonInteger, Text

_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

MAX_TABLES = 200
MAX_DURATION_MINUTES = 480  # the longest default duration, and the longest hold
# Far above any real table, and far below 2**53: beyond it RFC 8785 writes numbers in exponent
# form and the policy hash would stop matching the contract's canonical JSON.
MAX_SEATS = 1000

VenueId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
TableId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


# Zones are free text ("terraza", "Sala 1"), printable: a control character would only make two
# names look alike, and a lone surrogate could not be hashed as UTF-8.
ZoneName = Annotated[Text, Field(min_length=1, max_length=64)]
SlotMinutes = Literal[5, 10, 15, 20, 30, 60]
SLOT_MINUTES: tuple[int, ...] = get_args(SlotMinutes)
# Validation context of a config read back from the store.
STORED = "stored"


_UNIQUE: dict[str, Any] = {"uniqueItems": True}
# The schema's statement of ``_whole_slots``: for each slot length, the default duration is a
# multiple of it.
_DURATION_FITS_SLOTS: list[JsonValue] = [
    {
        "if": {"required": ["slot_minutes"], "properties": {"slot_minutes": {"const": slot}}},
        "then": {"properties": {"default_duration_minutes": {"multipleOf": slot}}},
    }
    for slot in SLOT_MINUTES
]


def _unique(values: list[str], what: str) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat an entry")
    return values


class Table(BaseModel):
    # Answered with its defaults filled in: each answer's schema has them required.
    model_config = _STRICT | ConfigDict(json_schema_serialization_defaults_required=True)

    id: TableId
    capacity: Annotated[int, JsonInteger(ge=1, le=MAX_SEATS)]
    min_party: Annotated[int, JsonInteger(ge=1, le=MAX_SEATS)] = 1
    zone: ZoneName
    # Not required to be symmetric: the allocator combines only tables that list each other.
    combinable_with: Annotated[
        list[TableId], Field(max_length=MAX_TABLES - 1, json_schema_extra=_UNIQUE)
    ] = []

    # Rules that join two fields are checked on the later one, so the error names it.
    @field_validator("min_party")
    @classmethod
    def _seats_the_smallest_party(cls, value: int, info: ValidationInfo) -> int:
        if value > info.data.get("capacity", value):
            raise ValueError("min_party must not exceed capacity")
        return value

    @field_validator("combinable_with")
    @classmethod
    def _other_tables_once(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("id") in value:
            raise ValueError("a table cannot be combinable with itself")
        return _unique(value, "combinable_with")


class SeatingPolicy(BaseModel):
    model_config = _STRICT | ConfigDict(json_schema_extra={"allOf": _DURATION_FITS_SLOTS})

    slot_minutes: SlotMinutes
    # A whole number of slots, so that a hold of the default duration can be made.
    default_duration_minutes: Annotated[int, JsonInteger(ge=15, le=MAX_DURATION_MINUTES)]
    buffer_minutes: Annotated[int, JsonInteger(ge=0, le=120)]
    max_party_size: Annotated[int, JsonInteger(ge=1, le=100)]
    hold_ttl_seconds: Annotated[int, JsonInteger(ge=1, le=86400)]
    allow_combinations: Boolean
    # May be empty (a venue taking no bookings) and may name zones without tables yet.
    bookable_zones: Annotated[list[ZoneName], Field(max_length=MAX_TABLES, json_schema_extra=_UNIQUE)]

    @field_validator("default_duration_minutes")
    @classmethod
    def _whole_slots(cls, value: int, info: ValidationInfo) -> int:
        slot = info.data.get("slot_minutes")
        if slot is not None and value % slot and not (info.context or {}).get(STORED):
            raise ValueError("default_duration_minutes must be a multiple of slot_minutes")
        return value

    @field_validator("bookable_zones")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return _unique(value, "bookable_zones")


class VenueConfig(BaseModel):
    """The body of ``PUT /v1/venues/{venue_id}``: 1..200 tables and the seating policy."""

    model_config = _STRICT

    tables: Annotated[list[Table], Field(min_length=1, max_length=MAX_TABLES)]
    policy: SeatingPolicy

    @field_validator("tables")
    @classmethod
    def _known_table_ids(cls, tables: list[Table]) -> list[Table]:
        ids = [table.id for table in tables]
        if len(set(ids)) != len(ids):
            raise ValueError("table ids must be unique")
        known = set(ids)
        for position, table in enumerate(tables):
            if not known.issuperset(table.combinable_with):
                raise ValueError(f"tables[{position}].combinable_with names a table this venue does not have")
        return tables

    @classmethod
    def from_stored(cls, config_json: str) -> VenueConfig:
        """A config as stored: saved under the rules of its day, so rules added since (a default
        duration of whole slots) do not refuse it when it is read again."""
        return cls.model_validate_json(config_json, context={STORED: True})

    def normalized(self) -> VenueConfig:
        """The canonical form: tables sorted by id, ``combinable_with`` and ``bookable_zones`` sorted.

        Defaults are already filled in by validation; sorting keeps every rule valid.
        """
        tables = sorted(
            (
                table.model_copy(update={"combinable_with": sorted(table.combinable_with)})
                for table in self.tables
            ),
            key=lambda table: table.id,
        )
        policy = self.policy.model_copy(update={"bookable_zones": sorted(self.policy.bookable_zones)})
        return self.model_copy(update={"tables": tables, "policy": policy})


def canonical_json(config: VenueConfig) -> str:
    """``{"tables", "policy"}`` in canonical form as compact JSON with sorted keys.

    With integers, booleans and strings only, this is the RFC 8785 (JCS) text the contract hashes.
    """
    document: dict[str, Any] = config.normalized().model_dump(mode="json")
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def policy_hash(config: VenueConfig) -> str:
    """Lowercase hex SHA-256 of the canonical JSON's UTF-8 bytes: equal configs, equal hashes."""
    return hash_of(canonical_json(config))


def hash_of(canonical: str) -> str:
    """The policy hash of an already canonical JSON text (what ``canonical_json`` returned)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
