"""The input rules every model shares: one instant type, strict integers, printable free text,
IANA zone names, ASCII local parts; and the published schemas stating each rule alike for
Python's ``re`` and JavaScript's ``RegExp`` (as Ajv compiles a pattern: with the ``u`` flag)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tzdata
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from booking_durability.drift_events import PolicyDriftData
from booking_durability.emails.models import EMAIL_JOB, EmailRequest, job_json_schema
from booking_durability.reservations.holds import Hold, HoldRequest
from booking_durability.times import INSTANT_PATTERN, Instant, UtcInstant, iana_zones
from booking_durability.validation import PRINTABLE_PATTERN, safe_errors
from tests.builders import GUEST_NAME, T0, email_request, job

ROOT = Path(__file__).resolve().parents[2]
INSTANT = TypeAdapter(Instant)


def _refused_at(model: Any, body: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {".".join(map(str, error["loc"])) for error in safe_errors(caught.value)}


# -- instants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00+14:00",  # 1999 in UTC: the written year is what counts
        "2099-12-31T23:59:59-14:00",  # 2100 in UTC
        "2099-12-31T23:59:59.999999999Z",
        "2024-02-29T12:00:00+05:45",
        "2000-02-29T12:00:00Z",  # 2000 is a leap year
        "2026-12-24t20:30:00z",  # RFC 3339 allows lower case
        "2026-12-24T20:30:00-00:00",
        "2026-12-24T20:30:00+13:59",
    ],
)
def test_an_instant_is_rfc_3339_from_2000_to_2099_within_14_hours_of_utc(text: str) -> None:
    assert INSTANT.validate_python(text) == datetime.fromisoformat(text.upper())
    assert re.search(INSTANT_PATTERN, text)


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:30:00-05:00",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2026-12-24T20:30:00+14:01",
        "2026-12-24T20:30:00-15:00",
        "2026-12-24T20:30:00",  # no offset
        "2026-12-24T20:30Z",  # no seconds
        "2026-12-24 20:30:00Z",
        "2026-12-24T20:30:60Z",  # a leap second Python cannot hold
        "2026-02-29T20:30:00Z",
        "2100-02-29T20:30:00Z",
        "2026-04-31T20:30:00Z",
        "2026-12-24T20:30:00.Z",
        "2026-12-24T20:30:00.1234567890Z",
        "2026-12-24T20:30:00+0100",
        "2026-12-24T20:30:00Z\n",
        "2026-12-24",
        1798143000,
        1798143000.0,
        True,
        None,
        [],
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 24, 20, 30),  # naive
    ],
)
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError):
        INSTANT.validate_python(value)
    if isinstance(value, str):
        assert not re.fullmatch(INSTANT_PATTERN, value)  # the ECMA-262 reading of `$`


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)))
def test_every_date_and_time_of_the_range_is_taken_and_read_back_exactly(moment: datetime) -> None:
    # The pattern names every calendar date of 2000-2099 (leap days too): whatever it allows parses
    for suffix, offset in (("Z", 0), ("+14:00", 14 * 60), ("-14:00", -14 * 60), ("+05:45", 345)):
        written = moment.isoformat() + suffix
        assert re.search(INSTANT_PATTERN, written), written
        parsed = INSTANT.validate_python(written)
        assert parsed.replace(tzinfo=None) == moment
        assert parsed.utcoffset() == timedelta(minutes=offset)


def test_a_utc_instant_is_kept_in_utc() -> None:
    parsed = TypeAdapter(UtcInstant).validate_python("2000-01-01T00:00:00+14:00")
    assert parsed == datetime(1999, 12, 31, 10, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("model", "body", "location"),
    [
        (EmailRequest, email_request(deliver_at="0001-01-01T00:00:00+01:00"), "deliver_at"),
        (EmailRequest, email_request(deliver_at="0001-01-01T00:00:00Z"), "deliver_at"),
        (EmailRequest, email_request(not_after="9999-12-31T23:30:00-05:00"), "not_after"),
        (
            EmailRequest,
            email_request(data={**email_request()["data"], "starts_at": "0001-01-01T00:00:00Z"}),
            "data.starts_at",
        ),
        (
            HoldRequest,
            {"venue_id": "casa", "party_size": 2, "starts_at": "0001-01-01T00:00:00+01:00"},
            "starts_at",
        ),
        (
            HoldRequest,
            {"venue_id": "casa", "party_size": 2, "starts_at": "9999-12-31T23:30:00-05:00"},
            "starts_at",
        ),
    ],
)
def test_every_model_that_takes_a_time_takes_only_instants(
    model: Any, body: dict[str, Any], location: str
) -> None:
    # A past deliver_at means "now", but year 1 is no instant at all: refused, not sent at once
    assert location in _refused_at(model, body)


def test_the_queue_message_and_its_data_take_only_instants() -> None:
    for changed in (
        {"deliver_at": "0001-01-01T00:00:00Z"},
        {"not_after": "2100-01-01T00:00:00Z"},
        {"data": {**job()["data"], "starts_at": "0001-01-01T00:00:00Z"}},
    ):
        with pytest.raises(ValidationError):
            EMAIL_JOB.validate_python({**job(), **changed})
    drift = {
        "type": "policy_drift.recovered",
        "event_id": "7d7c1b2e-8f0a-4a53-9d0e-2f1d1f1a2b3c",
        "occurred_at": "0001-01-01T00:00:00Z",
        "venue_id": "casa",
        "original_hold_id": "h1",
        "original_policy_hash": "a" * 64,
        "policy_hash": "b" * 64,
        "policy_version": 2,
        "attempts": 2,
    }
    assert "occurred_at" in _refused_at(PolicyDriftData, drift)


# -- strict integers --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2", True, False, 2.5, "2.0", None, [2]])
@pytest.mark.parametrize(
    ("model", "body_of"),
    [
        (EmailRequest, lambda value: email_request(data={**email_request()["data"], "party_size": value})),
        (EmailRequest, lambda value: email_request(revision=value)),
        (EmailRequest, lambda value: email_request(delay_seconds=value)),
        (
            HoldRequest,
            lambda value: {"venue_id": "casa", "party_size": value, "starts_at": "2026-12-24T20:30:00Z"},
        ),
        (
            HoldRequest,
            lambda value: {
                "venue_id": "casa",
                "party_size": 2,
                "starts_at": "2026-12-24T20:30:00Z",
                "duration_minutes": value,
            },
        ),
    ],
)
def test_a_boolean_or_a_string_is_never_an_integer(model: Any, body_of: Any, value: Any) -> None:
    body = body_of(value)
    if value is None and model is EmailRequest and "delay_seconds" in body:
        return  # null is "not given" for an optional field
    if value is None and "duration_minutes" in body:
        return
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_a_whole_float_is_the_integer_it_equals() -> None:
    request = EmailRequest.model_validate(
        email_request(revision=3.0, data={**email_request()["data"], "party_size": 4.0})
    )
    assert (request.revision, request.data.party_size) == (3, 4)
    assert type(request.revision) is int
    hold = HoldRequest.model_validate(
        {"venue_id": "casa", "party_size": 2.0, "starts_at": "2026-12-24T20:30:00Z"}
    )
    assert hold.party_size == 2


def test_the_delay_is_at_most_ten_years_of_365_days() -> None:
    assert EmailRequest.model_validate(email_request(delay_seconds=315_360_000)).delay_seconds == 315_360_000
    assert _refused_at(EmailRequest, email_request(delay_seconds=315_360_001)) == {"delay_seconds"}


# -- printable free text ------------------------------------------------------------------------------

UNPRINTABLE = [
    "a\nb",
    "a\rb",
    "a\tb",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\x9f",
    "a\u2028b",
    "\u2029",
    "\ud800",
    "x\udc00",
]


@pytest.mark.parametrize("text", UNPRINTABLE)
def test_free_text_in_a_request_is_printable(text: str) -> None:
    data = email_request()["data"]
    assert _refused_at(EmailRequest, email_request(recipient={"email": "a@example.test", "name": text})) == {
        "recipient.name"
    }
    for field in ("restaurant_name", "reference", "cancellation_reason"):
        assert _refused_at(EmailRequest, email_request(data={**data, field: text})) == {f"data.{field}"}
    hold = {"venue_id": "casa", "party_size": 2, "starts_at": "2026-12-24T20:30:00Z", "zone": text}
    assert _refused_at(HoldRequest, hold) == {"zone"}
    with pytest.raises(ValidationError):
        EMAIL_JOB.validate_python({**job(), "recipient": {"email": "a@example.test", "name": text}})


@pytest.mark.parametrize(
    "text", ["Ana Pérez", "Casa Lucio · 🍷", "東京の店", "O'Brien & Sons", "Zoë\u00a0Smith", "a\u200db"]
)
def test_printable_text_of_any_script_is_taken(text: str) -> None:
    request = EmailRequest.model_validate(
        email_request(
            recipient={"email": "a@example.test", "name": text},
            data={**email_request()["data"], "restaurant_name": text},
        )
    )
    assert request.recipient.name == request.data.restaurant_name == text


def test_a_refused_text_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        EmailRequest.model_validate(
            email_request(recipient={"email": "a@example.test", "name": GUEST_NAME + "\n"})
        )
    assert GUEST_NAME not in json.dumps(safe_errors(caught.value), ensure_ascii=False) + str(caught.value)


# -- time zones and addresses -----------------------------------------------------------------------


def test_the_zones_are_exactly_those_of_the_pinned_tzdata() -> None:
    shipped = (Path(tzdata.__file__).parent / "zones").read_text(encoding="utf-8").split()
    assert iana_zones() == tuple(sorted(shipped))
    assert {"UTC", "Europe/Madrid", "America/Mexico_City", "Asia/Kathmandu"} <= set(iana_zones())
    # ... and each one loads, on this machine as on the runtime's
    for name in iana_zones():
        zoneinfo.ZoneInfo(name)


@pytest.mark.parametrize(
    "zone", ["localtime", "Mars/Olympus_Mons", "europe/madrid", "", "UTC ", "posixrules"]
)
def test_a_name_outside_the_pinned_zones_is_refused(zone: str) -> None:
    assert _refused_at(EmailRequest, email_request(time_zone=zone)) == {"time_zone"}


def test_the_schema_lists_the_zones_the_validator_takes() -> None:
    schema = EmailRequest.model_json_schema()
    assert schema["properties"]["time_zone"]["enum"] == list(iana_zones())


@pytest.mark.parametrize(
    "address", ["zoë@example.test", "ñ@example.test", "用户@example.test", '"a b"@example.test']
)
def test_the_local_part_of_an_address_is_ascii(address: str) -> None:
    assert _refused_at(EmailRequest, email_request(recipient={"email": address})) == {"recipient.email"}
    with pytest.raises(ValidationError):
        EMAIL_JOB.validate_python({**job(), "recipient": {"email": address}})


def _address_of_length(length: int) -> str:
    """``a@bbb...b.bbb...b.test`` of exactly ``length`` characters, no label above 63."""
    domain = "b" * (length - len("a@.test"))
    labels = [domain[start : start + 60] for start in range(0, len(domain), 61)]
    address = "a@" + ".".join(labels) + ".test"
    return address + "b" * (length - len(address))


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("a" * 64 + "@example.test", True),
        ("a" * 65 + "@example.test", False),
        (_address_of_length(254), True),
        (_address_of_length(255), False),
        ("a.b@example.test", True),
        ("a..b@example.test", False),
        (".a@example.test", False),
    ],
)
def test_the_schema_and_the_model_agree_on_an_address(address: str, valid: bool) -> None:
    # The lengths (64 before the @, 254 in all) and the dot-atom, as the schema's pattern states them
    pattern = EmailRequest.model_json_schema()["$defs"]["Recipient"]["properties"]["email"]["pattern"]
    assert (re.search(pattern, address) is not None) == valid
    if valid:
        EmailRequest.model_validate(email_request(recipient={"email": address}))
    else:
        assert _refused_at(EmailRequest, email_request(recipient={"email": address})) == {"recipient.email"}


def test_an_internationalized_domain_is_taken_in_its_ascii_form_only() -> None:
    # The form ``format: email`` (RFC 5321) and Ajv take: the domain's IDNA labels
    request = EmailRequest.model_validate(email_request(recipient={"email": "zoe@xn--bcher-kva.example"}))
    assert request.recipient.email == "zoe@xn--bcher-kva.example"
    assert _refused_at(EmailRequest, email_request(recipient={"email": "zoe@bücher.example"})) == {
        "recipient.email"
    }


@pytest.mark.parametrize(
    "address", ["a@example.invalid", "a@mail.LOCAL", "a@b.onion", "a@b.localhost", "a@10.in-addr.arpa"]
)
def test_an_address_under_a_special_use_name_is_refused(address: str) -> None:
    assert _refused_at(EmailRequest, email_request(recipient={"email": address})) == {"recipient.email"}


def test_an_address_is_kept_with_its_domain_in_lower_case() -> None:
    request = EmailRequest.model_validate(email_request(recipient={"email": "Ana.Guest@Example.TEST"}))
    assert request.recipient.email == "Ana.Guest@example.test"


# -- the schemas state the rules -------------------------------------------------------------------


def _patterns(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(document, list):
        for item in document:
            yield from _patterns(item)


def test_the_queue_schema_refuses_what_the_model_refuses() -> None:
    schema = job_json_schema()
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert validator.is_valid(job())
    for changed in (
        {"deliver_at": "0001-01-01T00:00:00Z"},
        {"time_zone": "Mars/Olympus_Mons"},
        {"revision": True},
        {"revision": "1"},
        {"recipient": {"email": "zoë@example.test"}},
        {"recipient": {"email": "a@example.test", "name": "a\nb"}},
        {"data": {**job()["data"], "restaurant_name": "\ud800"}},
    ):
        assert not validator.is_valid({**job(), **changed}), changed
    assert validator.is_valid({**job(), "revision": 1.0})


# Strings each pattern is tried on, in both engines: edges of every rule, and the classic
# differences between them (a final newline, astral characters, lone surrogates).
CORPUS = [
    "",
    "abc",
    "abc\n",
    "\nabc",
    "a\tb",
    "😀",
    "\ud83d",
    "\ude00",
    "x\ud800y",
    "\u2028",
    "\x85",
    "Sala 1",
    "2000-01-01T00:00:00Z",
    "2000-01-01T00:00:00Z\n",
    "2099-12-31T23:59:59.123456789-14:00",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00+14:00",
    "2026-12-24t20:30:00z",
    "2026-12-24T20:30:00+14:01",
    "1999-12-31T23:59:59Z",
    "bk_1",
    "bk-1\n",
    "a@example.test",
    "zoë@example.test",
    "a..b@example.test",
    "Europe/Madrid",
    "en",
    "es-MX",
    "0" * 64,
    "*",
    '"abc", W/"def"',
]


def test_every_published_pattern_reads_alike_in_python_and_javascript() -> None:
    node = shutil.which("node")
    assert node, "node is installed by make install (the CDK CLI needs it)"
    openapi = json.loads((ROOT / "openapi.json").read_text())
    patterns = sorted(
        {*_patterns(openapi), *_patterns(job_json_schema()), INSTANT_PATTERN, PRINTABLE_PATTERN}
    )
    script = (
        "const {patterns, corpus} = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(patterns.map(p => corpus.map(s => new RegExp(p, 'u').test(s)))));"
    )
    ran = subprocess.run(
        [node, "-e", script],
        input=json.dumps({"patterns": patterns, "corpus": CORPUS}),
        capture_output=True,
        text=True,
        check=True,
    )
    javascript = json.loads(ran.stdout)
    differing = []
    for pattern, verdicts in zip(patterns, javascript, strict=True):
        for text, js in zip(CORPUS, verdicts, strict=True):
            # JSON Schema reads ``$`` as ECMA-262 does, at the very end; Python's ``re.search``
            # also lets it match before a final newline. The models read it the ECMA way (see
            # the test below); a final newline is compared only where no ``$`` is involved.
            if pattern.endswith("$") and text.endswith("\n"):
                continue
            if (re.search(pattern, text) is not None) != js:
                differing.append((pattern, text))
    assert not differing


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (EmailRequest, email_request(booking_id="bk_1\n")),
        (EmailRequest, email_request(locale="es\n")),
        (EmailRequest, email_request(deliver_at="2026-12-24T20:30:00Z\n")),
        (HoldRequest, {"venue_id": "casa\n", "party_size": 2, "starts_at": "2026-12-24T20:30:00Z"}),
    ],
)
def test_a_final_newline_never_satisfies_a_pattern(model: Any, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_imported_holds_take_only_instants() -> None:
    line = {
        "hold_id": "h1",
        "venue_id": "casa",
        "party_size": 2,
        "starts_at": "0001-01-01T00:00:00Z",
        "ends_at": "2026-12-24T22:00:00Z",
        "expires_at": (T0 + timedelta(minutes=10)).isoformat(),
        "table_ids": ["T1"],
    }
    assert "starts_at" in _refused_at(Hold, line)
