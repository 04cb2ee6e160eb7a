"""Policy drift over HTTP against `make run`, down to the admin's webhook
(docs/reference/http-api.md#policy-drift): recovered with a signed webhook, unrecovered when no
table fits any more, interrupted after the hold was replaced and finished by the local scheduler's
sweep, and an imported hold without metadata refused, then backfilled and confirmed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.errors import StoreUnavailable
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from tests.builders import venue_config

from .harness import RunningStack, eventually, pid_alive
from .test_api_flows import new_venue, starts
from .test_drift_notifications import wait_until_settled

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def webhooks_for(stack: RunningStack, original_hold_id: str) -> list[dict[str, Any]]:
    return [
        delivery
        for delivery in stack.webhooks()
        if json.loads(delivery["body"]).get("original_hold_id") == original_hold_id
    ]


def verified(stack: RunningStack, delivery: dict[str, Any]) -> dict[str, Any]:
    """The body of a webhook delivery whose Standard Webhooks signature checks out."""
    headers = delivery["headers"]
    payload: dict[str, Any] = Webhook(stack.stack_json()["webhook_secret"]).verify(delivery["body"], headers)
    return payload


def hold(stack: RunningStack, venue_id: str, party_size: int = 2) -> dict[str, Any]:
    status, _, body = stack.api(
        "POST", "/v1/holds", json={"venue_id": venue_id, "party_size": party_size, "starts_at": starts()}
    )
    assert status == 201, body
    return dict(body)


def test_a_policy_change_then_confirm_recovers_and_the_admin_gets_one_signed_webhook(
    running_stack: RunningStack,
) -> None:
    venue_id = new_venue(running_stack)
    held = hold(running_stack, venue_id)
    changed = running_stack.api("PUT", f"/v1/venues/{venue_id}", json=venue_config(buffer_minutes=30)).body
    status, _, confirmed = running_stack.api(
        "POST", f"/v1/holds/{held['hold_id']}/confirm", json={"booking_id": f"bk_{uuid.uuid4().hex[:8]}"}
    )
    assert status == 200
    assert confirmed["policy_drift"]["original_hold_id"] == held["hold_id"]
    assert confirmed["policy_hash"] == changed["policy_hash"]
    [delivery] = eventually(lambda: webhooks_for(running_stack, held["hold_id"]), what="the drift webhook")
    body = verified(running_stack, delivery)
    assert delivery["headers"]["webhook-id"] == f"msg_{body['event_id']}"
    assert (body["type"], body["hold_id"], body["attempts"]) == (
        "policy_drift.recovered",
        confirmed["hold_id"],
        2,
    )


def test_a_change_that_removes_every_fitting_table_is_409_and_notified_unrecovered(
    running_stack: RunningStack,
) -> None:
    venue_id = new_venue(running_stack)
    held = hold(running_stack, venue_id, party_size=4)
    running_stack.api("PUT", f"/v1/venues/{venue_id}", json=venue_config(max_party_size=2))
    status, _, refused = running_stack.api(
        "POST", f"/v1/holds/{held['hold_id']}/confirm", json={"booking_id": f"bk_{uuid.uuid4().hex[:8]}"}
    )
    assert (status, refused["code"], refused["reason"]) == (409, "POLICY_CHANGED", "no_availability")
    [delivery] = eventually(lambda: webhooks_for(running_stack, held["hold_id"]), what="the drift webhook")
    body = verified(running_stack, delivery)
    assert (body["type"], body["reason"]) == ("policy_drift.unrecovered", "no_availability")


def test_an_imported_hold_without_metadata_is_refused_then_backfilled_and_confirmed(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    venue_id = new_venue(running_stack)
    hold_id = f"hld_imported_{uuid.uuid4().hex[:8]}"
    starts_at = starts(days=4)
    export = tmp_path / "holds.jsonl"
    export.write_text(
        json.dumps(
            {
                "hold_id": hold_id,
                "venue_id": venue_id,
                "party_size": 2,
                "starts_at": starts_at,
                "ends_at": starts_at.replace("T20:00", "T21:30"),
                "expires_at": starts(days=3),
                "table_ids": ["T1"],
                "policy_version": 1,
            }
        )
        + "\n"
    )
    env = {"LOCAL_DIR": str(running_stack.local_dir), "PATH": "/usr/bin:/bin"}

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    assert script("scripts/import_holds.py", str(export)).returncode == 0
    booking = {"booking_id": f"bk_{uuid.uuid4().hex[:8]}"}
    status, _, refused = running_stack.api("POST", f"/v1/holds/{hold_id}/confirm", json=booking)
    assert (status, refused["code"]) == (422, "HOLD_METADATA_INCOMPLETE")
    assert refused["missing"] == ["policy_hash", "selection_snapshot"]
    assert script("scripts/backfill_hold_metadata.py", "--apply").returncode == 0
    status, _, confirmed = running_stack.api("POST", f"/v1/holds/{hold_id}/confirm", json=booking)
    assert (status, confirmed["hold_id"], confirmed["policy_drift"]) == (200, hold_id, None)


class CrashingAfterReplacing(ReservationsTable):
    """An API instance that dies right after a drift flow replaced the hold: the replacement's
    confirmation never happens, and the client gets a 5xx and does not repeat."""

    def confirm(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("original") is not None:
            raise StoreUnavailable("transact_write_items failed: RequestTimeout")
        super().confirm(*args, **kwargs)


def test_an_interrupted_flow_nobody_repeats_is_finished_by_the_scheduler_with_one_webhook(
    running_stack: RunningStack,
) -> None:
    info = running_stack.stack_json()
    assert pid_alive(info["processes"]["scheduler"])
    # Given a hold, then a policy whose holds last two seconds
    venue_id = new_venue(running_stack)
    held = hold(running_stack, venue_id)
    changed = venue_config(buffer_minutes=30, hold_ttl_seconds=2)
    assert running_stack.api("PUT", f"/v1/venues/{venue_id}", json=changed).status == 200
    # When a confirm meets the drift, replaces the hold, and its instance dies (the test plays it,
    # on the stack's own table)
    table = DynamoTable(info["tables"]["reservations"], running_stack.dynamodb())
    booking_id = f"bk_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreUnavailable):
        confirm_with_policy_retry(
            CrashingAfterReplacing(table),
            ConfirmRequest(held["hold_id"], booking_id),
            lambda: datetime.now(UTC),
        )
    status, _, original = running_stack.api("GET", f"/v1/holds/{held['hold_id']}")
    assert (status, original["status"]) == (200, "superseded")
    # Then, once the replacement expired, the scheduler's sweep ends the flow: one signed webhook
    [delivery] = eventually(
        lambda: webhooks_for(running_stack, held["hold_id"]), timeout=30, what="the sweep's webhook"
    )
    body = verified(running_stack, delivery)
    assert (body["type"], body["reason"], body["attempts"]) == ("policy_drift.unrecovered", "interrupted", 2)
    status, _, replacement = running_stack.api("GET", f"/v1/holds/{body['hold_id']}")
    assert (status, replacement["status"]) == (200, "released")
    # And the client's repeat, however late, answers the flow's end and tells nobody again
    status, _, refused = running_stack.api(
        "POST", f"/v1/holds/{held['hold_id']}/confirm", json={"booking_id": booking_id}
    )
    assert (status, refused["code"], refused["reason"]) == (409, "POLICY_CHANGED", "interrupted")
    wait_until_settled(running_stack)
    assert len(webhooks_for(running_stack, held["hold_id"])) == 1
