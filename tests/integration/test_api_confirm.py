"""Confirming holds through the real function against moto (docs/reference/http-api.md#confirmation,
docs/reference/notifications.md#drift-events): every path, the outbox event of every drift, and the
store left as the contract says."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.holds_table import hold_item
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.reservations import catalog
from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
from booking_durability.reservations.holds import Hold
from booking_durability.reservations.refusals import BookingIdTaken, PolicyChanged
from booking_durability.reservations.venues import VenueConfig
from tests.builders import CONTRACT_POLICY_HASH, venue_config
from tests.integration.conftest import ROOT, Answer, Api, Resources
from tests.integration.test_api_reservations import hold_request, problem


def store_of(resources: Resources) -> ReservationsTable:
    return ReservationsTable(DynamoTable(resources.reservations_table, resources.dynamodb))


def outbox(resources: Resources) -> list[dict[str, Any]]:
    items = resources.dynamodb.scan(TableName=resources.reservations_table)["Items"]
    return [json.loads(i["body"]["S"]) for i in items if i["pk"]["S"].startswith("OUTBOX#")]


def confirm(api: Api, hold_id: str, booking_id: str = "bk_1", key: str | None = None) -> Answer:
    headers = {"Idempotency-Key": key} if key else None
    return api.call("POST", f"/v1/holds/{hold_id}/confirm", {"booking_id": booking_id}, headers=headers)


@pytest.fixture
def held(api: Api) -> dict[str, Any]:
    assert api.call("PUT", "/v1/venues/casa", venue_config()).status == 200
    return dict(api.call("POST", "/v1/holds", hold_request(party_size=2)).body)


def test_a_confirmed_hold_becomes_a_booking_that_owns_its_tables(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    answer = confirm(api, held["hold_id"])
    assert answer.status == 200
    assert answer.body == {
        "booking_id": "bk_1",
        "hold_id": held["hold_id"],
        "venue_id": "casa",
        "table_ids": ["T1"],
        "starts_at": held["starts_at"],
        "ends_at": held["ends_at"],
        "policy_hash": CONTRACT_POLICY_HASH,
        "policy_version": 1,
        "status": "confirmed",
        "policy_drift": None,
    }
    assert api.call("GET", f"/v1/holds/{held['hold_id']}").body["status"] == "confirmed"
    assert api.call("GET", "/v1/bookings/bk_1").body["status"] == "confirmed"
    # The booking keeps T1 (a confirmed hold never expires); cancelling frees it
    assert api.call("POST", "/v1/holds", hold_request(party_size=2)).body["table_ids"] == ["T2"]
    assert api.call("DELETE", "/v1/bookings/bk_1").body["status"] == "cancelled"
    assert api.call("DELETE", "/v1/bookings/bk_1").body["status"] == "cancelled"
    assert api.call("POST", "/v1/holds", hold_request(party_size=2)).body["table_ids"] == ["T1"]
    assert outbox(resources) == []


def test_a_repeat_answers_the_first_body_even_after_expiry_or_a_policy_change(
    api: Api, held: dict[str, Any]
) -> None:
    first = confirm(api, held["hold_id"], key="key-1")
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    assert confirm(api, held["hold_id"]).body == first.body
    assert confirm(api, held["hold_id"], key="key-1").body == first.body
    assert confirm(api, held["hold_id"], key="key-2").body == first.body


def test_a_repeat_answers_the_first_answers_bytes(api: Api, held: dict[str, Any]) -> None:
    # Given a hold confirmed once, with a key
    first = confirm(api, held["hold_id"], key="key-1")
    assert first.status == 200
    # When the confirmation is repeated by booking id and by key, after the policy moved
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    repeats = [confirm(api, held["hold_id"]), confirm(api, held["hold_id"], key="key-1")]
    # Then each repeat answers the very bytes of the first answer, not the same fields re-serialized
    assert [repeat.text for repeat in repeats] == [first.text, first.text]


def test_a_repeat_of_a_recovered_drift_answers_the_first_answers_bytes(
    api: Api, held: dict[str, Any]
) -> None:
    # Given a hold confirmed on a replacement after the venue's policy changed
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    first = confirm(api, held["hold_id"], key="key-1")
    assert first.body["policy_drift"]["recovered"] is True
    # When it is repeated by the original hold, by the replacement and by the key
    repeats = [
        confirm(api, held["hold_id"]),
        confirm(api, first.body["hold_id"]),
        confirm(api, held["hold_id"], key="key-1"),
        confirm(api, first.body["hold_id"], "bk_1", key="key-1"),
    ]
    # Then every repeat answers the first answer's bytes
    assert {repeat.text for repeat in repeats} == {first.text}


def test_an_idempotency_key_used_for_another_hold_or_booking_is_422(api: Api, held: dict[str, Any]) -> None:
    confirm(api, held["hold_id"], key="key-1")
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    problem(confirm(api, other["hold_id"], "bk_2", key="key-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    problem(confirm(api, held["hold_id"], "bk_other", key="key-1"), 422, "IDEMPOTENCY_KEY_REUSED")


def test_a_hold_confirmed_for_another_booking_is_not_active(api: Api, held: dict[str, Any]) -> None:
    confirm(api, held["hold_id"], "bk_1")
    problem(confirm(api, held["hold_id"], "bk_2"), 409, "HOLD_NOT_ACTIVE")


def test_a_booking_id_of_another_hold_is_refused(api: Api, held: dict[str, Any]) -> None:
    confirm(api, held["hold_id"], "bk_1")
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    problem(confirm(api, other["hold_id"], "bk_1"), 409, "BOOKING_ID_TAKEN")
    assert api.call("GET", f"/v1/holds/{other['hold_id']}").body["status"] == "held"


def dynamodb_calls(resources: Resources) -> list[str]:
    """The DynamoDB operations the test's client sends from now on, in order."""
    calls: list[str] = []
    resources.dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_a_taken_booking_id_is_known_from_the_refused_write_without_another_read(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    confirm(api, held["hold_id"], "bk_1")
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    calls = dynamodb_calls(resources)
    with pytest.raises(BookingIdTaken):
        confirm_with_policy_retry(
            store_of(resources), ConfirmRequest(other["hold_id"], "bk_1"), lambda: datetime.now(UTC)
        )
    # The hold and key in one read, the refused write: the booking came back with the refusal
    assert calls == ["BatchGetItem", "TransactWriteItems"]


def test_a_twin_request_that_lost_the_race_answers_the_winners_body(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    # Given a request that read the hold while it was held, and its twin confirmed it meanwhile
    store = store_of(resources)
    before = store.confirm_reads(held["hold_id"], None)
    first = confirm(api, held["hold_id"], "bk_1")

    class ReadBeforeTheTwin(ReservationsTable):
        def confirm_reads(self, hold_id: str, idempotency_key: str | None) -> Any:
            return before

    calls = dynamodb_calls(resources)
    body = confirm_with_policy_retry(
        ReadBeforeTheTwin(store.table), ConfirmRequest(held["hold_id"], "bk_1"), lambda: datetime.now(UTC)
    )
    # Then its refused write carries the twin's booking, whose stored answer it gives
    assert body == first.body
    assert calls == ["TransactWriteItems"]


def test_unknown_released_and_expired_holds(api: Api, resources: Resources) -> None:
    problem(confirm(api, "hld_unknown"), 404, "HOLD_NOT_FOUND")
    api.call("PUT", "/v1/venues/casa", venue_config())
    released = api.call("POST", "/v1/holds", hold_request()).body
    assert api.call("DELETE", f"/v1/holds/{released['hold_id']}").status == 200
    problem(confirm(api, released["hold_id"]), 409, "HOLD_NOT_ACTIVE")
    # Holds of one second: expired before anyone confirms them
    api.call("PUT", "/v1/venues/casa", venue_config(hold_ttl_seconds=1))
    expiring = api.call("POST", "/v1/holds", hold_request()).body
    while datetime.now(UTC) <= datetime.fromisoformat(expiring["expires_at"]):
        time.sleep(0.05)
    problem(confirm(api, expiring["hold_id"]), 409, "HOLD_EXPIRED")


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        ({"policy_hash"}, ["policy_hash"]),
        ({"selection_snapshot"}, ["selection_snapshot"]),
        ({"policy_hash", "table_ids"}, ["policy_hash", "table_ids"]),
    ],
)
def test_a_hold_lacking_metadata_is_422_and_nothing_changes(
    api: Api, resources: Resources, held: dict[str, Any], drop: set[str], missing: list[str]
) -> None:
    # Given an imported hold lacking metadata
    stored = store_of(resources).hold(held["hold_id"])
    assert stored is not None
    values = stored.hold.model_dump()
    for name in drop:
        values[name] = () if name == "table_ids" else None
    hold = Hold.model_validate({**values, "hold_id": "hld_imported"})
    resources.dynamodb.put_item(
        TableName=resources.reservations_table,
        Item={k: _attr(v) for k, v in hold_item(hold, stored.owns_until).items()},
    )
    # Then confirming it is refused with what is missing, and it stays held
    body = problem(confirm(api, "hld_imported"), 422, "HOLD_METADATA_INCOMPLETE")
    assert body["missing"] == missing
    assert api.call("GET", "/v1/holds/hld_imported").body["status"] == "held"
    problem(api.call("GET", "/v1/bookings/bk_1"), 404, "BOOKING_NOT_FOUND")


