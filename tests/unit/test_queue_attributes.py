"""The attributes a consumer reads from a received message are validated before anything logs
or re-sends them: a producer, a redrive or anyone with send rights may have set anything there."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from booking_durability.queue_attributes import (
    MAX_ATTEMPTS,
    ReceivedAttributes,
    attempts_of,
    instant_of,
    receive_count_of,
    received_attributes,
)
from tests.builders import GUEST_EMAIL, GUEST_NAME

REASONS = {"invalid_json", "transient_exhausted"}
TYPES = {"booking_confirmed"}


def attribute(value: str, data_type: str = "String") -> dict[str, Any]:
    """One message attribute as the SQS event source mapping hands it to the function."""
    return {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": data_type}


def test_sound_values_are_read() -> None:
    raw = {
        "attempts": attribute("3", "Number"),
        "failure_reason": attribute("transient_exhausted"),
        "email_type": attribute("booking_confirmed"),
        "first_dead_lettered_at": attribute("2026-11-30T09:15:00+01:00"),
    }
    assert received_attributes(raw, reasons=REASONS, email_types=TYPES) == ReceivedAttributes(
        attempts=3,
        failure_reason="transient_exhausted",
        email_type="booking_confirmed",
        first_dead_lettered_at=datetime(2026, 11, 30, 8, 15, tzinfo=UTC),
    )


def test_personal_data_in_any_attribute_is_dropped() -> None:
    raw = {
        "attempts": attribute("5551234567", "Number"),  # a phone number is digits too
        "failure_reason": attribute(GUEST_EMAIL),
        "email_type": attribute(GUEST_NAME),
        "first_dead_lettered_at": attribute(GUEST_EMAIL),
    }
    assert received_attributes(raw, reasons=REASONS, email_types=TYPES) == ReceivedAttributes()


def test_attempts_is_a_decimal_count_of_up_to_six_digits() -> None:
    values = ("0", "7", "999", "1000", "999999", "1000000", "007", "-1", "\u0663", "1.0", " 1", "", None)
    assert [attempts_of(v) for v in values] == [0, 7, 999, 1000, 999_999] + [None] * 8


def test_an_instant_is_rfc_3339_with_a_year_of_this_century_and_an_offset_within_14_hours() -> None:
    assert instant_of("2099-12-31T23:59:59-14:00") == datetime(2100, 1, 1, 13, 59, 59, tzinfo=UTC)
    assert instant_of("2000-01-01T00:00:00.123456789Z") == datetime(2000, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    for refused in (
        "9999-12-31T23:30:00-05:00",  # past the calendar in UTC
        "1999-12-31T23:59:59Z",
        "2026-12-01T12:00:00+14:01",
        "2026-02-30T00:00:00Z",
        "2026-12-01T12:00:00",  # no offset
        "2026-12-01 12:00:00Z",
        "\uff12\uff10\uff12\uff16-12-01T12:00:00Z",  # fullwidth digits
        "yesterday",
    ):
        assert instant_of(refused) is None, refused


#: Text shaped like an instant, on both sides of each bound: the year, the calendar, the clock,
#: the fraction's length, the offset and the letters' case.
NEAR_INSTANTS = st.builds(
    "{}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.sampled_from([1999, 2000, 2024, 2026, 2099, 2100]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", "t", " "]),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from(["", ".5", ".123456", ".123456789", ".1234567891"]),
    st.sampled_from(["Z", "z", "+00:00", "+14:00", "-14:00", "+14:01", "-13:59", "+05:30", "+24:00", ""]),
)


def expected_instant(text: str) -> datetime | None:
    """The contract's rule, said another way: ASCII that Python reads as ISO 8601, with RFC 3339's
    ``T`` (either case), at most nine fraction digits and an offset, whose written year is
    2000-2099 and offset within ±14:00."""
    fraction = re.search(r"\.([0-9]*)", text)
    if not text.isascii() or text[10:11] not in ("T", "t") or (fraction and len(fraction[1]) > 9):
        return None
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    offset = moment.utcoffset()
    if offset is None or abs(offset) > timedelta(hours=14) or not 2000 <= moment.year <= 2099:
        return None
    return moment.astimezone(UTC)


@settings(deadline=None, max_examples=500)  # a shared machine is slow at times: no timing here
@given(text=st.one_of(NEAR_INSTANTS, st.text()))
def test_text_is_an_instant_exactly_when_the_contract_says_so(text: str) -> None:
    assert instant_of(text) == expected_instant(text)


def test_the_near_instants_reach_both_answers() -> None:
    # The property above compares two readings; this keeps it from passing on refusals alone.
    accepted = ["2000-02-29t00:00:00.123456789z", "2099-12-31T23:59:59-14:00", "2026-06-01T12:00:00+05:30"]
    refused = ["2100-01-01T00:00:00Z", "2026-06-01T12:00:00+14:01", "2026-06-01T24:00:00Z"]
    assert all(expected_instant(text) is not None and instant_of(text) is not None for text in accepted)
    assert all(expected_instant(text) is None and instant_of(text) is None for text in refused)


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(
    moment=st.datetimes(
        datetime(2000, 1, 1),
        datetime(2099, 12, 31, 23, 59, 59),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-14)), timezone(timedelta(hours=14))]),
    )
)
def test_every_instant_the_contract_accepts_reads_back_as_itself(moment: datetime) -> None:
    assert instant_of(moment.isoformat()) == moment


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(text=st.text())
def test_any_text_is_a_count_of_0_to_999999_or_nothing(text: str) -> None:
    count = attempts_of(text)
    assert count is None or 0 <= count <= MAX_ATTEMPTS == 999_999


#: Attribute values as the event source mapping hands them: some the queue knows, some planted.
ATTRIBUTE_TEXT = st.one_of(
    st.sampled_from([*REASONS, *TYPES, GUEST_EMAIL, GUEST_NAME, "3", "999999", "5551234567"]),
    st.sampled_from(["2026-11-30T09:15:00Z", "2026-11-30T09:15:00+01:00", "1999-01-01T00:00:00Z"]),
    st.text(),
)


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(
    raw=st.dictionaries(
        st.sampled_from(["attempts", "failure_reason", "email_type", "first_dead_lettered_at", "other"]),
        st.one_of(
            st.none(),
            st.text(),
            st.integers(),
            st.builds(attribute, ATTRIBUTE_TEXT),
            st.dictionaries(st.text(), st.one_of(st.none(), st.text(), st.integers())),
        ),
    )
)
def test_attributes_read_as_what_they_validly_hold_or_nothing(
    raw: dict[str, Any],
) -> None:
    read = received_attributes(raw, reasons=REASONS, email_types=TYPES)

    def sent(name: str) -> str | None:
        value = raw.get(name)
        text = value.get("stringValue") if isinstance(value, dict) else None
        return text if isinstance(text, str) else None

    assert read.failure_reason == (sent("failure_reason") if sent("failure_reason") in REASONS else None)
    assert read.email_type == (sent("email_type") if sent("email_type") in TYPES else None)
    assert read.attempts == attempts_of(sent("attempts"))
    assert read.attempts is None or 0 <= read.attempts <= MAX_ATTEMPTS
    assert read.first_dead_lettered_at == instant_of(sent("first_dead_lettered_at"))


def test_a_receive_count_is_sqs_own_else_one() -> None:
    assert [receive_count_of(v) for v in ("1", "5", "0", "", "x", None, "9" * 40)] == [1, 5, 1, 1, 1, 1, 1]
