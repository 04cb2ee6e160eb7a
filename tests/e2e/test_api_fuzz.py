"""API fuzzing: every operation of the committed ``openapi.json``, against the local stack,
with every check Schemathesis has.

Schemathesis generates requests from the document (its examples, coverage cases at every
boundary, unsupported methods, and generated valid and invalid data) and sends them to the
running local API. Whatever a client sends, the answer is never a 5xx, and it is what the
document says: a documented status code, its content type, a body matching its schema, its
headers; data the schema allows is accepted and data it refuses is refused. The settings and
the few per-operation exceptions, each with its reason, are in ``schemathesis.toml``.

Random ids find nothing, so a venue, holds and a booking are made first, and part of the
generated requests are pointed at them (the hooks below): reads, releases and confirms of live
holds, and holds on a real venue at aligned times, which reach the allocator and the
transaction. The seed is fixed, so CI fuzzes the same requests each time (what the requests
meet still depends on the stack's state: the other e2e tests share it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from tests.builders import venue_config

from .harness import API_TIMEOUT_SECONDS, REPO_ROOT, RunningStack

pytestmark = pytest.mark.e2e

DOCUMENT = json.loads((REPO_ROOT / "openapi.json").read_text())
SCHEMA = schemathesis.openapi.from_dict(
    DOCUMENT, config=SchemathesisConfig.from_path(REPO_ROOT / "schemathesis.toml")
)
# A failure shows the exact request to reproduce it (schemathesis masks `idempotency-key` and the
# like by default; nothing secret is ever sent to the local API).
SCHEMA.config.output.sanitization.update(enabled=False)
VENUE = venue_config(hold_ttl_seconds=86400)  # nothing expires during the run


@dataclass
class Targets:
    """What the fixture made, for the hooks to aim generated requests at."""

    venue_id: str = ""
    venue_version: int = 0  # the version its PUT saved, to read back
    hold_ids: list[str] = field(default_factory=list)  # to read and release
    confirmable_hold_ids: list[str] = field(default_factory=list)
    booking_id: str = ""
    first_day: datetime = datetime.min


TARGETS = Targets()  # filled by the `targets` fixture before any request is generated


def _aimed(chosen: Any, generated: dict[str, Any], **replacements: st.SearchStrategy[Any]) -> Any:
    """Either ``generated`` as it is, or with some of its values drawn from ``replacements``."""
    return st.one_of(st.just(generated), st.fixed_dictionaries(replacements).map(lambda r: {**chosen, **r}))


def _allowed(schema: dict[str, Any], value: Any) -> bool:
    """Whether the document's ``schema`` allows ``value``: only valid requests are aimed, so that
    an invalid one (from the negative phases) stays invalid and is still expected to be refused."""
    root = {**schema, "components": DOCUMENT["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker()).is_valid(value)


def _operation(operation: Any) -> dict[str, Any]:
    return dict(DOCUMENT["paths"][operation.path][operation.method.lower()])


def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: Any) -> Any:
    operation = context.operation
    if operation is None or not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    schemas = {p["name"]: p["schema"] for p in _operation(operation)["parameters"] if p["in"] == "path"}
    if not all(_allowed(schemas[name], value) for name, value in path_parameters.items() if name in schemas):
        return st.just(path_parameters)
    method, path = operation.method.upper(), operation.path
    if "hold_id" in path_parameters:
        holds = TARGETS.confirmable_hold_ids if path.endswith("/confirm") else TARGETS.hold_ids
        return _aimed(path_parameters, path_parameters, hold_id=st.sampled_from(holds))
    if path.startswith("/v1/bookings/") and "booking_id" in path_parameters:
        return _aimed(path_parameters, path_parameters, booking_id=st.just(TARGETS.booking_id))
    if method == "GET" and "venue_id" in path_parameters:
        replacements: dict[str, st.SearchStrategy[Any]] = {"venue_id": st.just(TARGETS.venue_id)}
        if "n" in path_parameters:  # GET /v1/venues/{venue_id}/versions/{n}
            replacements["n"] = st.sampled_from([TARGETS.venue_version, path_parameters["n"]])
        return _aimed(path_parameters, path_parameters, **replacements)
    return st.just(path_parameters)


def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
    operation = context.operation
    if operation is None or operation.label != "POST /v1/holds" or not isinstance(body, dict):
        return st.just(body)
    body_schema = _operation(operation)["requestBody"]["content"]["application/json"]["schema"]
    if not _allowed(body_schema, body):
        return st.just(body)
    # Hour-aligned times are aligned to every slot length, whatever PUTs the run makes.
    starts_at = st.integers(0, 300 * 24).map(
        lambda hours: (TARGETS.first_day + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    )
    chosen = {key: value for key, value in body.items() if key not in ("duration_minutes", "zone")}
    return _aimed(
        chosen,
        body,
        venue_id=st.just(TARGETS.venue_id),
        starts_at=starts_at,
        party_size=st.integers(1, 12),
        duration_minutes=st.sampled_from([None, 15, 90, 480]),
        zone=st.sampled_from([None, "main", "terraza", "patio"]),
    )


@pytest.fixture(scope="module")
def targets(running_stack: RunningStack) -> Targets:
    """A venue, holds on it, and a booking, made through the API."""
    venue_id = "fuzz-venue"
    status, _, body = running_stack.api("PUT", f"/v1/venues/{venue_id}", json=VENUE)
    assert status == 200, body
    venue_version = body["policy_version"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    hold_ids = []
    for day in range(5):
        starts_at = (tomorrow + timedelta(days=day, hours=20)).isoformat().replace("+00:00", "Z")
        hold = {"venue_id": venue_id, "party_size": 2, "starts_at": starts_at}
        status, _, body = running_stack.api("POST", "/v1/holds", json=hold)
        assert status == 201, body
        hold_ids.append(body["hold_id"])
    booking_id = "fuzz-booking"
    status, _, body = running_stack.api(
        "POST", f"/v1/holds/{hold_ids[0]}/confirm", json={"booking_id": booking_id}
    )
    assert status == 200, body
    TARGETS.venue_id = venue_id
    TARGETS.venue_version = venue_version
    TARGETS.hold_ids = hold_ids[1:3]
    TARGETS.confirmable_hold_ids = hold_ids[3:]
    TARGETS.booking_id = booking_id
    TARGETS.first_day = tomorrow + timedelta(days=30)  # clear of the seeded holds
    return TARGETS


@SCHEMA.hooks.apply(flatmap_path_parameters)
@SCHEMA.hooks.apply(flatmap_body)
@SCHEMA.parametrize()
def test_no_request_gets_a_5xx_and_every_answer_conforms_to_the_document(
    case: schemathesis.Case, targets: Targets, local_stack: dict[str, Any]
) -> None:
    response = case.call(base_url=local_stack["api_url"], timeout=API_TIMEOUT_SECONDS)
    # Every check schemathesis.toml enables for the operation: all of them, but its exceptions
    case.validate_response(response)
