"""Small builders for the reservation tests: venue configs, hold requests and holds. The tables,
policies and venues come from ``tests.builders`` (re-exported here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from booking_durability.reservations.venues import VenueConfig
from tests.builders import CONTRACT_POLICY_HASH as HASH  # docs/reference/http-api.md#policy-hash test vector
from tests.builders import policy as policy
from tests.builders import table as table
from tests.builders import vector_tables as vector_tables
from tests.builders import venue as venue

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STARTS_AT = datetime(2026, 12, 24, 20, 30, tzinfo=UTC)

# A value a client might send that must never come back in an error (it could be a name).
PLANTED = "Ana_Garcia_Secretname"


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
