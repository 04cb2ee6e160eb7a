"""A drift flow interrupted after it replaced the hold is finished
(docs/reference/http-api.md#interrupted-flows): by its repeat, or by the sweep once the replacement
expired, with exactly one notification.

Each failure the replacement's confirmation can meet — a throttled or failing table (before its
write, or after it committed with the answer lost), a transaction conflict, the replacement
expiring, another request wanting the booking id or the key, the policy changing again — is
injected into the real function (or the logic, where the clock must move), and the flow is
followed to its end through the API.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from booking_durability import observability, wiring
from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.errors import StoreUnavailable
from booking_durability.reservations import catalog
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from booking_durability.reservations.drift import finish_interrupted_flows
from booking_durability.reservations.ports import WriteConflict
from booking_durability.reservations.refusals import BookingIdTaken, PolicyChanged
from booking_durability.reservations.venues import VenueConfig
from stacks.drift_sweep import DRIFT_SWEEP_SERVICE
from tests.builders import LambdaContext, venue_config
from tests.integration.conftest import Api, Resources, import_handler
from tests.integration.test_api_confirm import confirm, held, outbox
from tests.integration.test_api_reservations import hold_request, problem
from tests.integration.test_reservation_metrics import Metric, emitted, watched_metrics

__all__ = ["held"]  # test_api_confirm.py's fixture: a held hold for two at the contract's venue


def store_of(resources: Resources, kind: type[ReservationsTable] = ReservationsTable) -> Any:
    return kind(DynamoTable(resources.reservations_table, resources.dynamodb))


def real_now() -> datetime:
    return datetime.now(UTC)


def later(**delta: float) -> Callable[[], datetime]:
    """A clock ``delta`` ahead of the real one: the replacement (600 s) has expired by then."""
    return lambda: datetime.now(UTC) + timedelta(**delta)


def status(api: Api, hold_id: str) -> str:
    return str(api.call("GET", f"/v1/holds/{hold_id}").body["status"])


@pytest.fixture
def drifted(api: Api, held: dict[str, Any]) -> dict[str, Any]:
    """``held``, quoted before the venue's buffer changed: confirming it meets drift."""
    assert api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30)).status == 200
    return held


