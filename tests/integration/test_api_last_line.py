"""The API's last line: a failure nothing anticipated, in either function and wherever it is
raised, is a 500 ``INTERNAL_ERROR`` problem with an ``error_id`` that the log line for it
carries too, counted as ``UnhandledErrors``; never a Lambda error (API Gateway's bare 502),
and never the exception's message, which may quote what the client sent."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from booking_durability.api import resolver
from booking_durability.emails import requests
from booking_durability.errors import DomainError
from booking_durability.reservations import holding
from tests.builders import GUEST_EMAIL, GUEST_NAME, PII
from tests.integration.conftest import Answer, Api, emf_blobs


class _Exploding(DomainError):
    """A refusal whose extra fields cannot be written: the error mapping itself fails."""

    code = "EXPLODING"
    status = 409

    def problem_fields(self) -> dict[str, Any]:
        raise RuntimeError(f"cannot describe {GUEST_EMAIL}")


def _raise(error: BaseException) -> Any:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return fail


# Each: what breaks, and the request that meets it (one per function, and each place an
# exception can come from: a route, an error mapping, the checks before routing).
FAILURES = {
    "reservations route": (
        (holding, "find_hold", _raise(KeyError(GUEST_EMAIL))),
        ("GET", "/v1/holds/hld_1"),
    ),
    "email route": (
        (requests, "email_status", _raise(ValueError(f"bad recipient {GUEST_NAME}"))),
        ("GET", "/v1/emails/bk_1/booking_confirmed"),
    ),
    "error mapping": (
        (holding, "find_booking", _raise(_Exploding("refused"))),
        ("GET", "/v1/bookings/bk_1"),
    ),
    "checks before routing": (
        (resolver, "_refuse_body", _raise(UnicodeDecodeError("utf-8", GUEST_EMAIL.encode(), 0, 1, "bad"))),
        ("GET", "/v1/health"),
    ),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_an_unmapped_failure_is_a_500_problem_with_an_error_id_that_the_log_carries(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    log_lines: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    failure: str,
) -> None:
    # Given a dependency of the route that fails in a way nothing maps, quoting personal data
    (module, name, replacement), (method, path) = FAILURES[failure]
    monkeypatch.setattr(module, name, replacement)
    # When a client calls the route
    answer: Answer = api.call(method, path)
    # Then it gets the one 500 problem, with an error id
    assert answer.status == 500
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.body
    assert (body["code"], body["status"], body["title"]) == ("INTERNAL_ERROR", 500, "Internal Server Error")
    error_id = str(uuid.UUID(body["error_id"]))
    # And the service's log line for it carries the same id, the exception's type and the route
    logged = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    unhandled = [line for line in logged if line.get("message") == "unhandled error"]
    assert [line["error_id"] for line in unhandled] == [error_id]
    assert unhandled[0]["route"].startswith(f"{method} /v1/")
    assert unhandled[0]["frames"]
    # And it is counted, for the alarm
    counted = [
        blob["UnhandledErrors"] for blob in emf_blobs(capsys.readouterr().out) if "UnhandledErrors" in blob
    ]
    assert counted == [[1.0]]
    # And neither the answer nor any log line holds the exception's message
    for secret in (*PII, "Pérez"):
        assert secret not in json.dumps(body, ensure_ascii=False)
        assert secret not in log_lines.getvalue()


def test_each_answer_has_its_own_error_id(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holding, "find_hold", _raise(RuntimeError("boom")))
    ids = {api.call("GET", "/v1/holds/hld_1").body["error_id"] for _ in range(3)}
    assert len(ids) == 3
