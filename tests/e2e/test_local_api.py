"""`make run`'s HTTP API as the booking app meets it: the template's routes on ``api_url``, served
by the real handlers, in parallel, restarted when it dies (docs/reference/local-stack.md#components)."""

from __future__ import annotations

import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.api_gateway import ApiSpec

from .harness import RunningStack, eventually, pid_alive, processes_mentioning

pytestmark = pytest.mark.e2e

# docs/reference/http-api.md#routes, the OpenAPI document among them.
CONTRACT_ROUTES = {
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/emails"),
    ("GET", "/v1/emails/{booking_id}/{email_type}"),
    ("DELETE", "/v1/emails/{booking_id}/{email_type}"),
    ("DELETE", "/v1/emails/{booking_id}"),
    ("PUT", "/v1/venues/{venue_id}"),
    ("GET", "/v1/venues/{venue_id}"),
    ("GET", "/v1/venues/{venue_id}/versions/{n}"),
    ("POST", "/v1/holds"),
    ("GET", "/v1/holds/{hold_id}"),
    ("DELETE", "/v1/holds/{hold_id}"),
    ("POST", "/v1/holds/{hold_id}/confirm"),
    ("GET", "/v1/bookings/{booking_id}"),
    ("DELETE", "/v1/bookings/{booking_id}"),
}


def served_spec(stack: RunningStack) -> ApiSpec:
    """What the stack's API server serves: the spec the local stack read from the template."""
    return ApiSpec.from_json((stack.local_dir / "run" / "api.json").read_text())


def test_stack_json_says_where_the_api_is(running_stack: RunningStack) -> None:
    info = running_stack.stack_json()

    assert info["api_url"].startswith("http://127.0.0.1:")
    assert pid_alive(info["processes"]["api"])


def test_the_api_serves_the_contracts_routes_from_the_template(running_stack: RunningStack) -> None:
    spec = served_spec(running_stack)

    assert {(route.method, route.resource_path) for route in spec.routes} == CONTRACT_ROUTES


def test_health_answers_ok(running_stack: RunningStack) -> None:
    status, headers, body = running_stack.api("GET", "/v1/health")

    assert status == 200
    assert body == {"status": "ok"}
    assert headers["content-type"].startswith("application/json")


def test_an_unknown_path_is_a_404_problem_and_reaches_no_function(running_stack: RunningStack) -> None:
    status, headers, body = running_stack.api("GET", "/v1/no-such-thing")

    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 404
    assert body["code"] == "NOT_FOUND"


def test_a_known_path_with_another_method_is_a_405_that_names_the_allowed_ones(
    running_stack: RunningStack,
) -> None:
    status, headers, body = running_stack.api("PATCH", "/v1/health")

    assert status == 405
    assert headers["allow"] == "GET"
    assert headers["content-type"] == "application/problem+json"
    assert body["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("method", ["TRACE", "BREW"])
def test_a_method_no_route_takes_is_a_405_never_a_5xx(running_stack: RunningStack, method: str) -> None:
    status, headers, body = running_stack.api(method, "/v1/health")

    assert status == 405
    assert headers["content-type"] == "application/problem+json"
    assert body["code"] == "METHOD_NOT_ALLOWED"


def test_parallel_requests_are_all_served(running_stack: RunningStack) -> None:
    # Given the booking app's way: several requests at once
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: running_stack.api("GET", "/v1/health"), range(8)))

    # Then every one is answered
    assert [answer.status for answer in answers] == [200] * 8
    assert all(answer.body == {"status": "ok"} for answer in answers)


def test_the_handlers_powertools_lines_reach_the_stacks_output_one_line_each(
    running_stack: RunningStack,
) -> None:
    # Given a request whose handler logs (saving a venue does)
    venue_id = f"e2e-{uuid.uuid4().hex[:12]}"
    venue = {
        "tables": [{"id": "T1", "capacity": 2, "zone": "main"}],
        "policy": {
            "slot_minutes": 15,
            "default_duration_minutes": 90,
            "buffer_minutes": 10,
            "max_party_size": 4,
            "hold_ttl_seconds": 600,
            "allow_combinations": False,
            "bookable_zones": ["main"],
        },
    }

    status, _, _ = running_stack.api("PUT", f"/v1/venues/{venue_id}", json=venue)

    # Then its Powertools JSON line is in `make run`'s output, whole after the `api | ` prefix
    assert status == 200

    def logged() -> list[dict[str, Any]]:
        wanted = ("reservations-api", venue_id)
        lines = running_stack.handler_lines("api")
        return [line for line in lines if (line.get("service"), line.get("venue_id")) == wanted]

    line = eventually(logged, what="the handler's log line")[0]
    assert line["venue_id"] == venue_id
    assert line["function_request_id"]  # logged inside an invocation, with its Lambda context


def test_the_api_is_restarted_when_it_dies_with_its_environments(running_stack: RunningStack) -> None:
    # Given the API and its warm execution environments
    before = running_stack.stack_json()["processes"]["api"]
    spec_file = str(running_stack.local_dir / "run" / "api.json")
    environments = set(processes_mentioning(spec_file)) - {before}
    assert environments

    # When the API server dies
    os.kill(before, signal.SIGKILL)

    # Then the stack starts it again and says so in stack.json
    def restarted() -> int | None:
        pid: int = running_stack.stack_json()["processes"]["api"]
        return pid if pid != before and pid_alive(pid) else None

    after = eventually(restarted, timeout=60, what="the API to be restarted")
    assert running_stack.stack_json()["api_url"]
    # And it serves again
    assert running_stack.api("GET", "/v1/health").status == 200
    # And nothing of the dead one is left
    eventually(lambda: not any(pid_alive(pid) for pid in environments), what="the old environments to end")
    assert after in processes_mentioning(spec_file)