def test_drift_is_recovered_on_a_replacement_and_the_admin_is_told_once(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    # Given the venue's buffer changed after the hold was quoted
    new_hash = api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30)).body["policy_hash"]
    # When the hold is confirmed
    answer = confirm(api, held["hold_id"])
    # Then a replacement under the current policy is confirmed, and the original superseded
    body = answer.body
    assert answer.status == 200
    assert body["hold_id"] != held["hold_id"]
    assert (body["policy_hash"], body["policy_version"], body["table_ids"]) == (new_hash, 2, ["T1"])
    assert body["policy_drift"] == {
        "recovered": True,
        "attempts": 2,
        "original_hold_id": held["hold_id"],
        "original_policy_hash": CONTRACT_POLICY_HASH,
    }
    assert api.call("GET", f"/v1/holds/{held['hold_id']}").body["status"] == "superseded"
    assert api.call("GET", f"/v1/holds/{body['hold_id']}").body["status"] == "confirmed"
    # And exactly one event, ids and hashes only
    [event] = outbox(resources)
    assert event["type"] == "policy_drift.recovered"
    assert (event["original_hold_id"], event["hold_id"], event["attempts"]) == (
        held["hold_id"],
        body["hold_id"],
        2,
    )
    assert (event["original_policy_hash"], event["policy_hash"], event["policy_version"]) == (
        CONTRACT_POLICY_HASH,
        new_hash,
        2,
    )
    assert "reason" not in event
    # A repeat naming the superseded original answers the same, and tells nobody again
    assert confirm(api, held["hold_id"]).body == body
    assert len(outbox(resources)) == 1


