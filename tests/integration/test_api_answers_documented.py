"""Every route's answers are the ones ``openapi.json`` declares, body and all.

The ``api`` fixture holds every answer any test sees to the document
(``tests/integration/documented_answers.py``); here every route is driven at least once to its
success and to a problem, so no route escapes that check for want of a test calling it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.builders import email_request, venue_config
from tests.integration.conftest import Answer, Api
from tests.integration.documented_answers import JSON_ANSWER, documented_answers

PROBLEM = "application/problem+json"


def _hold_request() -> dict[str, Any]:
    starts = datetime.now(UTC).replace(hour=20, minute=0, second=0, microsecond=0) + timedelta(days=3)
    return {"venue_id": "casa", "party_size": 2, "starts_at": starts.isoformat().replace("+00:00", "Z")}


def _answered(answer: Answer, status: int, content_type: str = JSON_ANSWER) -> Answer:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == content_type
    return answer


def test_every_route_answers_its_success_as_documented(api: Api) -> None:
    # Given a venue, a hold confirmed as a booking, another hold released, and an email
    _answered(api.call("PUT", "/v1/venues/casa", venue_config()), 200)
    _answered(api.call("GET", "/v1/venues/casa"), 200)
    _answered(api.call("GET", "/v1/venues/casa/versions/1"), 200)
    hold = _answered(api.call("POST", "/v1/holds", _hold_request()), 201).body
    _answered(api.call("GET", f"/v1/holds/{hold['hold_id']}"), 200)
    _answered(api.call("POST", f"/v1/holds/{hold['hold_id']}/confirm", {"booking_id": "bk_1"}), 200)
    _answered(api.call("GET", "/v1/bookings/bk_1"), 200)
    _answered(api.call("DELETE", "/v1/bookings/bk_1"), 200)
    released = _answered(api.call("POST", "/v1/holds", _hold_request()), 201).body
    _answered(api.call("DELETE", f"/v1/holds/{released['hold_id']}"), 200)
    _answered(api.call("POST", "/v1/emails", email_request()), 202)
    _answered(api.call("GET", "/v1/emails/bk_123/booking_confirmed"), 200)
    _answered(api.call("DELETE", "/v1/emails/bk_123/booking_confirmed"), 200)
    _answered(api.call("DELETE", "/v1/emails/bk_123"), 200)
    _answered(api.call("GET", "/v1/health"), 200)
    _answered(api.call("GET", "/v1/openapi.json"), 200)

    # Then every success the document declares was answered, each checked against its schema
    answers = documented_answers()
    successes = {answer for answer in answers.declared() if answer[3] == JSON_ANSWER}
    assert len(successes) == 15
    assert sorted(successes - answers.given) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/v1/venues/casa", {"tables": []}, 422),
        ("GET", "/v1/venues/nowhere", None, 404),
        ("GET", "/v1/venues/nowhere/versions/1", None, 404),
        ("POST", "/v1/holds", {"venue_id": "nowhere", "party_size": 2}, 422),
        ("GET", "/v1/holds/h_none", None, 404),
        ("DELETE", "/v1/holds/h_none", None, 404),
        ("POST", "/v1/holds/h_none/confirm", {"booking_id": "bk_2"}, 404),
        ("GET", "/v1/bookings/bk_none", None, 404),
        ("DELETE", "/v1/bookings/bk_none", None, 404),
        ("POST", "/v1/emails", {"booking_id": "bk_1"}, 422),
        ("GET", "/v1/emails/bk_none/booking_confirmed", None, 404),
        ("DELETE", "/v1/emails/bk_none/not_a_type", None, 422),
        ("DELETE", "/v1/emails/bk_none", {"x": "y" * (65 * 1024)}, 413),
        ("GET", "/v1/health", None, 422),
        ("GET", "/v1/nowhere", None, 404),
    ],
)
def test_every_route_answers_a_problem_as_documented(
    api: Api, method: str, path: str, body: Any, status: int
) -> None:
    # When a route is asked what it refuses (health: a query parameter it does not take)
    query = {"unknown": "1"} if path == "/v1/health" else None
    answer = api.call(method, path, body, query=query)
    # Then it answers the problem, which the fixture held to the document's Problem schema
    problem = _answered(answer, status, PROBLEM).body
    assert problem["status"] == status


def test_an_answer_that_drifts_from_the_document_is_caught() -> None:
    answers = documented_answers()
    booking = {
        "booking_id": "bk_1",
        "hold_id": "h_1",
        "venue_id": "casa",
        "table_ids": ["T1"],
        "starts_at": "2030-01-01T20:00:00Z",
        "ends_at": "2030-01-01T22:00:00Z",
        "status": "confirmed",
    }
    # Given the booking answer as declared, it passes
    assert answers.check("GET", "/v1/bookings/bk_1", 200, JSON_ANSWER, booking) == []
    # Then a field missing, one undeclared, a wrong type, a wrong status or content type each fail
    missing = {key: value for key, value in booking.items() if key != "venue_id"}
    assert answers.check("GET", "/v1/bookings/bk_1", 200, JSON_ANSWER, missing)
    assert answers.check("GET", "/v1/bookings/bk_1", 200, JSON_ANSWER, {**booking, "guest": "x"})
    assert answers.check("GET", "/v1/bookings/bk_1", 200, JSON_ANSWER, {**booking, "table_ids": "T1"})
    assert answers.check("GET", "/v1/bookings/bk_1", 201, JSON_ANSWER, booking)
    assert answers.check("GET", "/v1/bookings/bk_1", 200, PROBLEM, booking)
    # And a problem without its code fails, one with a field some code adds passes
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "code": "BOOKING_NOT_FOUND"}
    assert answers.check("GET", "/v1/bookings/bk_1", 404, PROBLEM, problem) == []
    assert answers.check("GET", "/v1/bookings/bk_1", 404, PROBLEM, {**problem, "extra": 1}) == []
    assert answers.check("GET", "/v1/bookings/bk_1", 404, PROBLEM, {"title": "Not Found", "status": 404})
