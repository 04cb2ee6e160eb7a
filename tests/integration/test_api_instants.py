"""Instants at the edges of what the service accepts, through every route that takes one.

A hypothesis property drives the extremes (years 2000 and 2099, offsets of ±14:00, the edges of
each and just past them, Python's own ends, and near-now times that reach the allocator and the
ledger) through the real API functions: whatever is sent, the answer is never a 5xx. Inside the
range an instant is taken and its arithmetic (a hold's end plus buffer, its expiry, delivery
time plus retention) never overflows; outside it, the answer is a 422 naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import email_request, venue_config
from tests.integration.conftest import Answer, Api

YEARS = [1, 1999, 2000, 2001, 2026, 2098, 2099, 2100, 9999]
OFFSETS = ["Z", "z", "+00:00", "-00:00", "+14:00", "-14:00", "+13:59", "-13:59", "+14:01", "-14:01", "+23:59"]


def _written(year: int, month: int, day: int, hour: int, minute: int, second: int, offset: str) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{offset}"


EDGE_INSTANTS = st.builds(
    _written,
    st.sampled_from(YEARS),
    st.sampled_from([1, 2, 12]),
    st.sampled_from([1, 28, 29, 31]),
    st.sampled_from([0, 12, 23]),
    st.sampled_from([0, 30, 59]),
    st.sampled_from([0, 59]),
    st.sampled_from(OFFSETS),
)


def _near_now(days: int, minutes: int, offset_minutes: int) -> str:
    # Times the timing rules may accept (a future start on 5-minute slots), written in any offset
    moment = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=days, minutes=minutes)
    moment -= timedelta(minutes=moment.minute % 5)
    zone = timedelta(minutes=offset_minutes)
    local = (moment + zone).replace(tzinfo=None).isoformat()
    sign = "+" if offset_minutes >= 0 else "-"
    return f"{local}{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"


NEAR_NOW = st.builds(
    _near_now,
    st.sampled_from([-1, 0, 1, 364, 365, 366, 3650, 3651]),
    st.integers(0, 24 * 60),
    st.sampled_from([-14 * 60, -5 * 60, 0, 345, 14 * 60]),
)
INSTANTS = st.one_of(EDGE_INSTANTS, NEAR_NOW)


def _never_a_server_error(answer: Answer, field: str) -> None:
    assert answer.status < 500, answer.body
    if answer.status == 422:
        assert answer.body["code"] == "VALIDATION_FAILED"
        assert any(field in ".".join(map(str, error["loc"])) for error in answer.body["errors"]), answer.body


@pytest.fixture
def venue(api: Api) -> str:
    # 5-minute slots, the longest buffer and TTL: the largest sums a hold's times go through
    body = venue_config(
        slot_minutes=5, buffer_minutes=120, hold_ttl_seconds=86400, default_duration_minutes=480
    )
    assert api.call("PUT", "/v1/venues/edge", body).status == 200
    return "edge"


# Fewer examples than the emails': a hold that is taken writes an ownership record per table and
# bucket of its interval, the slow part of each example.
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(starts_at=INSTANTS, duration=st.sampled_from([None, 5, 480]))
def test_holds_at_the_edges_of_time_never_get_a_5xx(
    api: Api, venue: str, starts_at: str, duration: int | None
) -> None:
    body: dict[str, Any] = {"venue_id": venue, "party_size": 2, "starts_at": starts_at}
    if duration is not None:
        body["duration_minutes"] = duration
    answer = api.call("POST", "/v1/holds", body)
    _never_a_server_error(answer, "starts_at")
    if answer.status == 201:
        # Taken: its times come back in UTC, and its arithmetic held
        hold = answer.body
        assert hold["starts_at"].endswith("Z")
        assert hold["starts_at"] < hold["ends_at"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["deliver_at", "not_after", "data.starts_at", "data.previous_starts_at"]),
    instant=INSTANTS,
)
def test_emails_at_the_edges_of_time_never_get_a_5xx(api: Api, field: str, instant: str) -> None:
    data = {**email_request()["data"], "previous_starts_at": "2026-12-24T19:00:00Z"}
    body = email_request(booking_id="bk_edge", email_type="booking_updated", data=data)
    if field.startswith("data."):
        body["data"][field.removeprefix("data.")] = instant
    else:
        body[field] = instant
    answer = api.call("POST", "/v1/emails", body)
    _never_a_server_error(answer, field.split(".")[-1])


@pytest.mark.parametrize(
    ("path", "field", "instant"),
    [
        ("/v1/holds", "starts_at", "0001-01-01T00:00:00+01:00"),
        ("/v1/holds", "starts_at", "9999-12-31T23:30:00-05:00"),
        ("/v1/emails", "deliver_at", "0001-01-01T00:00:00+01:00"),
        ("/v1/emails", "deliver_at", "0001-01-01T00:00:00Z"),
        ("/v1/emails", "starts_at", "0001-01-01T00:00:00Z"),
    ],
)
def test_the_instants_that_once_failed_are_422_naming_the_field(
    api: Api, venue: str, path: str, field: str, instant: str
) -> None:
    if path == "/v1/holds":
        body: dict[str, Any] = {"venue_id": venue, "party_size": 2, "starts_at": instant}
    elif field == "starts_at":
        body = email_request(data={**email_request()["data"], "starts_at": instant})
    else:
        body = email_request(**{field: instant})
    answer = api.call("POST", path, body)
    assert answer.status == 422, answer.body
    locations = [error["loc"] for error in answer.body["errors"]]
    assert locations == [
        ["body", "data", field] if path == "/v1/emails" and field == "starts_at" else ["body", field]
    ]
