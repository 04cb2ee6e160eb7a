"""API fuzzing (issue #7): every operation of the committed ``openapi.json``, against the local stack.

Schemathesis generates requests from the document (valid ones and invalid ones, unsupported
methods included) and sends them to the running local API. Whatever a client sends, the answer
is never a 5xx (CONTRACT §0), and it is what the document says: a documented status code, its
content type, a body matching its schema, its required headers.

Random ids find nothing, so a venue, holds and a booking are made first, and part of the
generated requests are pointed at them (the hooks below): reads, releases and confirms of live
holds, and holds on a real venue at aligned times, which reach the allocator and the
transaction. The run is derandomized, so CI fuzzes the same requests each time (what the
requests meet still depends on the stack's state: the other e2e tests share it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.builders import venue_config

from .harness import API_TIMEOUT_SECONDS, REPO_ROOT, RunningStack

pytestmark = pytest.mark.e2e

SCHEMA = schemathesis.openapi.from_path(REPO_ROOT / "openapi.json")
# A failure shows the exact request to reproduce it (schemathesis masks `idempotency-key` and the
# like by default; nothing secret is ever sent to the local API).
SCHEMA.config.output.sanitization.update(enabled=False)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
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


def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: Any) -> Any:
    operation = context.operation
    if operation is None or not isinstance(path_parameters, dict):
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
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    # The stack answers over the network: slow draws and large bodies are the point here.
    suppress_health_check=list(HealthCheck),
    # Examples and coverage cases, then generated ones; a failure is reported as found (shrinking
    # it would re-send hundreds of requests to a stack whose state has moved on anyway).
    phases=[Phase.explicit, Phase.generate],
)
def test_no_request_gets_a_5xx_and_every_answer_conforms_to_the_document(
    case: schemathesis.Case, targets: Targets, local_stack: dict[str, Any]
) -> None:
    response = case.call(base_url=local_stack["api_url"], timeout=API_TIMEOUT_SECONDS)
    case.validate_response(response, checks=CHECKS)
