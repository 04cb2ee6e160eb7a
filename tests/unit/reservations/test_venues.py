"""Venue config validation and its policy hash (docs/reference/http-api.md#venue-config,
docs/reference/http-api.md#policy-hash)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from booking_durability.reservations.venues import VenueConfig, canonical_json, policy_hash
from tests.unit.reservations.builders import HASH, PLANTED, config, policy, table, vector_tables, venue


def _refusal(body: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        VenueConfig.model_validate(body)
    return caught.value


def _locations(error: ValidationError) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in error.errors()}


# --- the policy hash -------------------------------------------------------------------------------


def test_contract_test_vector_hashes_to_the_published_value() -> None:
    # Given the contract's test vector  When it is hashed  Then the hash is the published one
    assert policy_hash(config()) == HASH


def test_canonical_json_is_compact_with_sorted_keys_and_defaults_filled() -> None:
    # Given the vector with T1 relying on the default min_party
    tables = vector_tables()
    del tables[0]["min_party"]
    # When it is written canonically
    text = canonical_json(config(tables))
    # Then the default is written out, keys are sorted and nothing is spaced
    assert text.startswith('{"policy":{"allow_combinations":true,"bookable_zones":["main","terraza"],')
    assert '{"capacity":2,"combinable_with":["T2"],"id":"T1","min_party":1,"zone":"main"}' in text
    assert " " not in text
    assert policy_hash(config(tables)) == HASH


def test_defaults_written_out_or_left_out_hash_the_same() -> None:
    # Given the vector with every default left out
    tables = [table("T1", 2, combinable_with=["T2"]), table("T2", 4, combinable_with=["T1"])]
    tables.append(table("T3", 6, min_party=3, zone="terraza"))
    # Then it is the same venue, with the same hash
    assert policy_hash(config(tables)) == HASH


def test_order_of_tables_zones_and_partners_does_not_change_the_hash() -> None:
    # Given the vector written in another order everywhere
    tables = list(reversed(vector_tables()))
    tables[1]["combinable_with"] = ["T1"]
    shuffled = config(tables, bookable_zones=["terraza", "main"])
    # Then it hashes the same, and normalizes to the same config
    assert policy_hash(shuffled) == HASH
    assert shuffled.normalized() == config().normalized()


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_any_order_of_any_list_hashes_the_same(data: st.DataObject) -> None:
    # Given a venue whose tables, partners and zones come in any order
    ids = [f"T{n}" for n in range(6)]
    tables = [
        table(
            table_id,
            4,
            zone=["main", "terraza", "bar"][n % 3],
            combinable_with=data.draw(st.permutations([other for other in ids if other != table_id])),
        )
        for n, table_id in enumerate(ids)
    ]
    zones = data.draw(st.permutations(["main", "terraza", "bar"]))
    given_order = config(data.draw(st.permutations(tables)), bookable_zones=list(zones))
    # Then the hash is that of the sorted venue
    sorted_tables = [{**t, "combinable_with": sorted(t["combinable_with"])} for t in tables]
    assert policy_hash(given_order) == policy_hash(config(sorted_tables, bookable_zones=sorted(zones)))


def _change_table(field: str, value: Any, position: int = 2) -> dict[str, Any]:
    body = venue()
    body["tables"][position][field] = value
    return body


@pytest.mark.parametrize(
    "changed",
    [
        _change_table("capacity", 7),
        _change_table("min_party", 2),
        _change_table("zone", "main"),
        _change_table("combinable_with", [], position=0),
        venue([*vector_tables(), table("T4", 2)]),
        venue([*vector_tables()[:2], table("T4", 6, min_party=3, zone="terraza")]),
        venue(slot_minutes=30),
        venue(default_duration_minutes=120),
        venue(buffer_minutes=0),
        venue(max_party_size=9),
        venue(hold_ttl_seconds=601),
        venue(allow_combinations=False),
        venue(bookable_zones=["main"]),
    ],
)
def test_any_changed_value_changes_the_hash(changed: dict[str, Any]) -> None:
    assert policy_hash(VenueConfig.model_validate(changed)) != HASH


def test_non_ascii_zones_are_hashed_as_utf8_not_escaped() -> None:
    # Given a zone with a non-ASCII letter
    venue_ = config([table("T1", 2, zone="terraza-baño")], bookable_zones=["terraza-baño"])
    # Then the canonical text carries the letter itself, hashed as UTF-8 (as RFC 8785 does)
    text = canonical_json(venue_)
    assert "terraza-baño" in text
    assert policy_hash(venue_) == hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- validation bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "valid"), [(0, False), (1, True), (200, True), (201, False)])
def test_a_venue_has_1_to_200_tables(count: int, valid: bool) -> None:
    body = venue([table(f"T{n}", 2) for n in range(count)])
    if valid:
        assert len(VenueConfig.model_validate(body).tables) == count
    else:
        assert "tables" in _locations(_refusal(body))


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        *[("slot_minutes", minutes, True) for minutes in (5, 10, 15, 30)],
        *[("slot_minutes", minutes, False) for minutes in (0, 1, 7, 25, 45, 120)],
        ("default_duration_minutes", 15, True),
        ("default_duration_minutes", 480, True),
        ("default_duration_minutes", 14, False),
        ("default_duration_minutes", 481, False),
        ("buffer_minutes", 0, True),
        ("buffer_minutes", 120, True),
        ("buffer_minutes", -1, False),
        ("buffer_minutes", 121, False),
        ("max_party_size", 1, True),
        ("max_party_size", 100, True),
        ("max_party_size", 0, False),
        ("max_party_size", 101, False),
        ("hold_ttl_seconds", 1, True),
        ("hold_ttl_seconds", 86400, True),
        ("hold_ttl_seconds", 0, False),
        ("hold_ttl_seconds", 86401, False),
        ("allow_combinations", False, True),
        ("allow_combinations", None, False),
        ("bookable_zones", [], True),
        ("bookable_zones", ["z" * 64], True),
        ("bookable_zones", ["z" * 65], False),
        ("bookable_zones", [""], False),
        ("bookable_zones", ["main", "main"], False),
        ("bookable_zones", [f"zone{n}" for n in range(201)], False),
    ],
)
def test_policy_bounds(field: str, value: Any, valid: bool) -> None:
    body = venue(**{field: value})
    if valid:
        assert getattr(VenueConfig.model_validate(body).policy, field) == value
    else:
        assert any(location.startswith(f"policy.{field}") for location in _locations(_refusal(body)))


@pytest.mark.parametrize(
    ("slot_minutes", "default_duration_minutes", "valid"),
    [(15, 90, True), (20, 120, True), (60, 480, True), (20, 90, False), (60, 90, False), (30, 45, False)],
)
def test_the_default_duration_is_a_whole_number_of_slots(
    slot_minutes: int, default_duration_minutes: int, valid: bool
) -> None:
    # Given a policy whose visits last the default duration  Then a hold of it can be made
    body = venue(slot_minutes=slot_minutes, default_duration_minutes=default_duration_minutes)
    if valid:
        VenueConfig.model_validate(body)
    else:
        assert _refusal(body).errors()[0]["loc"] == ("policy", "default_duration_minutes")


def test_a_config_stored_before_the_whole_slots_rule_reads_back() -> None:
    # Given a venue saved with 60-minute slots and 90-minute visits, as once allowed
    stored = json.dumps(venue(slot_minutes=60, default_duration_minutes=90))
    # Then reading it back still works (holds on it are refused with a 422 naming the duration)
    assert VenueConfig.from_stored(stored).policy.default_duration_minutes == 90
    with pytest.raises(ValidationError):
        VenueConfig.model_validate_json(stored)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity", "4"),
        ("capacity", True),
        ("capacity", 4.5),
        ("min_party", "1"),
        ("min_party", False),
    ],
)
def test_table_numbers_are_json_integers(field: str, value: Any) -> None:
    assert _locations(_refusal(venue([table("T1", **{field: value})]))) == {f"tables.0.{field}"}


def test_a_whole_float_is_the_integer_it_equals() -> None:
    # JSON Schema reads 4.0 as the integer 4; so does the service
    parsed = config([table("T1", capacity=4.0, min_party=2.0)])  # type: ignore[arg-type]
    assert (parsed.tables[0].capacity, parsed.tables[0].min_party) == (4, 2)
    assert canonical_json(parsed) == canonical_json(config([table("T1", capacity=4, min_party=2)]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slot_minutes", "15"),
        ("slot_minutes", True),
        ("default_duration_minutes", "90"),
        ("buffer_minutes", True),
        ("max_party_size", "10"),
        ("hold_ttl_seconds", 600.5),
        ("allow_combinations", 1),
        ("allow_combinations", "true"),
    ],
)
def test_policy_fields_are_strict_json_types(field: str, value: Any) -> None:
    assert _locations(_refusal(venue(**{field: value}))) == {f"policy.{field}"}


@pytest.mark.parametrize("zone", ["main\t", "ma\rin", "\x7f", "\x85", "main\u2028", "\ud800", "a\udfff"])
def test_zones_are_printable_text(zone: str) -> None:
    # Control characters (TAB, CR, DEL, C1), line separators and lone surrogates, in tables and policy
    assert _locations(_refusal(venue([table("T1", zone=zone)]))) == {"tables.0.zone"}
    assert _locations(_refusal(venue(bookable_zones=[zone]))) == {"policy.bookable_zones.0"}


def test_printable_zones_take_any_script_and_emoji() -> None:
    parsed = config([table("T1", zone="Sala 1 · 🍷 テラス")], bookable_zones=["Sala 1 · 🍷 テラス"])
    assert parsed.tables[0].zone == "Sala 1 · 🍷 テラス"


@pytest.mark.parametrize("field", sorted(policy()))
def test_every_policy_field_is_required(field: str) -> None:
    body = venue()
    del body["policy"][field]
    assert f"policy.{field}" in _locations(_refusal(body))


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        ({"capacity": 1, "min_party": 1}, True),
        ({"capacity": 0}, False),
        ({"capacity": 1000}, True),
        ({"capacity": 1001}, False),
        ({"min_party": 0}, False),
        ({"capacity": 4, "min_party": 4}, True),
        ({"capacity": 4, "min_party": 5}, False),
        ({"id": "t" * 64}, True),
        ({"id": "t" * 65}, False),
        ({"id": ""}, False),
        ({"id": "T 1"}, False),
        ({"id": "T/1"}, False),
        ({"id": "mesa-ñ"}, False),
        ({"id": "Mesa_1-b"}, True),
        ({"zone": "z" * 64}, True),
        ({"zone": "z" * 65}, False),
        ({"zone": ""}, False),
        ({"zone": "main\n"}, False),
        ({"zone": "main\ud800"}, False),
        ({"colour": "red"}, False),
    ],
)
def test_table_bounds(changes: dict[str, Any], valid: bool) -> None:
    body = venue([{**table("T9", 4, min_party=1), **changes}])
    if valid:
        VenueConfig.model_validate(body)
    else:
        assert any(location.startswith("tables.0") for location in _locations(_refusal(body)))


@pytest.mark.parametrize(
    "tables",
    [
        [table("T1"), table("T1", 4)],  # duplicate ids
        [table("T1", combinable_with=["T2"])],  # unknown partner
        [table("T1", combinable_with=["T1"])],  # itself
        [table("T1", combinable_with=["T2", "T2"]), table("T2")],  # repeated partner
    ],
)
def test_tables_must_be_unique_and_name_only_other_tables(tables: list[dict[str, Any]]) -> None:
    assert _locations(_refusal(venue(tables))) & {"tables", "tables.0", "tables.0.combinable_with"}


def test_partners_need_not_list_each_other_back() -> None:
    # Given T1 listing T2, but T2 not listing T1  Then the venue is valid (the allocator decides)
    venue_ = config([table("T1", combinable_with=["T2"]), table("T2")])
    assert venue_.tables[1].combinable_with == []


@pytest.mark.parametrize(
    "body",
    [
        {**venue(), "extra": 1},
        {**venue(), "policy": {**policy(), "extra": 1}},
    ],
)
def test_unknown_fields_are_refused(body: dict[str, Any]) -> None:
    assert _refusal(body).errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "body",
    [
        venue([table(PLANTED + "!")]),
        venue([table(PLANTED), table(PLANTED)]),
        venue([table("T1", combinable_with=[PLANTED])]),
        venue([table(PLANTED, combinable_with=[PLANTED])]),
        venue([table("T1", zone=PLANTED * 4)]),
        venue([table("T1", zone=PLANTED + "\x00")]),
        venue([table("T1", capacity=PLANTED)]),  # type: ignore[arg-type]
        venue(bookable_zones=[PLANTED, PLANTED]),
        venue(slot_minutes=PLANTED),
        venue(allow_combinations=PLANTED),
    ],
)
def test_errors_never_echo_a_submitted_value(body: dict[str, Any]) -> None:
    # Given a refused venue carrying a distinctive value
    error = _refusal(body)
    # Then neither the message nor the error list (as the API would answer it) repeats it
    assert PLANTED not in str(error)
    assert PLANTED not in json.dumps(error.errors(include_input=False, include_url=False), default=str)


def test_normalized_keeps_the_venue_valid_and_sorted() -> None:
    given_order = config([table("T2", combinable_with=["T3", "T1"]), table("T3"), table("T1")])
    normalized = given_order.normalized()
    assert [t.id for t in normalized.tables] == ["T1", "T2", "T3"]
    assert normalized.tables[1].combinable_with == ["T1", "T3"]
    assert VenueConfig.model_validate(normalized.model_dump()) == normalized