def test_drift_with_no_availability_is_409_the_original_superseded_and_notified(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    # Given the policy now takes parties of one only
    api.call("PUT", "/v1/venues/casa", venue_config(max_party_size=1))
    body = problem(confirm(api, held["hold_id"]), 409, "POLICY_CHANGED")
    assert (body["attempts"], body["reason"]) == (1, "no_availability")
    assert api.call("GET", f"/v1/holds/{held['hold_id']}").body["status"] == "superseded"
    [event] = outbox(resources)
    assert (event["type"], event["reason"], event["attempts"]) == (
        "policy_drift.unrecovered",
        "no_availability",
        1,
    )
    assert "hold_id" not in event
    # Its table is free again; a repeat answers the flow's end and notifies nobody again
    repeated = problem(confirm(api, held["hold_id"]), 409, "POLICY_CHANGED")
    assert (repeated["attempts"], repeated["reason"]) == (1, "no_availability")
    # Another booking finds the hold superseded
    problem(confirm(api, held["hold_id"], "bk_2"), 409, "HOLD_NOT_ACTIVE")
    assert len(outbox(resources)) == 1


def test_drift_with_no_availability_reads_the_holds_tables_once(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    api.call("PUT", "/v1/venues/casa", venue_config(max_party_size=1))
    calls = dynamodb_calls(resources)
    with pytest.raises(PolicyChanged):
        confirm_with_policy_retry(
            store_of(resources), ConfirmRequest(held["hold_id"], "bk_1"), lambda: datetime.now(UTC)
        )
    # The hold, the refused confirmation, the venue, the tables (one day: one query), the ending
    assert calls == ["BatchGetItem", "TransactWriteItems", "GetItem", "Query", "TransactWriteItems"]


def test_a_confirm_is_two_round_trips_and_a_recovered_drift_six(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    # Without drift: the hold and key in one read, the confirming transaction
    calls = dynamodb_calls(resources)
    confirm_with_policy_retry(store_of(resources), ConfirmRequest(held["hold_id"], "bk_1", "k1"), real_now)
    assert calls == ["BatchGetItem", "TransactWriteItems"]
    # With drift recovered: the refused attempt, the venue, the tables (one day), the replacement
    # (which begins the flow and claims the booking id and key), its confirmation
    other = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    calls.clear()
    body = confirm_with_policy_retry(
        store_of(resources), ConfirmRequest(other["hold_id"], "bk_2", "k2"), real_now
    )
    assert body["policy_drift"] is not None
    assert calls == [
        "BatchGetItem",
        "TransactWriteItems",
        "GetItem",
        "Query",
        "TransactWriteItems",
        "TransactWriteItems",
    ]


def real_now() -> datetime:
    return datetime.now(UTC)


class DriftingAgain(ReservationsTable):
    """The venue's policy changes again right after the replacement is made."""

    def replace_hold(self, *args: Any, **kwargs: Any) -> None:
        super().replace_hold(*args, **kwargs)
        config = VenueConfig.model_validate(venue_config(buffer_minutes=45))
        catalog.save_venue(self, "casa", config, None, datetime.now(UTC))


def test_drift_twice_is_409_drift_repeated_with_the_replacement_released(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    store = DriftingAgain(DynamoTable(resources.reservations_table, resources.dynamodb))
    with pytest.raises(PolicyChanged) as raised:
        confirm_with_policy_retry(store, ConfirmRequest(held["hold_id"], "bk_1"), lambda: datetime.now(UTC))
    assert (raised.value.attempts, raised.value.reason) == (2, "drift_repeated")
    [event] = outbox(resources)
    assert (event["type"], event["reason"], event["attempts"], event["policy_version"]) == (
        "policy_drift.unrecovered",
        "drift_repeated",
        2,
        3,
    )
    replacement = event["hold_id"]
    assert api.call("GET", f"/v1/holds/{held['hold_id']}").body["status"] == "superseded"
    assert api.call("GET", f"/v1/holds/{replacement}").body["status"] == "released"
    # Nothing owns T1 any more
    assert api.call("POST", "/v1/holds", hold_request(party_size=2)).body["table_ids"] == ["T1"]


def test_a_policy_change_between_read_and_write_is_met_as_drift(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    class ChangingBeforeWrite(ReservationsTable):
        changed = False

        def confirm(self, *args: Any, **kwargs: Any) -> None:
            if not self.changed:
                self.changed = True
                config = VenueConfig.model_validate(venue_config(buffer_minutes=20))
                catalog.save_venue(self, "casa", config, None, datetime.now(UTC))
            super().confirm(*args, **kwargs)

    store = ChangingBeforeWrite(DynamoTable(resources.reservations_table, resources.dynamodb))
    body = confirm_with_policy_retry(
        store, ConfirmRequest(held["hold_id"], "bk_1"), lambda: datetime.now(UTC)
    )
    assert body["policy_drift"]["recovered"] is True
    assert body["policy_version"] == 2
    assert len(outbox(resources)) == 1


def _attr(value: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    return dict(TypeSerializer().serialize(value))


# -- what the drift log lines say ------------------------------------------------------------------

QUERY = ROOT / "docs" / "queries" / "policy-drift-events.logsinsights"


def _query() -> tuple[list[str], list[str]]:
    """The fields the policy drift query reads, and the messages it filters on."""
    text = "\n".join(line for line in QUERY.read_text().splitlines() if not line.startswith("#"))
    fields = re.search(r"^fields (.+)$", text, re.MULTILINE)
    messages = re.search(r"filter message in \[(.+)\]", text)
    assert fields is not None, "the query lost its fields"
    assert messages is not None, "the query lost its filter"
    names = [name.strip() for name in fields.group(1).split(",") if not name.strip().startswith("@")]
    return names, json.loads(f"[{messages.group(1)}]")


def test_every_drift_event_is_logged_with_what_the_policy_drift_query_reads(
    api: Api, resources: Resources, held: dict[str, Any], log_lines: io.StringIO
) -> None:
    # Given a drift recovered, and one nothing fits any more
    fields, messages = _query()
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30))
    assert confirm(api, held["hold_id"]).status == 200
    second = api.call("POST", "/v1/holds", hold_request(party_size=2)).body
    api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=30, max_party_size=1))
    assert confirm(api, second["hold_id"], "bk_2").status == 409
    # Then each event written has one line that the query finds, with every field it reads
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    found = [line for line in lines if line.get("message") in messages]
    events = {event["event_id"]: event for event in outbox(resources)}
    logged = {line["event_id"]: line for line in found if "event_id" in line}
    assert logged.keys() == events.keys()
    # (hold_id and reason only when the event has them, as Logs Insights shows a field missing)
    for event_id, line in logged.items():
        event = events[event_id]
        required = set(fields) - ({"hold_id", "reason"} - event.keys())
        assert required <= line.keys(), sorted(required - line.keys())
        for name in ("venue_id", "original_hold_id", "hold_id", "policy_hash", "policy_version", "attempts"):
            assert line.get(name) == event.get(name), name
        assert (line["event_type"], line.get("reason")) == (event["type"], event.get("reason"))
        assert line["original_policy_hash"] == event["original_policy_hash"]
        # The version each hold was quoted under: 1 for the first, 2 for the one held after it
        assert line["original_policy_version"] == line["policy_version"] - 1
    # And the drift met is logged before, with the versions and hashes on both sides
    met = [line for line in found if line["message"] == "seating policy drift met at confirmation"]
    assert [(line["original_policy_version"], line["policy_version"]) for line in met] == [(1, 2), (2, 3)]
    assert all(line["venue_id"] == "casa" and line["original_policy_hash"] for line in met)
