"""The booking app's flows over HTTP against `make run`: venues, holds, confirmation, bookings,
and emails published through the API reaching the Maildir (docs/reference/http-api.md#routes,
docs/reference/local-stack.md#email-sink)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.builders import CONTRACT_POLICY_HASH, venue_config

from .harness import RunningStack, eventually

pytestmark = pytest.mark.e2e


def starts(days: int = 2, hour: int = 20) -> str:
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def new_venue(stack: RunningStack, **policy: Any) -> str:
    venue_id = f"v-{uuid.uuid4().hex[:10]}"
    status, _, body = stack.api("PUT", f"/v1/venues/{venue_id}", json=venue_config(**policy))
    assert status == 200, body
    return venue_id


def test_a_venue_is_held_read_and_released_over_http(running_stack: RunningStack) -> None:
    venue_id = new_venue(running_stack)
    status, headers, venue = running_stack.api("GET", f"/v1/venues/{venue_id}")
    assert (status, venue["policy_hash"], headers["etag"]) == (
        200,
        CONTRACT_POLICY_HASH,
        f'"{CONTRACT_POLICY_HASH}"',
    )

    status, _, hold = running_stack.api(
        "POST", "/v1/holds", json={"venue_id": venue_id, "party_size": 2, "starts_at": starts()}
    )
    assert (status, hold["status"], hold["table_ids"]) == (201, "held", ["T1"])
    assert running_stack.api("GET", f"/v1/holds/{hold['hold_id']}").body == hold
    status, _, released = running_stack.api("DELETE", f"/v1/holds/{hold['hold_id']}")
    assert (status, released["status"]) == (200, "released")


def test_a_hold_is_confirmed_and_its_booking_cancelled_over_http(running_stack: RunningStack) -> None:
    venue_id = new_venue(running_stack)
    hold = running_stack.api(
        "POST", "/v1/holds", json={"venue_id": venue_id, "party_size": 4, "starts_at": starts()}
    ).body
    booking_id = f"bk_{uuid.uuid4().hex[:10]}"
    status, _, confirmed = running_stack.api(
        "POST",
        f"/v1/holds/{hold['hold_id']}/confirm",
        json={"booking_id": booking_id},
        headers={"Idempotency-Key": booking_id},
    )
    assert (status, confirmed["status"], confirmed["policy_drift"]) == (200, "confirmed", None)
    again = running_stack.api("POST", f"/v1/holds/{hold['hold_id']}/confirm", json={"booking_id": booking_id})
    assert again.body == confirmed
    assert running_stack.api("GET", f"/v1/bookings/{booking_id}").body["status"] == "confirmed"
    assert running_stack.api("DELETE", f"/v1/bookings/{booking_id}").body["status"] == "cancelled"


def test_concurrent_holds_over_http_never_share_a_table(running_stack: RunningStack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    venue_id = new_venue(running_stack)
    request = {"venue_id": venue_id, "party_size": 2, "starts_at": starts(days=3)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: running_stack.api("POST", "/v1/holds", json=request), range(4)))
    held = [a.body["table_ids"] for a in answers if a.status == 201]
    refused = [a.body for a in answers if a.status == 409]
    # T1 and T2 seat two (T3 seats three or more): two are held on different tables, two refused
    assert sorted(t for tables in held for t in tables) == ["T1", "T2"]
    assert [r["code"] for r in refused] == ["NO_AVAILABILITY", "NO_AVAILABILITY"]


def test_an_email_posted_to_the_api_is_delivered_and_reads_sent(running_stack: RunningStack) -> None:
    booking_id = f"bk_{uuid.uuid4().hex[:10]}"
    request = {
        "booking_id": booking_id,
        "email_type": "booking_confirmed",
        "recipient": {"email": f"guest-{booking_id}@example.test", "name": "Ana"},
        "data": {"restaurant_name": "Casa", "party_size": 2, "starts_at": starts(), "reference": "R-1"},
    }
    status, _, accepted = running_stack.api("POST", "/v1/emails", json=request)
    assert (status, accepted["status"]) == (202, "queued")
    eventually(lambda: running_stack.delivered_with(accepted["dedupe_key"]), what="the email in the Maildir")

    def sent() -> dict[str, Any] | None:
        answer = running_stack.api("GET", f"/v1/emails/{booking_id}/booking_confirmed")
        return answer.body if answer.body.get("status") == "sent" else None

    state = eventually(sent, what="the email to read sent")
    assert state["attempts"] == 1
    # Publishing it again delivers nothing more
    assert running_stack.api("POST", "/v1/emails", json=request).body["status"] == "sent"
    problem = running_stack.api("DELETE", f"/v1/emails/{booking_id}/booking_confirmed")
    assert (problem.status, problem.body["code"]) == (409, "ALREADY_SENT")
