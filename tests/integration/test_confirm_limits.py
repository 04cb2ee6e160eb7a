"""Confirmation at the contract's limits (docs/reference/http-api.md#order-of-checks), through the real
function against moto: the largest transaction a confirm can write, and the order of its errors where two
of them apply at once."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from booking_durability.adapters.holds_table import hold_item
from booking_durability.reservations.holds import Hold
from booking_durability.reservations.intervals import OWNERSHIP_BUCKET_MINUTES
from booking_durability.wiring import reservations_api
from tests.builders import policy, table
from tests.integration.conftest import Api, Resources
from tests.integration.test_api_confirm import _attr, confirm, held, outbox, store_of
from tests.integration.test_api_reservations import hold_request, problem, start

__all__ = ["held"]  # test_api_confirm.py's fixture (a held hold at the contract's venue), used here

# -- the largest transaction ------------------------------------------------------------------

# The limits (docs/reference/http-api.md#venue-config): the longest hold, the longest buffer, the most tables
# combined.
LONGEST_HOLD_MINUTES = 480
LONGEST_BUFFER_MINUTES = 120
MOST_TABLES = 3
TRANSACTION_LIMIT = 100  # DynamoDB's TransactWriteItems limit
SLOT_MINUTES = 30


def _zone(prefix: str, zone: str) -> list[dict[str, Any]]:
    """MOST_TABLES one-seat tables, each combinable with the others: a party of MOST_TABLES takes
    all of them, and no fewer would seat it."""
    ids = [f"{prefix}{n}" for n in range(1, MOST_TABLES + 1)]
    return [table(i, 1, zone=zone, combinable_with=[o for o in ids if o != i]) for i in ids]


def _widest_venue(bookable_zone: str, buffer_minutes: int = LONGEST_BUFFER_MINUTES) -> dict[str, Any]:
    return {
        "tables": _zone("A", "main") + _zone("B", "terraza"),
        "policy": policy(
            slot_minutes=SLOT_MINUTES,
            default_duration_minutes=LONGEST_HOLD_MINUTES,
            buffer_minutes=buffer_minutes,
            max_party_size=100,
            bookable_zones=[bookable_zone],
        ),
    }


def _transactions(api_client: Any) -> list[list[dict[str, Any]]]:
    """The ``TransactItems`` of every transaction the client sends from now on, in order."""
    sent: list[list[dict[str, Any]]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(json.loads(params["body"])["TransactItems"])

    api_client.meta.events.register("before-call.dynamodb.TransactWriteItems", record)
    return sent


def _item_key(operation: dict[str, Any]) -> tuple[str, str, str]:
    [(kind, body)] = operation.items()
    key = body["Item"] if kind == "Put" else body["Key"]
    return body["TableName"], key["pk"]["S"], key["sk"]["S"]


def test_the_widest_drift_replacement_fits_one_transaction_with_no_item_twice(api: Api) -> None:
    # Given a hold of the longest duration and buffer on the most tables a hold can combine,
    # starting off the hour so that it touches one ownership bucket more
    assert api.call("PUT", "/v1/venues/casa", _widest_venue("main")).status == 200
    starts_at = start(hour=20, minute=SLOT_MINUTES)
    # (no longer buffer or hold is accepted: this is the widest hold the service can be asked for)
    wider = _widest_venue("main", buffer_minutes=LONGEST_BUFFER_MINUTES + 1)
    problem(api.call("PUT", "/v1/venues/casa", wider), 422, "VALIDATION_FAILED")
    longer = hold_request(starts_at=starts_at, duration_minutes=LONGEST_HOLD_MINUTES + SLOT_MINUTES)
    problem(api.call("POST", "/v1/holds", longer), 422, "VALIDATION_FAILED")
    hold = api.call(
        "POST",
        "/v1/holds",
        hold_request(party_size=MOST_TABLES, starts_at=starts_at, duration_minutes=LONGEST_HOLD_MINUTES),
    )
    assert hold.status == 201, hold.body
    old_tables = [f"A{n}" for n in range(1, MOST_TABLES + 1)]
    assert hold.body["table_ids"] == old_tables
    # And a policy change that seats the same party on as many other tables, same times and buffer
    assert api.call("PUT", "/v1/venues/casa", _widest_venue("terraza")).body["policy_version"] == 2
    sent = _transactions(reservations_api.store().table.client)

    # When it is confirmed (with an Idempotency-Key, the most a confirmation writes)
    answer = confirm(api, hold.body["hold_id"], "bk_wide", key="key-wide")

    # Then drift is recovered on the other tables
    assert answer.status == 200, answer.body
    new_tables = [f"B{n}" for n in range(1, MOST_TABLES + 1)]
    assert answer.body["table_ids"] == new_tables
    assert answer.body["policy_drift"]["recovered"] is True
    # And no transaction exceeds DynamoDB's limit or names an item twice (which DynamoDB refuses)
    sizes = [len(items) for items in sent]
    assert sent, "no transaction was seen"
    assert max(sizes) <= TRANSACTION_LIMIT, sizes
    for items in sent:
        keys = [_item_key(operation) for operation in items]
        assert len(set(keys)) == len(keys)
    # The largest is the replacement: each of the old and new tables in every hour bucket the
    # owned interval [starts_at, ends_at + buffer) touches (an off-hour start touches one more),
    # plus the venue's policy check, the original hold (where the drift flow begins), the
    # replacement hold, and the booking id and Idempotency-Key the flow claims.
    offset = SLOT_MINUTES % OWNERSHIP_BUCKET_MINUTES
    hours = math.ceil((offset + LONGEST_HOLD_MINUTES + LONGEST_BUFFER_MINUTES) / OWNERSHIP_BUCKET_MINUTES)
    assert hours == 11  # the hour buckets of the design note
    expected = 2 * MOST_TABLES * hours + 5
    assert expected == 71
    largest = sent[sizes.index(max(sizes))]
    assert len(largest) == expected, sizes
    first_bucket = starts_at.replace(minute=0)
    owned = {
        (f"OWN#casa#{bucket:%Y-%m-%d}", f"{bucket:%H}#{table_id}")
        for table_id in old_tables + new_tables
        for bucket in (first_bucket + timedelta(minutes=OWNERSHIP_BUCKET_MINUTES * n) for n in range(hours))
    }
    assert {(pk, sk) for _, pk, sk in map(_item_key, largest) if pk.startswith("OWN#")} == owned


# -- the order of confirmation errors ---------------------------------------------------------


def _plant(resources: Resources, hold: Hold, **changes: Any) -> str:
    """A copy of ``hold`` stored under another id with ``changes``. A hold lacking metadata is
    what an import may leave (docs/reference/importing-holds.md#what-an-import-stores); the service itself
    never makes one."""
    stored = store_of(resources).hold(hold.hold_id)
    assert stored is not None
    planted = Hold.model_validate({**hold.model_dump(), **changes})
    resources.dynamodb.put_item(
        TableName=resources.reservations_table,
        Item={k: _attr(v) for k, v in hold_item(planted, stored.owns_until).items()},
    )
    return planted.hold_id


_PAST = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "status", "code", "reads_as"),
    [
        ({"expires_at": _PAST}, 409, "HOLD_EXPIRED", "expired"),
        ({"status": "released"}, 409, "HOLD_NOT_ACTIVE", "released"),
        ({"status": "superseded"}, 409, "HOLD_NOT_ACTIVE", "superseded"),
    ],
)
def test_a_hold_lacking_metadata_is_422_even_when_it_is_no_longer_held(
    api: Api,
    resources: Resources,
    held: dict[str, Any],
    state: dict[str, Any],
    status: int,
    code: str,
    reads_as: str,
) -> None:
    # Given two holds in the same state, one with its metadata and one without
    stored = store_of(resources).hold(held["hold_id"])
    assert stored is not None
    complete = _plant(resources, stored.hold, hold_id="hld_complete", **state)
    lacking = _plant(resources, stored.hold, hold_id="hld_lacking", policy_hash=None, **state)
    # Then the complete one is refused for its state (point 2), the other for its metadata (point 1)
    problem(confirm(api, complete, "bk_complete"), status, code)
    body = problem(confirm(api, lacking, "bk_lacking"), 422, "HOLD_METADATA_INCOMPLETE")
    assert body["missing"] == ["policy_hash"]
    # And nothing changed
    assert api.call("GET", f"/v1/holds/{lacking}").body["status"] == reads_as
    problem(api.call("GET", "/v1/bookings/bk_lacking"), 404, "BOOKING_NOT_FOUND")
    assert outbox(resources) == []


def test_a_repeat_answers_before_metadata_is_checked_and_another_booking_after(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    # Given a confirmed hold whose stored metadata is then lost
    first = confirm(api, held["hold_id"], "bk_1", key="key-1")
    assert first.status == 200
    key = {"pk": {"S": f"HOLD#{held['hold_id']}"}, "sk": {"S": "HOLD"}}
    item = resources.dynamodb.get_item(TableName=resources.reservations_table, Key=key)["Item"]
    doc = json.loads(item["doc"]["S"])
    del doc["policy_hash"]
    resources.dynamodb.update_item(
        TableName=resources.reservations_table,
        Key=key,
        UpdateExpression="SET doc = :doc",
        ExpressionAttributeValues={":doc": {"S": json.dumps(doc)}},
    )
    # Then a repeat, by booking id or by key, answers the first body (point 0)
    assert confirm(api, held["hold_id"], "bk_1").body == first.body
    assert confirm(api, held["hold_id"], "bk_1", key="key-1").body == first.body
    # And a key used for this hold is refused for another booking before the metadata (point 0)
    problem(confirm(api, held["hold_id"], "bk_2", key="key-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    # But another booking without the key meets the metadata (point 1), not HOLD_NOT_ACTIVE (point 2)
    body = problem(confirm(api, held["hold_id"], "bk_2"), 422, "HOLD_METADATA_INCOMPLETE")
    assert body["missing"] == ["policy_hash"]


def test_a_key_used_for_another_hold_is_refused_before_the_metadata_is_checked(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    assert confirm(api, held["hold_id"], "bk_1", key="key-1").status == 200
    stored = store_of(resources).hold(held["hold_id"])
    assert stored is not None
    lacking = _plant(
        resources,
        stored.hold,
        hold_id="hld_lacking",
        status="held",
        policy_hash=None,
        selection_snapshot=None,
    )
    problem(confirm(api, lacking, "bk_2", key="key-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    # Without the key, the same request meets the metadata
    body = problem(confirm(api, lacking, "bk_2"), 422, "HOLD_METADATA_INCOMPLETE")
    assert body["missing"] == ["policy_hash", "selection_snapshot"]


# -- a hold whose tables cannot seat its party --------------------------------------------------


def _unfit(resources: Resources, held: dict[str, Any], hold_id: str, **changes: Any) -> str:
    """A complete copy of ``held`` quoted under version 1 whose tables cannot seat its party: what
    an import that checked nothing, then a backfill, could leave. The service never makes one."""
    stored = store_of(resources).hold(held["hold_id"])
    assert stored is not None
    return _plant(resources, stored.hold, hold_id=hold_id, **changes)


@pytest.mark.parametrize(
    ("party_size", "table_ids", "zone"),
    [
        (9, ("T1",), None),  # a party of 9 on a 2-seat table
        (2, ("T3",), None),  # T3 seats 3 at least
        (5, ("T1", "T3"), None),  # never combinable: T1 and T3 do not list each other
        (2, ("T1",), "terraza"),  # T1 is not in the zone that was asked
        (11, ("T1", "T2"), None),  # above the policy's max_party_size (and the pair's 6 seats)
    ],
)
def test_a_hold_whose_tables_cannot_seat_its_party_is_422_and_nothing_changes(
    api: Api,
    resources: Resources,
    held: dict[str, Any],
    party_size: int,
    table_ids: tuple[str, ...],
    zone: str | None,
) -> None:
    # Given a complete hold whose tables, as version 1 describes them, cannot seat its party
    stored = store_of(resources).hold(held["hold_id"])
    assert stored is not None
    assert stored.hold.selection_snapshot is not None
    snapshot = stored.hold.selection_snapshot.model_copy(update={"party_size": party_size, "zone": zone})
    unfit = _unfit(
        resources,
        held,
        "hld_unfit",
        party_size=party_size,
        table_ids=table_ids,
        selection_snapshot=snapshot,
    )
    # When it is confirmed, Then it is refused, naming why
    body = problem(confirm(api, unfit, "bk_unfit", key="key-unfit"), 422, "HOLD_INVALID")
    assert body["reason"] == "party_does_not_fit"
    # And nothing changed: still held, no booking, no answer for the key, no event
    assert api.call("GET", f"/v1/holds/{unfit}").body["status"] == "held"
    problem(api.call("GET", "/v1/bookings/bk_unfit"), 404, "BOOKING_NOT_FOUND")
    assert confirm(api, held["hold_id"], "bk_other", key="key-unfit").status == 200
    assert outbox(resources) == []


def test_seating_is_judged_under_the_version_the_hold_was_quoted_under(
    api: Api, resources: Resources, held: dict[str, Any]
) -> None:
    # Given a party of 4 on T1 under version 1 (T1 seats 2), and a version 2 where T1 seats 4
    unfit = _unfit(resources, held, "hld_unfit", party_size=4)
    tables = [table("T1", 4, zone="main"), table("T2", 4, zone="main")]
    assert api.call("PUT", "/v1/venues/casa", {"tables": tables, "policy": policy()}).status == 200
    # Then it is refused before any drift is met: it never fitted what it was quoted under
    problem(confirm(api, unfit, "bk_unfit"), 422, "HOLD_INVALID")
    assert outbox(resources) == []
    assert api.call("GET", f"/v1/holds/{unfit}").body["status"] == "held"


@pytest.mark.parametrize(
    ("state", "reads_as"),
    [({"expires_at": _PAST}, "expired"), ({"status": "superseded"}, "superseded")],
)
def test_seating_is_checked_after_the_metadata_and_before_expiry_or_activity(
    api: Api, resources: Resources, held: dict[str, Any], state: dict[str, Any], reads_as: str
) -> None:
    # An unfit hold lacking metadata is refused for its metadata (point 1 checks that first)
    lacking = _unfit(resources, held, "hld_lacking", party_size=9, policy_hash=None, **state)
    problem(confirm(api, lacking, "bk_lacking"), 422, "HOLD_METADATA_INCOMPLETE")
    # A complete one for its seating, though it is also expired or no longer held (point 2)
    unfit = _unfit(resources, held, "hld_unfit", party_size=9, **state)
    problem(confirm(api, unfit, "bk_unfit"), 422, "HOLD_INVALID")
    assert api.call("GET", f"/v1/holds/{unfit}").body["status"] == reads_as
