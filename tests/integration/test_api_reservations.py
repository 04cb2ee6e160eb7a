"""Venue, hold and booking routes through the real function, against moto
(docs/reference/http-api.md#routes)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from booking_durability.adapters.dynamodb import DynamoTable
from booking_durability.adapters.reservations_table import ReservationsTable
from booking_durability.reservations import catalog
from booking_durability.reservations.ports import StoredVenue
from booking_durability.reservations.venues import VenueConfig
from tests.builders import CONTRACT_POLICY_HASH, venue_config
from tests.integration.conftest import Answer, Api, Resources


def start(days: int = 3, hour: int = 20, minute: int = 0) -> datetime:
    base = datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return base + timedelta(days=days)


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def hold_request(party_size: int = 2, starts_at: datetime | None = None, **more: Any) -> dict[str, Any]:
    return {"venue_id": "casa", "party_size": party_size, "starts_at": at(starts_at or start()), **more}


@pytest.fixture
def venue(api: Api) -> Answer:
    answer = api.call("PUT", "/v1/venues/casa", venue_config())
    assert answer.status == 200
    return answer


def problem(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.body["code"] == code
    assert answer.body["status"] == status
    if status == 503:  # a failed dependency: when to try again
        assert answer.headers["retry-after"] == "1"
    return dict(answer.body)


# -- venues ------------------------------------------------------------------------------------


def test_a_new_venue_is_version_1_with_the_contract_hash(venue: Answer) -> None:
    assert venue.body == {"venue_id": "casa", "policy_version": 1, "policy_hash": CONTRACT_POLICY_HASH}


def test_the_venue_reads_back_with_its_hash_as_etag(api: Api, venue: Answer) -> None:
    answer = api.call("GET", "/v1/venues/casa")
    assert answer.status == 200
    assert answer.headers["etag"] == f'"{CONTRACT_POLICY_HASH}"'
    assert answer.body["policy_version"] == 1
    assert [t["id"] for t in answer.body["tables"]] == ["T1", "T2", "T3"]


def test_an_unchanged_put_changes_nothing_and_a_change_bumps_the_version(api: Api, venue: Answer) -> None:
    # Given the same config in another order
    config = venue_config()
    config["tables"].reverse()
    assert api.call("PUT", "/v1/venues/casa", config).body["policy_version"] == 1
    # When the buffer changes
    changed = api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=20))
    # Then it is version 2, and version 1 stays readable
    assert changed.body["policy_version"] == 2
    assert api.call("GET", "/v1/venues/casa/versions/1").body["policy_hash"] == CONTRACT_POLICY_HASH
    assert api.call("GET", "/v1/venues/casa/versions/2").body["policy"]["buffer_minutes"] == 20
    problem(api.call("GET", "/v1/venues/casa/versions/3"), 404, "VERSION_NOT_FOUND")


@pytest.mark.parametrize("tag", [CONTRACT_POLICY_HASH, f'"{CONTRACT_POLICY_HASH}"'])
def test_if_match_takes_the_hash_bare_or_quoted(api: Api, venue: Answer, tag: str) -> None:
    answer = api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=5), headers={"If-Match": tag})
    assert answer.body["policy_version"] == 2


@pytest.mark.parametrize(
    "if_match",
    [
        f'"nope", "{CONTRACT_POLICY_HASH}"',
        f'"{CONTRACT_POLICY_HASH}","{"0" * 64}"',
        f'W/"{CONTRACT_POLICY_HASH}", {CONTRACT_POLICY_HASH}',
        "*",
        " * ",
    ],
)
def test_if_match_holds_when_any_of_its_tags_is_the_current_policy(
    api: Api, venue: Answer, if_match: str
) -> None:
    # RFC 9110: If-Match lists entity tags and holds when one of them matches; * matches any venue
    answer = api.call(
        "PUT", "/v1/venues/casa", venue_config(buffer_minutes=5), headers={"If-Match": if_match}
    )
    assert answer.status == 200, answer.body
    assert answer.body["policy_version"] == 2


@pytest.mark.parametrize(
    "if_match", [f'W/"{CONTRACT_POLICY_HASH}"', '"nope", W/"x"', f'"{CONTRACT_POLICY_HASH[:-1]}"', '""']
)
def test_weak_or_other_tags_never_hold(api: Api, venue: Answer, if_match: str) -> None:
    # If-Match compares strongly: a weak tag names no policy, even the current one's hash
    answer = api.call(
        "PUT", "/v1/venues/casa", venue_config(buffer_minutes=5), headers={"If-Match": if_match}
    )
    problem(answer, 412, "PRECONDITION_FAILED")
    assert api.call("GET", "/v1/venues/casa").body["policy_version"] == 1


@pytest.mark.parametrize("if_match", ['"unterminated', "a b", '"a",', "*, *", '"é"'])
def test_an_if_match_that_is_no_list_of_tags_is_422_naming_the_header(
    api: Api, venue: Answer, if_match: str
) -> None:
    answer = api.call(
        "PUT", "/v1/venues/casa", venue_config(buffer_minutes=5), headers={"If-Match": if_match}
    )
    body = problem(answer, 422, "VALIDATION_FAILED")
    assert [error["loc"] for error in body["errors"]] == [["header", "if-match"]]
    assert api.call("GET", "/v1/venues/casa").body["policy_version"] == 1


def test_star_on_a_venue_that_does_not_exist_is_412(api: Api) -> None:
    answer = api.call("PUT", "/v1/venues/nueva", venue_config(), headers={"If-Match": "*"})
    problem(answer, 412, "PRECONDITION_FAILED")


def test_a_stale_if_match_is_412_and_changes_nothing(api: Api, venue: Answer) -> None:
    stale = "0" * 64
    answer = api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=5), headers={"If-Match": stale})
    problem(answer, 412, "PRECONDITION_FAILED")
    assert api.call("GET", "/v1/venues/casa").body["policy_version"] == 1


def test_any_if_match_on_a_venue_that_does_not_exist_is_412(api: Api) -> None:
    answer = api.call("PUT", "/v1/venues/nueva", venue_config(), headers={"If-Match": CONTRACT_POLICY_HASH})
    problem(answer, 412, "PRECONDITION_FAILED")
    problem(api.call("GET", "/v1/venues/nueva"), 404, "VENUE_NOT_FOUND")


def test_racing_versioned_puts_never_share_a_version(api: Api, venue: Answer) -> None:
    # Given eight different policies written at once
    barrier = threading.Barrier(8)
    versions: list[int] = []

    def put(buffer: int) -> None:
        barrier.wait()
        answer = api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=buffer))
        assert answer.status == 200
        versions.append(answer.body["policy_version"])

    threads = [threading.Thread(target=put, args=(20 + i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each got its own version, and every version is readable
    assert sorted(versions) == list(range(2, 10))
    assert api.call("GET", "/v1/venues/casa").body["policy_version"] == 9


def test_a_put_that_lost_the_race_goes_on_from_the_venue_its_refusal_returned(
    api: Api, resources: Resources, venue: Answer
) -> None:
    # Given a writer that read version 1, while another wrote the same policy as version 2
    store = ReservationsTable(DynamoTable(resources.reservations_table, resources.dynamodb))
    stale = store.venue("casa")
    changed = api.call("PUT", "/v1/venues/casa", venue_config(buffer_minutes=20)).body

    class ReadBeforeTheOther(ReservationsTable):
        def venue(self, venue_id: str, version: int | None = None) -> StoredVenue | None:
            return stale

    calls: list[str] = []
    resources.dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    # When it saves that policy
    config = VenueConfig.model_validate(venue_config(buffer_minutes=20))
    saved = catalog.save_venue(ReadBeforeTheOther(store.table), "casa", config, None, datetime.now(UTC))
    # Then its refused write returned version 2, which already has the policy: nothing more is done
    assert (saved.policy_version, saved.policy_hash) == (2, changed["policy_hash"])
    assert calls == ["TransactWriteItems"]
    assert api.call("GET", "/v1/venues/casa").body["policy_version"] == 2


def test_an_invalid_venue_is_422_without_echoing_what_was_sent(api: Api) -> None:
    config = venue_config()
    config["tables"][0]["zone"] = ""
    config["tables"][1]["combinable_with"] = ["Secret-Table-Name"]
    answer = api.call("PUT", "/v1/venues/casa", config)
    body = problem(answer, 422, "VALIDATION_FAILED")
    assert body["errors"]
    assert "Secret-Table-Name" not in str(body)


# -- holds -------------------------------------------------------------------------------------


def test_a_hold_takes_the_smallest_fitting_table_and_records_its_metadata(api: Api, venue: Answer) -> None:
    answer = api.call("POST", "/v1/holds", hold_request(party_size=2))
    assert answer.status == 201
    hold = answer.body
    assert (hold["status"], hold["table_ids"], hold["policy_version"]) == ("held", ["T1"], 1)
    assert hold["policy_hash"] == CONTRACT_POLICY_HASH
    snapshot = hold["selection_snapshot"]
    assert snapshot["tables"] == [{"id": "T1", "capacity": 2}]
    assert snapshot["zone"] is None
    assert hold["ends_at"] == at(start() + timedelta(minutes=90))
    assert api.call("GET", f"/v1/holds/{hold['hold_id']}").body == hold


def test_holds_fill_tables_then_combine_then_run_out(api: Api, venue: Answer) -> None:
    # Parties of 2 take T1, then T2; T3 seats 3 or more
    tables = [api.call("POST", "/v1/holds", hold_request(party_size=2)).body["table_ids"] for _ in range(2)]
    assert tables == [["T1"], ["T2"]]
    problem(api.call("POST", "/v1/holds", hold_request(party_size=2)), 409, "NO_AVAILABILITY")
    # Another day, a party of 6 outside the terraza is seated on T1+T2 combined
    combined = api.call("POST", "/v1/holds", hold_request(party_size=6, zone="main", starts_at=start(days=5)))
    assert combined.body["table_ids"] == ["T1", "T2"]
    answer = api.call("POST", "/v1/holds", hold_request(party_size=2, zone="main", starts_at=start(days=5)))
    assert problem(answer, 409, "NO_AVAILABILITY")["reason"] == "no_table"


def test_a_party_above_the_policy_maximum_is_party_too_large(api: Api, venue: Answer) -> None:
    answer = api.call("POST", "/v1/holds", hold_request(party_size=11))
    assert problem(answer, 409, "NO_AVAILABILITY")["reason"] == "party_too_large"


def test_the_next_owner_may_start_when_the_buffer_ends_not_before(api: Api, venue: Answer) -> None:
    # Given T1 held 20:00-21:30 with a 10-minute buffer
    assert api.call("POST", "/v1/holds", hold_request(zone="main")).body["table_ids"] == ["T1"]
    # Then 21:30 still sees T1 owned (buffer) and 21:45 (after 21:40) sees it free
    busy = api.call("POST", "/v1/holds", hold_request(starts_at=start(hour=21, minute=30), zone="main"))
    assert busy.body["table_ids"] == ["T2"]
    free = api.call("POST", "/v1/holds", hold_request(starts_at=start(hour=21, minute=45), zone="main"))
    assert free.body["table_ids"] == ["T1"]


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"starts_at": at(start(minute=7))}, "starts_at"),
        ({"starts_at": at(datetime.now(UTC) - timedelta(hours=1))}, "starts_at"),
        ({"starts_at": at(start(days=400))}, "starts_at"),
        ({"duration_minutes": 100}, "duration_minutes"),
        ({"duration_minutes": 495}, "duration_minutes"),
        ({"party_size": 0}, "party_size"),
    ],
)
def test_hold_timing_and_bounds_are_validated(
    api: Api, venue: Answer, changes: dict[str, Any], where: str
) -> None:
    body = problem(api.call("POST", "/v1/holds", {**hold_request(), **changes}), 422, "VALIDATION_FAILED")
    assert where in str(body["errors"])


def test_a_hold_on_an_unknown_venue_is_404(api: Api) -> None:
    problem(api.call("POST", "/v1/holds", hold_request()), 404, "VENUE_NOT_FOUND")


def test_releasing_a_hold_frees_its_table_and_a_second_release_is_not_active(api: Api, venue: Answer) -> None:
    hold = api.call("POST", "/v1/holds", hold_request()).body
    released = api.call("DELETE", f"/v1/holds/{hold['hold_id']}")
    assert (released.status, released.body["status"]) == (200, "released")
    assert api.call("POST", "/v1/holds", hold_request()).body["table_ids"] == ["T1"]
    problem(api.call("DELETE", f"/v1/holds/{hold['hold_id']}"), 409, "HOLD_NOT_ACTIVE")
    problem(api.call("DELETE", "/v1/holds/hld_unknown"), 404, "HOLD_NOT_FOUND")
    problem(api.call("GET", "/v1/holds/hld_unknown"), 404, "HOLD_NOT_FOUND")


def test_an_expired_hold_reads_expired_owns_nothing_and_cannot_be_released(api: Api) -> None:
    # Given a venue whose holds live one second
    api.call("PUT", "/v1/venues/casa", venue_config(hold_ttl_seconds=1))
    hold = api.call("POST", "/v1/holds", hold_request()).body
    # When it has expired (decided by time, not TTL)
    deadline = datetime.fromisoformat(hold["expires_at"])
    while datetime.now(UTC) <= deadline:
        threading.Event().wait(0.05)
    # Then it reads expired, its table is free again, and it cannot be released
    assert api.call("GET", f"/v1/holds/{hold['hold_id']}").body["status"] == "expired"
    assert api.call("POST", "/v1/holds", hold_request()).body["table_ids"] == ["T1"]
    problem(api.call("DELETE", f"/v1/holds/{hold['hold_id']}"), 409, "HOLD_NOT_ACTIVE")


def test_concurrent_holds_for_one_table_exactly_one_wins(api: Api) -> None:
    config = venue_config()
    config["tables"] = config["tables"][:1]
    config["tables"][0]["combinable_with"] = []
    api.call("PUT", "/v1/venues/casa", config)
    answers = _at_once(api, [hold_request() for _ in range(6)])
    assert sorted(a.status for a in answers) == [201] + [409] * 5


def test_as_many_tables_as_requests_all_win_on_distinct_tables(api: Api) -> None:
    # Given eight identical two-tops
    config = venue_config()
    config["tables"] = [{"id": f"T{i}", "capacity": 2, "zone": "main"} for i in range(8)]
    api.call("PUT", "/v1/venues/casa", config)
    # When eight parties ask at the same instant
    answers = _at_once(api, [hold_request() for _ in range(8)])
    # Then every one is held, none on a table another has
    assert [a.status for a in answers] == [201] * 8
    tables = [a.body["table_ids"][0] for a in answers]
    assert sorted(tables) == sorted(f"T{i}" for i in range(8))


def test_a_policy_change_between_two_holds_applies_to_the_second(api: Api, venue: Answer) -> None:
    first = api.call("POST", "/v1/holds", hold_request(party_size=3)).body
    api.call("PUT", "/v1/venues/casa", venue_config(max_party_size=2))
    second = api.call("POST", "/v1/holds", hold_request(party_size=3, starts_at=start(days=4)))
    assert first["policy_version"] == 1
    assert problem(second, 409, "NO_AVAILABILITY")["reason"] == "party_too_large"
    third = api.call("POST", "/v1/holds", hold_request(party_size=2, starts_at=start(days=4))).body
    assert (third["policy_version"], third["policy_hash"]) == (
        2,
        api.call("GET", "/v1/venues/casa").body["policy_hash"],
    )


# -- bookings ----------------------------------------------------------------------------------


def _confirmed_booking(api: Api, booking_id: str) -> dict[str, Any]:
    hold = api.call("POST", "/v1/holds", hold_request()).body
    assert api.call("POST", f"/v1/holds/{hold['hold_id']}/confirm", {"booking_id": booking_id}).status == 200
    return dict(hold)


def test_a_booking_reads_back_and_cancelling_it_frees_its_tables(api: Api, venue: Answer) -> None:
    hold = _confirmed_booking(api, "bk_1")
    booking = api.call("GET", "/v1/bookings/bk_1").body
    assert booking == {
        "booking_id": "bk_1",
        "hold_id": hold["hold_id"],
        "venue_id": "casa",
        "table_ids": ["T1"],
        "starts_at": hold["starts_at"],
        "ends_at": hold["ends_at"],
        "status": "confirmed",
    }
    assert api.call("GET", f"/v1/holds/{hold['hold_id']}").body["status"] == "confirmed"
    # While it stands T1 is taken; once cancelled (twice: the same answer), T1 is free
    assert api.call("POST", "/v1/holds", hold_request()).body["table_ids"] == ["T2"]
    first = api.call("DELETE", "/v1/bookings/bk_1")
    again = api.call("DELETE", "/v1/bookings/bk_1")
    assert first.status == again.status == 200
    assert first.body == again.body == {**booking, "status": "cancelled"}
    assert api.call("POST", "/v1/holds", hold_request()).body["table_ids"] == ["T1"]
    problem(api.call("GET", "/v1/bookings/bk_unknown"), 404, "BOOKING_NOT_FOUND")
    problem(api.call("DELETE", "/v1/bookings/bk_unknown"), 404, "BOOKING_NOT_FOUND")


def _at_once(api: Api, bodies: list[dict[str, Any]]) -> list[Answer]:
    barrier = threading.Barrier(len(bodies))
    answers: list[Answer | None] = [None] * len(bodies)

    def send(index: int) -> None:
        barrier.wait()
        answers[index] = api.call("POST", "/v1/holds", bodies[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [a for a in answers if a is not None]


def test_the_served_openapi_document_is_the_committed_one(api: Api) -> None:
    from pathlib import Path

    answer = api.call("GET", "/v1/openapi.json")
    committed = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text())
    assert answer.status == 200
    assert answer.body == committed, "run: .venv/bin/python scripts/generate_schemas.py"
    assert committed["openapi"].startswith("3.1")
    assert api.call("GET", "/v1/health").body == {"status": "ok"}