@pytest.fixture
def failing_replacement_confirm(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next confirmation of a replacement fails as a throttled table does: ``"before"`` its
    write, or ``"after"`` it committed (the answer lost). Append the mode to arm it."""
    armed: list[str] = []
    confirm_ = ReservationsTable.confirm

    def failing(self: ReservationsTable, *args: Any, **kwargs: Any) -> None:
        mode = armed.pop() if armed and kwargs.get("original") is not None else None
        if mode == "before":
            raise StoreUnavailable("transact_write_items failed: ProvisionedThroughputExceededException")
        confirm_(self, *args, **kwargs)
        if mode == "after":
            raise StoreUnavailable("transact_write_items failed: RequestTimeout")

    monkeypatch.setattr(ReservationsTable, "confirm", failing)
    return armed


def interrupted(api: Api, hold_id: str, armed: list[str], mode: str = "before", **more: Any) -> str:
    """Confirm ``hold_id`` as bk_1 with its replacement's confirmation failing; the replacement."""
    armed.append(mode)
    problem(confirm(api, hold_id, "bk_1", **more), 503, "STORE_UNAVAILABLE")
    assert not armed, "no replacement was confirmed: the flow met no drift"
    replacement = _replacement_of(api, hold_id)
    assert replacement is not None
    return replacement


def _replacement_of(api: Api, hold_id: str) -> str | None:
    from booking_durability.wiring import reservations_api

    stored = reservations_api.store().hold(hold_id)
    assert stored is not None
    return None if stored.flow is None else stored.flow.replacement_id


# -- a repeat finishes the flow ---------------------------------------------------------------


def test_a_repeat_finishes_a_flow_whose_replacement_confirmation_failed(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    # Given a confirm that replaced the hold, then failed (503) before confirming the replacement
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm, key="key-1")
    # Then the original is superseded, the replacement held, the booking not made, nobody told
    assert (status(api, drifted["hold_id"]), status(api, replacement)) == ("superseded", "held")
    problem(api.call("GET", "/v1/bookings/bk_1"), 404, "BOOKING_NOT_FOUND")
    assert outbox(resources) == []
    # When the client repeats it, Then the flow goes on: the replacement is confirmed
    answer = confirm(api, drifted["hold_id"], "bk_1", key="key-1")
    assert answer.status == 200, answer.body
    assert answer.body["hold_id"] == replacement
    assert answer.body["policy_drift"] == {
        "recovered": True,
        "attempts": 2,
        "original_hold_id": drifted["hold_id"],
        "original_policy_hash": drifted["policy_hash"],
    }
    assert status(api, replacement) == "confirmed"
    assert api.call("GET", "/v1/bookings/bk_1").body["hold_id"] == replacement
    # And the admin is told once; every later repeat answers the same and tells nobody
    [event] = outbox(resources)
    assert (event["type"], event["hold_id"], event["attempts"]) == ("policy_drift.recovered", replacement, 2)
    assert confirm(api, drifted["hold_id"], "bk_1").body == answer.body
    assert confirm(api, drifted["hold_id"], "bk_1", key="key-1").body == answer.body
    assert confirm(api, replacement, "bk_1").body == answer.body
    assert confirm(api, replacement, "bk_1", key="key-1").body == answer.body
    assert len(outbox(resources)) == 1


def test_a_confirmation_whose_answer_was_lost_is_answered_by_the_repeat(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    # Given the replacement's confirmation committed but its answer was lost (a timeout)
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm, mode="after", key="key-1")
    assert status(api, replacement) == "confirmed"
    # Then the repeat, by hold and booking or by key, answers what was committed, told once
    answer = confirm(api, drifted["hold_id"], "bk_1", key="key-1")
    assert (answer.status, answer.body["hold_id"]) == (200, replacement)
    assert confirm(api, drifted["hold_id"], "bk_1").body == answer.body
    assert len(outbox(resources)) == 1


def test_a_repeat_naming_the_replacement_finishes_the_flow_too(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm, key="key-1")
    # The key names the original, the request the replacement: the same flow, not a reused key
    answer = confirm(api, replacement, "bk_1", key="key-1")
    assert (answer.status, answer.body["hold_id"]) == (200, replacement)
    assert len(outbox(resources)) == 1


def test_the_flow_claims_its_booking_id_and_key_until_it_ends(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    # Given an interrupted flow of bk_1 with key-1
    interrupted(api, drifted["hold_id"], failing_replacement_confirm, key="key-1")
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    # Then another hold cannot take its booking id or its key meanwhile
    problem(confirm(api, other["hold_id"], "bk_1"), 409, "BOOKING_ID_TAKEN")
    problem(confirm(api, other["hold_id"], "bk_2", key="key-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    assert status(api, other["hold_id"]) == "held"
    # Nor another booking the superseded original
    problem(confirm(api, drifted["hold_id"], "bk_2"), 409, "HOLD_NOT_ACTIVE")
    # And the flow still ends as it would have
    assert confirm(api, drifted["hold_id"], "bk_1", key="key-1").status == 200
    assert len(outbox(resources)) == 1


def test_a_repeat_after_the_policy_changed_again_ends_the_flow_without_a_third_attempt(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm)
    # When the policy changes again before the repeat
    assert api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=45)).status == 200
    holds_before = _hold_ids(resources)
    # Then the repeat ends the flow: its two attempts are spent, no hold is quoted a third time
    body = problem(confirm(api, drifted["hold_id"], "bk_1"), 409, "POLICY_CHANGED")
    assert (body["attempts"], body["reason"]) == (2, "drift_repeated")
    assert _hold_ids(resources) == holds_before
    assert status(api, replacement) == "released"
    [event] = outbox(resources)
    assert (event["type"], event["reason"], event["hold_id"], event["policy_version"]) == (
        "policy_drift.unrecovered",
        "drift_repeated",
        replacement,
        3,
    )
    # The booking id is free again; the replacement's table too
    problem(api.call("GET", "/v1/bookings/bk_1"), 404, "BOOKING_NOT_FOUND")
    assert api.call("POST", "/v1/holds", hold_request(party_size=2)).body["table_ids"] == ["T1"]


def _hold_ids(resources: Resources) -> set[str]:
    items = resources.dynamodb.scan(TableName=resources.reservations_table)["Items"]
    return {item["pk"]["S"] for item in items if item["pk"]["S"].startswith("HOLD#")}


# -- the sweep finishes a flow nobody repeats ---------------------------------------------------


def test_a_flow_nobody_repeats_is_ended_by_the_sweep_once_its_replacement_expired(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm, key="key-1")
    store = store_of(resources)
    # Before the replacement expires, the sweep leaves the flow to its request
    assert finish_interrupted_flows(store, real_now) == {"due": 0, "finished": 0}
    assert finish_interrupted_flows(store, later(seconds=300)) == {"due": 0, "finished": 0}
    # Once it has expired, the sweep releases it and tells the admin, once
    assert finish_interrupted_flows(store, later(hours=1)) == {"due": 1, "finished": 1}
    assert status(api, replacement) == "released"
    [event] = outbox(resources)
    assert event["type"] == "policy_drift.unrecovered"
    assert (event["reason"], event["attempts"], event["original_hold_id"], event["hold_id"]) == (
        "interrupted",
        2,
        drifted["hold_id"],
        replacement,
    )
    # Sweeping again finds nothing; a repeat, by hold or by key, answers the flow's end
    assert finish_interrupted_flows(store, later(hours=2)) == {"due": 0, "finished": 0}
    for answer in (confirm(api, drifted["hold_id"], "bk_1"), confirm(api, replacement, "bk_1", key="key-1")):
        body = problem(answer, 409, "POLICY_CHANGED")
        assert (body["attempts"], body["reason"]) == (2, "interrupted")
    assert len(outbox(resources)) == 1
    # The booking id and the tables are free; the key stays bound to the flow
    problem(api.call("GET", "/v1/bookings/bk_1"), 404, "BOOKING_NOT_FOUND")
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    problem(confirm(api, other["hold_id"], "bk_1", key="key-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    assert confirm(api, other["hold_id"], "bk_1").status == 200


def test_racing_sweeps_write_one_event(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    interrupted(api, drifted["hold_id"], failing_replacement_confirm)
    # Given two sweeps that both read the flow open, then write, one after the other
    barrier = threading.Barrier(2)

    class Racing(ReservationsTable):
        def end_flow(self, *args: Any, **kwargs: Any) -> None:
            barrier.wait(timeout=10)
            super().end_flow(*args, **kwargs)

    results: list[dict[str, int]] = []
    sweeps = [
        threading.Thread(
            target=lambda: results.append(
                finish_interrupted_flows(store_of(resources, Racing), later(hours=1))
            )
        )
        for _ in range(2)
    ]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(timeout=30)
    # Then one of them ended the flow and wrote the event; the other found it ended
    assert sorted(result["finished"] for result in results) == [0, 1]
    assert len(outbox(resources)) == 1


def test_a_repeat_after_the_replacement_expired_ends_the_flow_itself(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm)
    # When the client repeats after the replacement expired, before any sweep
    with pytest.raises(PolicyChanged) as raised:
        confirm_with_policy_retry(
            store_of(resources), ConfirmRequest(drifted["hold_id"], "bk_1"), later(hours=1)
        )
    # Then the repeat ends it as the sweep would have, and the sweep finds nothing left
    assert (raised.value.attempts, raised.value.reason) == (2, "interrupted")
    assert status(api, replacement) == "released"
    assert finish_interrupted_flows(store_of(resources), later(hours=2))["finished"] == 0
    assert len(outbox(resources)) == 1


def test_a_repeat_racing_the_sweep_answers_the_sweeps_end(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    interrupted(api, drifted["hold_id"], failing_replacement_confirm)

    class SweptFirst(ReservationsTable):
        """The sweep ends the flow between the repeat's read and its own write."""

        def end_flow(self, *args: Any, **kwargs: Any) -> None:
            assert finish_interrupted_flows(store_of(resources), later(hours=1))["finished"] == 1
            super().end_flow(*args, **kwargs)

    with pytest.raises(PolicyChanged) as raised:
        confirm_with_policy_retry(
            store_of(resources, SweptFirst), ConfirmRequest(drifted["hold_id"], "bk_1"), later(hours=1)
        )
    assert raised.value.reason == "interrupted"
    assert len(outbox(resources)) == 1


# -- the request itself meets the failure, and finishes what it can ------------------------------


def test_a_transaction_conflict_on_the_replacement_is_read_again_and_carried_on(
    api: Api, resources: Resources, drifted: dict[str, Any]
) -> None:
    class ConflictOnce(ReservationsTable):
        conflicted = False

        def confirm(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("original") is not None and not self.conflicted:
                self.conflicted = True
                raise WriteConflict()  # another transaction touched an item at the same time
            super().confirm(*args, **kwargs)

    body = confirm_with_policy_retry(
        store_of(resources, ConflictOnce), ConfirmRequest(drifted["hold_id"], "bk_1"), real_now
    )
    assert body["policy_drift"]["recovered"] is True
    assert len(outbox(resources)) == 1


def test_a_replacement_that_expires_during_the_request_ends_the_flow_interrupted(
    api: Api, resources: Resources, drifted: dict[str, Any]
) -> None:
    clock = {"now": real_now()}

    class SlowAfterReplacing(ReservationsTable):
        """The request stalls right after it replaced the hold, past the replacement's expiry."""

        def replace_hold(self, *args: Any, **kwargs: Any) -> None:
            super().replace_hold(*args, **kwargs)
            clock["now"] += timedelta(hours=1)

    with pytest.raises(PolicyChanged) as raised:
        confirm_with_policy_retry(
            store_of(resources, SlowAfterReplacing),
            ConfirmRequest(drifted["hold_id"], "bk_1"),
            lambda: clock["now"],
        )
    assert (raised.value.attempts, raised.value.reason) == (2, "interrupted")
    [event] = outbox(resources)
    assert event["reason"] == "interrupted"
    assert status(api, str(event["hold_id"])) == "released"


def test_a_booking_id_taken_before_the_hold_is_replaced_is_refused_with_nothing_changed(
    api: Api, resources: Resources, drifted: dict[str, Any]
) -> None:
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body

    class TakenMeanwhile(ReservationsTable):
        """Another hold is confirmed as bk_1 between the first attempt and the replacement."""

        def replace_hold(self, *args: Any, **kwargs: Any) -> None:
            assert confirm(api, other["hold_id"], "bk_1").status == 200
            super().replace_hold(*args, **kwargs)

    with pytest.raises(BookingIdTaken):
        confirm_with_policy_retry(
            store_of(resources, TakenMeanwhile), ConfirmRequest(drifted["hold_id"], "bk_1"), real_now
        )
    assert status(api, drifted["hold_id"]) == "held"
    assert outbox(resources) == []


@pytest.mark.parametrize("wanted", ["booking id", "key"])
def test_another_request_wanting_the_flows_booking_id_or_key_is_refused_and_the_flow_recovers(
    api: Api, resources: Resources, drifted: dict[str, Any], wanted: str
) -> None:
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    answers = []

    class Contended(ReservationsTable):
        """Another request for another hold, with the flow's booking id or key, lands between the
        replacement and its confirmation."""

        def confirm(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("original") is not None and not answers:
                booking_id, key = ("bk_1", None) if wanted == "booking id" else ("bk_other", "key-1")
                answers.append(confirm(api, other["hold_id"], booking_id, key=key))
            super().confirm(*args, **kwargs)

    body = confirm_with_policy_retry(
        store_of(resources, Contended), ConfirmRequest(drifted["hold_id"], "bk_1", "key-1"), real_now
    )
    assert body["policy_drift"]["recovered"] is True
    [refused] = answers
    expected = (409, "BOOKING_ID_TAKEN") if wanted == "booking id" else (422, "IDEMPOTENCY_KEY_REUSED")
    problem(refused, *expected)
    assert status(api, other["hold_id"]) == "held"
    assert len(outbox(resources)) == 1


def test_a_replacement_released_by_someone_else_ends_the_flow_interrupted(
    api: Api, resources: Resources, drifted: dict[str, Any], failing_replacement_confirm: list[str]
) -> None:
    replacement = interrupted(api, drifted["hold_id"], failing_replacement_confirm)
    assert api.call("DELETE", f"/v1/holds/{replacement}").status == 200
    body = problem(confirm(api, drifted["hold_id"], "bk_1"), 409, "POLICY_CHANGED")
    assert (body["attempts"], body["reason"]) == (2, "interrupted")
    assert len(outbox(resources)) == 1


def test_a_venue_change_during_a_flow_is_the_flows_end_not_a_new_flow(
    api: Api, resources: Resources, drifted: dict[str, Any]
) -> None:
    # A repeat always decides from what is stored: two repeats while the venue changes meanwhile
    # end in one event between them, whoever writes first.
    config = VenueConfig.model_validate(venue_config(buffer_minutes=45))

    class ChangingAfterReplacing(ReservationsTable):
        def replace_hold(self, *args: Any, **kwargs: Any) -> None:
            super().replace_hold(*args, **kwargs)
            catalog.save_venue(self, "casa", config, None, real_now())

    with pytest.raises(PolicyChanged):
        confirm_with_policy_retry(
            store_of(resources, ChangingAfterReplacing), ConfirmRequest(drifted["hold_id"], "bk_1"), real_now
        )
    problem(confirm(api, drifted["hold_id"], "bk_1"), 409, "POLICY_CHANGED")
    assert len(outbox(resources)) == 1


# -- the sweep's function, as its schedule invokes it ----------------------------------------------

GUEST_EMAIL = "ana.secret@guest.example.test"  # a client may choose any text as a key


def scheduled_event() -> dict[str, Any]:
    """What an EventBridge schedule hands its target."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": real_now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/drift-sweep"],
        "detail": {},
    }


def test_the_sweep_function_ends_interrupted_flows_and_reports_them_without_guest_text(
    api: Api,
    resources: Resources,
    held: dict[str, Any],
    failing_replacement_confirm: list[str],
    local_template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    log_lines: io.StringIO,
) -> None:
    # Given a flow interrupted after its replacement was made under a policy holding tables a
    # second, its Idempotency-Key a guest's address, and the replacement expired since
    assert (
        api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30, hold_ttl_seconds=1)).status == 200
    )
    replacement = interrupted(api, held["hold_id"], failing_replacement_confirm, key=GUEST_EMAIL)
    stored = store_of(resources).hold(replacement)
    assert stored is not None
    while real_now() <= stored.hold.expires_at:
        time.sleep(0.05)
    # When the sweep's own function runs, as deployed
    monkeypatch.setenv("RESERVATIONS_TABLE", resources.reservations_table)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", DRIFT_SWEEP_SERVICE)
    monkeypatch.setattr(observability.metrics, "service", DRIFT_SWEEP_SERVICE)
    observability.metrics.clear_metrics()
    wiring.reset()
    handler = import_handler("drift_sweep")
    capsys.readouterr()
    context = LambdaContext(function_name="drift-sweep", invoked_function_arn="arn:aws:lambda:::function:x")
    assert handler(scheduled_event(), context) == {"due": 1, "finished": 1}
    # Then the flow ended once, and its metric is the one the alarm sums
    [event] = outbox(resources)
    assert (event["reason"], event["hold_id"]) == ("interrupted", replacement)
    output = capsys.readouterr()
    swept = Metric(
        observability.NAMESPACE,
        "PolicyDriftUnrecovered",
        frozenset({("service", DRIFT_SWEEP_SERVICE), ("reason", "interrupted")}),
    )
    assert emitted(output.out) == Counter({swept: 1})
    assert swept in watched_metrics(local_template, DRIFT_SWEEP_SERVICE)
    # And a second run finds nothing to do
    assert handler(scheduled_event(), context) == {"due": 0, "finished": 0}
    assert len(outbox(resources)) == 1
    # And nothing it printed carries the guest's text
    logs = log_lines.getvalue()
    assert "policy drift not recovered" in logs
    for where, text in {"logs": logs, "output": output.out + output.err, "event": json.dumps(event)}.items():
        assert GUEST_EMAIL not in text, where
