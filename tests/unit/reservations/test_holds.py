"""Hold requests, their timing rules, and holds as stored and answered (docs/reference/http-api.md#holds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from booking_durability.reservations.allocator import AllocatedTable, Allocation
from booking_durability.reservations.holds import (
    Hold,
    HoldRequest,
    HoldStatus,
    check_hold_timing,
    missing_metadata,
    new_hold,
)
from booking_durability.reservations.refusals import HoldMetadataIncomplete, HoldTimingInvalid
from booking_durability.reservations.venues import STORED, SeatingPolicy
from tests.unit.reservations.builders import (
    HASH,
    NOW,
    PLANTED,
    STARTS_AT,
    hold,
    hold_request,
    iso,
    policy,
    snapshot,
)


def _policy(**overrides: Any) -> SeatingPolicy:
    # The vector's 90-minute visits, or two hours where 90 minutes is not a whole number of slots.
    slot = overrides.get("slot_minutes", 15)
    return SeatingPolicy.model_validate(
        policy(default_duration_minutes=90 if 90 % slot == 0 else 120, **overrides)
    )


def _timing(
    request: dict[str, Any], now: datetime = NOW, **policy_overrides: Any
) -> tuple[datetime, datetime]:
    return check_hold_timing(HoldRequest.model_validate(request), _policy(**policy_overrides), now)


def _timing_errors(
    request: dict[str, Any], now: datetime = NOW, **policy_overrides: Any
) -> list[dict[str, Any]]:
    with pytest.raises(HoldTimingInvalid) as caught:
        _timing(request, now, **policy_overrides)
    return caught.value.errors


def _locations(errors: list[dict[str, Any]]) -> list[str]:
    return [".".join(map(str, error["loc"])) for error in errors]


# --- the request -----------------------------------------------------------------------------------


def test_a_minimal_request_is_valid() -> None:
    request = HoldRequest.model_validate(hold_request())
    assert (request.duration_minutes, request.zone) == (None, None)


@pytest.mark.parametrize(
    ("overrides", "valid"),
    [
        ({"venue_id": "v" * 128}, True),
        ({"venue_id": "v" * 129}, False),
        ({"venue_id": ""}, False),
        ({"venue_id": "casa lucio"}, False),
        ({"party_size": 1}, True),
        ({"party_size": 1000}, True),  # above any max_party_size: a 409 party_too_large, not a 422
        ({"party_size": 0}, False),
        ({"party_size": 1001}, False),
        ({"starts_at": "2026-12-24T20:30:00"}, False),  # no offset
        ({"starts_at": "2026-12-24T21:30:00+01:00"}, True),
        ({"duration_minutes": 0}, False),
        ({"duration_minutes": 120}, True),
        ({"duration_minutes": 480}, True),
        ({"duration_minutes": 481}, False),  # no hold is longer, under any policy
        ({"zone": "terraza"}, True),
        ({"zone": ""}, False),
        ({"zone": "z" * 65}, False),
        ({"guests": ["Ana"]}, False),
    ],
)
def test_request_bounds(overrides: dict[str, Any], valid: bool) -> None:
    body = hold_request(**overrides)
    if valid:
        HoldRequest.model_validate(body)
    else:
        with pytest.raises(ValidationError):
            HoldRequest.model_validate(body)


@pytest.mark.parametrize(
    "overrides",
    [{"venue_id": PLANTED + "!"}, {"zone": PLANTED * 4}, {"party_size": PLANTED}, {"starts_at": PLANTED}],
)
def test_request_errors_never_echo_a_submitted_value(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        HoldRequest.model_validate(hold_request(**overrides))
    assert PLANTED not in str(caught.value)
    assert PLANTED not in json.dumps(caught.value.errors(include_input=False, include_url=False), default=str)


# --- timing ----------------------------------------------------------------------------------------


def test_an_aligned_future_start_gives_the_default_duration() -> None:
    # Given a policy of 15-minute slots and 90-minute visits  When a hold starts at 20:30
    # Then it ends at 22:00
    assert _timing(hold_request()) == (STARTS_AT, STARTS_AT + timedelta(minutes=90))


def test_a_given_duration_replaces_the_default() -> None:
    assert _timing(hold_request(duration_minutes=120))[1] == STARTS_AT + timedelta(minutes=120)


def test_times_come_back_in_utc() -> None:
    starts_at, ends_at = _timing(hold_request(starts_at="2026-12-24T21:30:00+01:00"))
    assert (starts_at, ends_at) == (STARTS_AT, STARTS_AT + timedelta(minutes=90))
    assert starts_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("starts_at", "slot_minutes", "aligned"),
    [
        ("2026-12-24T20:45:00Z", 15, True),
        ("2026-12-24T20:40:00Z", 15, False),
        ("2026-12-24T20:40:00Z", 20, True),
        ("2026-12-24T20:30:01Z", 15, False),
        ("2026-12-24T20:30:00.000001Z", 15, False),
        ("2026-12-24T20:30:00Z", 60, False),
        ("2026-12-24T21:00:00Z", 60, True),
        # 21:45 at +05:45 is 16:00 UTC: alignment is in UTC minutes, not in the local clock
        ("2026-12-24T21:45:00+05:45", 60, True),
        ("2026-12-24T21:00:00+05:45", 30, False),
    ],
)
def test_starts_align_to_the_slots_in_utc(starts_at: str, slot_minutes: int, aligned: bool) -> None:
    request = hold_request(starts_at=starts_at, duration_minutes=60)
    if aligned:
        _timing(request, slot_minutes=slot_minutes)
    else:
        errors = _timing_errors(request, slot_minutes=slot_minutes)
        assert errors == [
            {"loc": ["starts_at"], "msg": f"starts_at must fall on the venue's {slot_minutes}-minute slots"}
        ]


@pytest.mark.parametrize(
    ("starts_at", "valid"),
    [
        (NOW - timedelta(minutes=15), False),
        (NOW, False),  # now is not the future
        (NOW + timedelta(minutes=15), True),
        (NOW + timedelta(days=365), True),
        (NOW + timedelta(days=365, minutes=15), False),
    ],
)
def test_starts_are_in_the_future_and_at_most_365_days_ahead(starts_at: datetime, valid: bool) -> None:
    request = hold_request(starts_at=iso(starts_at))
    if valid:
        assert _timing(request)[0] == starts_at
    else:
        assert _locations(_timing_errors(request)) == ["starts_at"]


@pytest.mark.parametrize(
    ("duration", "slot_minutes", "valid"),
    [(15, 15, True), (480, 15, True), (100, 15, False), (90, 60, False), (480, 60, True)],
)
def test_durations_are_whole_slots_up_to_480_minutes(duration: int, slot_minutes: int, valid: bool) -> None:
    request = hold_request(starts_at="2026-12-24T20:00:00Z", duration_minutes=duration)
    if valid:
        _timing(request, slot_minutes=slot_minutes)
    else:
        assert _locations(_timing_errors(request, slot_minutes=slot_minutes)) == ["duration_minutes"]


def test_a_default_duration_off_the_slots_is_blamed_on_the_venue() -> None:
    # Given a venue stored before its default duration had to be whole slots: 60-minute slots
    # and a 90-minute default
    stored = SeatingPolicy.model_validate(
        policy(slot_minutes=60, default_duration_minutes=90), context={STORED: True}
    )
    # When no duration is asked
    request = HoldRequest.model_validate(hold_request(starts_at="2026-12-24T20:00:00Z"))
    with pytest.raises(HoldTimingInvalid) as caught:
        check_hold_timing(request, stored, NOW)
    errors = caught.value.errors
    assert errors == [
        {"loc": ["duration_minutes"], "msg": "the venue's default duration does not fit its 60-minute slots"}
    ]


def test_every_broken_rule_is_reported_at_once_without_the_submitted_values() -> None:
    # Given a start in the past, off the slots, and a duration off the slots
    request = hold_request(starts_at="2025-01-01T10:07:00Z", duration_minutes=100)
    with pytest.raises(HoldTimingInvalid) as caught:
        _timing(request)
    error = caught.value
    # Then all three come back, answered as request validation
    assert _locations(error.errors) == ["starts_at", "starts_at", "duration_minutes"]
    assert (error.code, error.status) == ("VALIDATION_FAILED", 422)
    assert error.problem_fields() == {"errors": error.errors}
    text = json.dumps(error.problem_fields()) + str(error)
    assert "2025" not in text
    assert "10:07" not in text
    assert "100" not in text


# --- the hold --------------------------------------------------------------------------------------


def _hold(**overrides: Any) -> Hold:
    return Hold.model_validate(hold(**overrides))


@pytest.mark.parametrize(
    ("status", "now", "effective"),
    [
        ("held", NOW, HoldStatus.HELD),
        ("held", NOW + timedelta(minutes=10) - timedelta(microseconds=1), HoldStatus.HELD),
        ("held", NOW + timedelta(minutes=10), HoldStatus.EXPIRED),
        ("held", NOW + timedelta(days=1), HoldStatus.EXPIRED),
        ("confirmed", NOW + timedelta(days=1), HoldStatus.CONFIRMED),
        ("released", NOW, HoldStatus.RELEASED),
        ("superseded", NOW + timedelta(days=1), HoldStatus.SUPERSEDED),
    ],
)
def test_a_held_hold_reads_as_expired_from_its_expiry(
    status: str, now: datetime, effective: HoldStatus
) -> None:
    # Given a hold expiring at NOW + 10 minutes
    hold_ = _hold(status=status)
    assert hold_.effective_status(now) is effective


def test_the_answer_has_utc_z_times_and_the_status_as_of_now() -> None:
    # Given a hold stored with offsets
    hold_ = _hold(starts_at="2026-12-24T21:30:00+01:00", ends_at="2026-12-24T23:00:00+01:00")
    # When it is answered after its expiry
    body = hold_.to_response(NOW + timedelta(hours=1))
    # Then every time is UTC with a Z, and it reads as expired
    assert body["starts_at"] == "2026-12-24T20:30:00Z"
    assert body["ends_at"] == "2026-12-24T22:00:00Z"
    assert body["expires_at"] == "2026-12-01T12:10:00Z"
    assert body["selection_snapshot"]["quoted_at"] == "2026-12-01T12:00:00Z"
    assert body["status"] == "expired"
    assert body["table_ids"] == ["T2"]
    assert json.loads(json.dumps(body)) == body


def test_an_answered_hold_reads_back_as_the_same_hold() -> None:
    hold_ = _hold()
    assert Hold.model_validate(hold_.to_response(NOW)) == hold_


def test_an_imported_hold_answers_what_it_was_given() -> None:
    # Given an imported hold without policy metadata, and one with a partial snapshot
    bare = hold()
    for field in ("policy_hash", "policy_version", "selection_snapshot", "status"):
        del bare[field]
    partial = snapshot()
    del partial["quoted_at"]
    # Then the first answers nulls and held; the second's snapshot still lacks quoted_at
    body = Hold.model_validate(bare).to_response(NOW)
    assert (body["policy_hash"], body["policy_version"], body["selection_snapshot"]) == (None, None, None)
    assert body["status"] == "held"
    assert "quoted_at" not in _hold(selection_snapshot=partial).to_response(NOW)["selection_snapshot"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"ends_at": iso(STARTS_AT)},
        {"status": "pending"},
        {"policy_hash": "ABC"},
        {"table_ids": ["T 1"]},
        {"extra": 1},
        {"selection_snapshot": snapshot(extra=1)},
    ],
)
def test_malformed_holds_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _hold(**overrides)


def test_a_new_hold_is_complete_and_expires_after_the_policy_ttl() -> None:
    # Given an allocation for a request under the contract's policy (TTL 600 s)
    request = HoldRequest.model_validate(hold_request(zone="main"))
    timing = (STARTS_AT, STARTS_AT + timedelta(minutes=90))
    allocation = Allocation((AllocatedTable("T1", 2), AllocatedTable("T2", 4)))
    # When the hold is made
    quoted = new_hold(
        "hold_9",
        timing,
        allocation,
        venue_id=request.venue_id,
        party_size=request.party_size,
        zone=request.zone,
        policy=_policy(),
        policy_hash=HASH,
        policy_version=3,
        now=NOW,
    )
    # Then it owns the allocated tables for ten minutes, and records what was asked and chosen
    made = quoted.hold
    assert (quoted.policy_hash, quoted.party_size, quoted.zone) == (HASH, 4, "main")
    assert made.status is HoldStatus.HELD
    assert made.expires_at == NOW + timedelta(seconds=600)
    assert made.table_ids == ("T1", "T2")
    assert (made.policy_hash, made.policy_version) == (HASH, 3)
    assert made.to_response(NOW)["selection_snapshot"] == {
        "party_size": 4,
        "starts_at": "2026-12-24T20:30:00Z",
        "ends_at": "2026-12-24T22:00:00Z",
        "zone": "main",
        "tables": [{"id": "T1", "capacity": 2}, {"id": "T2", "capacity": 4}],
        "quoted_at": "2026-12-01T12:00:00Z",
    }
    assert missing_metadata(made) == []


def test_a_new_hold_without_a_zone_still_has_a_complete_snapshot() -> None:
    request = HoldRequest.model_validate(hold_request())
    timing = (STARTS_AT, STARTS_AT + timedelta(minutes=90))
    allocation = Allocation((AllocatedTable("T2", 4),))
    made = new_hold(
        "hold_9",
        timing,
        allocation,
        venue_id=request.venue_id,
        party_size=request.party_size,
        zone=request.zone,
        policy=_policy(),
        policy_hash=HASH,
        policy_version=1,
        now=NOW,
    ).hold
    assert made.to_response(NOW)["selection_snapshot"]["zone"] is None
    assert missing_metadata(made) == []


# --- metadata confirmation needs -------------------------------------------------------------------


def test_a_complete_hold_lacks_nothing() -> None:
    assert missing_metadata(_hold()) == []


def test_policy_version_is_not_required() -> None:
    assert missing_metadata(_hold(policy_version=None)) == []


def test_a_null_zone_in_the_snapshot_means_no_zone_was_asked() -> None:
    assert missing_metadata(_hold(selection_snapshot=snapshot(zone=None))) == []


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"policy_hash": None}, ["policy_hash"]),
        ({"table_ids": []}, ["table_ids"]),
        ({"selection_snapshot": None}, ["selection_snapshot"]),
        (
            {"policy_hash": None, "table_ids": [], "selection_snapshot": None},
            ["policy_hash", "table_ids", "selection_snapshot"],
        ),
        ({"selection_snapshot": {}}, ["selection_snapshot.tables"]),
        ({"selection_snapshot": snapshot(tables=[])}, ["selection_snapshot.tables"]),
        ({"selection_snapshot": snapshot(tables=None)}, ["selection_snapshot.tables"]),
        ({"selection_snapshot": snapshot(party_size=None)}, ["selection_snapshot.tables"]),
        ({"policy_hash": None, "selection_snapshot": {}}, ["policy_hash", "selection_snapshot.tables"]),
    ],
)
def test_missing_metadata_names_dotted_paths(overrides: dict[str, Any], missing: list[str]) -> None:
    assert missing_metadata(_hold(**overrides)) == missing


def test_an_absent_snapshot_key_is_the_same_as_a_null_one() -> None:
    body = hold()
    del body["selection_snapshot"]
    assert missing_metadata(Hold.model_validate(body)) == ["selection_snapshot"]


@pytest.mark.parametrize("field", ["party_size", "starts_at", "ends_at", "zone", "tables", "quoted_at"])
def test_any_field_missing_from_the_snapshot_is_reported_as_the_contract_words_it(field: str) -> None:
    # Given a snapshot lacking one field (docs/reference/http-api.md#order-of-checks:
    # "selection_snapshot.tables when one of its fields is" absent)
    partial = snapshot()
    del partial[field]
    # Then confirmation is told the snapshot is incomplete, under that one path
    missing = missing_metadata(_hold(selection_snapshot=partial))
    assert missing == ["selection_snapshot.tables"]
    error = HoldMetadataIncomplete(missing)
    assert (error.code, error.status, error.problem_fields()) == (
        "HOLD_METADATA_INCOMPLETE",
        422,
        {"missing": ["selection_snapshot.tables"]},
    )


def test_times_of_an_imported_hold_may_come_with_any_offset() -> None:
    madrid = timezone(timedelta(hours=1))
    hold_ = _hold(expires_at=datetime(2026, 12, 1, 13, 10, tzinfo=madrid).isoformat())
    assert hold_.expires_at == NOW + timedelta(minutes=10)
    assert hold_.expires_at.tzinfo is UTC
