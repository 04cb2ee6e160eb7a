"""The attributes a consumer reads from a received message are validated before anything logs
or re-sends them: a producer, a redrive or anyone with send rights may have set anything there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from booking_durability.queue_attributes import (
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


def test_attempts_is_a_decimal_count_up_to_999() -> None:
    assert [attempts_of(v) for v in ("0", "7", "999", "1000", "-1", "\u0663", "1.0", " 1", "", None)] == [
        0,
        7,
        999,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


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


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(text=st.text())
def test_any_text_is_an_instant_in_range_or_nothing(text: str) -> None:
    moment = instant_of(text)
    assert moment is None or (
        moment.utcoffset() == timedelta(0)
        and datetime(1999, 12, 31, 10, tzinfo=UTC) <= moment <= datetime(2100, 1, 1, 14, tzinfo=UTC)
    )


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
def test_any_text_is_a_count_of_0_to_999_or_nothing(text: str) -> None:
    count = attempts_of(text)
    assert count is None or 0 <= count <= 999


@settings(deadline=None)  # a shared machine is slow at times: no timing here
@given(
    raw=st.dictionaries(
        st.sampled_from(["attempts", "failure_reason", "email_type", "first_dead_lettered_at", "other"]),
        st.one_of(
            st.none(),
            st.text(),
            st.integers(),
            st.dictionaries(st.text(), st.one_of(st.none(), st.text(), st.integers())),
        ),
    )
)
def test_any_attributes_read_as_known_values_or_nothing_and_never_raise(raw: dict[str, Any]) -> None:
    read = received_attributes(raw, reasons=REASONS, email_types=TYPES)
    assert read.failure_reason in {None, *REASONS}
    assert read.email_type in {None, *TYPES}
    assert read.attempts is None or 0 <= read.attempts <= 999


def test_a_receive_count_is_sqs_own_else_one() -> None:
    assert [receive_count_of(v) for v in ("1", "5", "0", "", "x", None, "9" * 40)] == [1, 5, 1, 1, 1, 1, 1]
