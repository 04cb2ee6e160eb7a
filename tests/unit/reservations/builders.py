"""Small builders for the reservation tests: tables, policies, venues, hold requests and holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from booking_durability.reservations.venues import VenueConfig

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STARTS_AT = datetime(2026, 12, 24, 20, 30, tzinfo=UTC)
HASH = "7b80010cc6e843103f7d54af0ad088b22cabf9552ab7c4eec84993a910e126e6"  # CONTRACT §1 test vector

# A value a client might send that must never come back in an error (it could be a name).
PLANTED = "Ana_Garcia_Secretname"


def table(
    table_id: str,
    capacity: int = 2,
    *,
    min_party: int | None = None,
    zone: str = "main",
    combinable_with: list[str] | None = None,
) -> dict[str, Any]:
    """A table as ``PUT /v1/venues`` takes it; ``min_party`` and ``combinable_with`` left to defaults
    unless given."""
    body: dict[str, Any] = {"id": table_id, "capacity": capacity, "zone": zone}
    if min_party is not None:
        body["min_party"] = min_party
    if combinable_with is not None:
        body["combinable_with"] = combinable_with
    return body


def policy(**overrides: Any) -> dict[str, Any]:
    """The contract test vector's policy; keyword arguments replace fields."""
    body: dict[str, Any] = {
        "slot_minutes": 15,
        "default_duration_minutes": 90,
        "buffer_minutes": 10,
        "max_party_size": 10,
        "hold_ttl_seconds": 600,
        "allow_combinations": True,
        "bookable_zones": ["main", "terraza"],
    }
    body.update(overrides)
    return body


def vector_tables() -> list[dict[str, Any]]:
    """The contract test vector's tables."""
    return [
        table("T1", 2, min_party=1, zone="main", combinable_with=["T2"]),
        table("T2", 4, min_party=1, zone="main", combinable_with=["T1"]),
        table("T3", 6, min_party=3, zone="terraza", combinable_with=[]),
    ]


def venue(tables: list[dict[str, Any]] | None = None, **policy_overrides: Any) -> dict[str, Any]:
    """A ``PUT /v1/venues/{venue_id}`` body: the vector's tables unless given, its policy overridden."""
    return {"tables": vector_tables() if tables is None else tables, "policy": policy(**policy_overrides)}


def config(tables: list[dict[str, Any]] | None = None, **policy_overrides: Any) -> VenueConfig:
    return VenueConfig.model_validate(venue(tables, **policy_overrides))


def mutual(*tables: dict[str, Any]) -> list[dict[str, Any]]:
    """The tables, each made combinable with every other one."""
    ids = [t["id"] for t in tables]
    return [{**t, "combinable_with": [other for other in ids if other != t["id"]]} for t in tables]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hold_request(**overrides: Any) -> dict[str, Any]:
    """A valid ``POST /v1/holds`` body; keyword arguments replace fields."""
    body: dict[str, Any] = {"venue_id": "casa-lucio", "party_size": 4, "starts_at": iso(STARTS_AT)}
    body.update(overrides)
    return body


def snapshot(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "party_size": 4,
        "starts_at": iso(STARTS_AT),
        "ends_at": iso(STARTS_AT + timedelta(minutes=90)),
        "zone": None,
        "tables": [{"id": "T2", "capacity": 4}],
        "quoted_at": iso(NOW),
    }
    body.update(overrides)
    return body


def hold(**overrides: Any) -> dict[str, Any]:
    """A complete stored hold as a dict; keyword arguments replace fields."""
    body: dict[str, Any] = {
        "hold_id": "hold_1",
        "venue_id": "casa-lucio",
        "status": "held",
        "party_size": 4,
        "starts_at": iso(STARTS_AT),
        "ends_at": iso(STARTS_AT + timedelta(minutes=90)),
        "expires_at": iso(NOW + timedelta(minutes=10)),
        "table_ids": ["T2"],
        "policy_hash": HASH,
        "policy_version": 1,
        "selection_snapshot": snapshot(),
    }
    body.update(overrides)
    return body
