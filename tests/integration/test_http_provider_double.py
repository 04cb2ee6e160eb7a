"""The Resend-compatible HTTP double as any HTTP client sees it: authentication, Resend's
idempotency rules, fault tags counted per Idempotency-Key, latency and concurrency.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.http_provider import HttpProviderDouble
from tests.integration.provider_fixtures import (
    GUEST_DOMAIN,
    GUEST_LOCAL_PART,
    guest_address,
    running_http_double,
)

REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": "Bearer re_local"}


def payload(tag: str = "", subject: str = "Your booking") -> dict[str, Any]:
    return {
        "from": "Bookings <bookings@booking.local>",
        "to": [f"Zoë <{guest_address(tag)}>"],
        "subject": subject,
        "html": "<p>See you soon.</p>",
        "text": "See you soon.",
        "headers": {"X-Dedupe-Key": "bk-9#booking_confirmed#0"},
    }


def post(
    double: HttpProviderDouble,
    body: dict[str, Any],
    key: str | None = "bk-9#booking_confirmed#0",
    **headers: str,
) -> httpx.Response:
    sent_headers = {**AUTH, **headers}
    if key is not None:
        sent_headers["Idempotency-Key"] = key
    return httpx.post(f"{double.url}/emails", json=body, headers=sent_headers, timeout=10)


@pytest.fixture
def double() -> Iterator[HttpProviderDouble]:
    with running_http_double() as running:
        yield running


def test_accepted_email_is_recorded_as_a_delivery(double: HttpProviderDouble) -> None:
    # When an email is posted
    response = post(double, payload())

    # Then it gets an id, and the double records exactly what was delivered
    assert response.status_code == 200
    (delivery,) = double.deliveries
    assert response.json() == {"id": delivery.id}
    assert delivery.idempotency_key == "bk-9#booking_confirmed#0"
    assert delivery.to == [f"Zoë <{guest_address()}>"]
    assert delivery.subject == "Your booking"
    assert delivery.headers == {"X-Dedupe-Key": "bk-9#booking_confirmed#0"}
    assert double.attempts("bk-9#booking_confirmed#0") == 1


@pytest.mark.parametrize(
    ("headers", "status", "name"),
    [
        ({"Authorization": ""}, 401, "missing_api_key"),
        ({"Authorization": "Basic abc"}, 401, "missing_api_key"),
        ({"Authorization": "Bearer re_other"}, 403, "invalid_api_key"),
    ],
)
def test_requests_without_the_right_bearer_key_are_refused(
    headers: dict[str, str], status: int, name: str
) -> None:
    # Given a double that accepts one API key
    with running_http_double(api_key="re_local") as double:
        # When a request brings no key, or another one
        response = post(double, payload(), **headers)

    # Then it is refused like Resend refuses it, and nothing is delivered
    assert response.status_code == status
    assert response.json()["name"] == name
    assert double.deliveries == []


def test_request_without_an_idempotency_key_is_refused(double: HttpProviderDouble) -> None:
    response = post(double, payload(), key=None)
    assert response.status_code == 400
    assert double.deliveries == []


def test_invalid_payload_is_refused_with_422(double: HttpProviderDouble) -> None:
    response = post(double, {"from": "bookings@booking.local", "subject": "x", "text": "y"})
    assert response.status_code == 422
    assert response.json()["name"] == "validation_error"


def test_same_key_and_payload_answers_the_same_id_without_delivering_again(
    double: HttpProviderDouble,
) -> None:
    # Given an email delivered under a key
    first = post(double, payload())

    # When the very same request is retried
    second = post(double, payload())

    # Then it answers the first id, and the guest got one email
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert len(double.deliveries) == 1


def test_same_key_with_another_payload_is_an_invalid_idempotent_request(double: HttpProviderDouble) -> None:
    # Given an email delivered under a key
    post(double, payload())

    # When another payload comes with the same key
    response = post(double, payload(subject="Something else"))

    # Then it is 409 invalid_idempotent_request and nothing new is delivered
    assert response.status_code == 409
    assert response.json()["name"] == "invalid_idempotent_request"
    assert len(double.deliveries) == 1


def test_same_key_while_the_first_is_in_flight_is_a_concurrent_idempotent_request() -> None:
    # Given a slow provider
    with running_http_double(latency_seconds=1.0) as double:
        # When two requests with the same key overlap
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(post, double, payload())
            time.sleep(0.15)
            second = pool.submit(post, double, payload())
            statuses = sorted([first.result().status_code, second.result().status_code])
        deliveries = double.deliveries

    # Then one is delivered and the other is told to come back (409 concurrent_idempotent_requests)
    assert statuses == [200, 409]
    assert second.result().json()["name"] == "concurrent_idempotent_requests"
    assert len(deliveries) == 1


@pytest.mark.parametrize(
    ("tag", "statuses"),
    [
        ("transient2", [503, 503, 200, 200]),
        ("throttle1", [429, 200, 200, 200]),
        ("permanent", [422, 422, 422, 422]),
    ],
)
def test_fault_tags_are_counted_per_idempotency_key(
    double: HttpProviderDouble, tag: str, statuses: list[int]
) -> None:
    # When the same tagged email is posted four times, and another key once
    answers = [post(double, payload(tag)) for _ in statuses]
    other_key = post(double, payload(tag), key="bk-10#booking_confirmed#0")

    # Then the first attempts of each key get the injected status, and a key delivers at most once
    assert [answer.status_code for answer in answers] == statuses
    assert other_key.status_code == statuses[0]
    assert len(double.deliveries) == (0 if tag == "permanent" else 1)
    assert double.attempts("bk-9#booking_confirmed#0") == 4
    assert [answer.status for answer in double.answers] == [*statuses, statuses[0]]


def test_throttled_answer_says_retry_after_one_second(double: HttpProviderDouble) -> None:
    response = post(double, payload("throttle1"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_latency_delays_each_answer_but_requests_are_served_concurrently() -> None:
    # Given a provider that takes 500 ms per request
    with running_http_double(latency_seconds=0.5) as double:
        # When ten different emails are posted at once
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(lambda n: post(double, payload(), key=f"bk-{n}#x#0"), range(10)))
        elapsed = time.monotonic() - started

    # Then each waited the latency, but not behind one another
    assert [response.status_code for response in responses] == [200] * 10
    assert 0.5 <= elapsed < 2.5  # one after another would take 5 s
    assert len(double.deliveries) == 10


def test_log_lines_never_name_the_guest(double: HttpProviderDouble, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devstack.http_provider")
    for tag in ("", "transient1", "permanent"):
        post(double, payload(tag), key=f"bk-{tag or 'plain'}#x#0")
    lines = "\n".join(record.getMessage() for record in caplog.records)
    assert lines.count("POST /emails") == 3
    assert GUEST_LOCAL_PART not in lines
    assert GUEST_DOMAIN not in lines


def test_script_serves_until_sigterm_and_exits_cleanly() -> None:
    # Given the double started as a script on a free port with 50 ms latency
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts/devstack/http_provider.py"),
            "--port",
            "0",
            "--latency-ms",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)  # type: ignore[union-attr]

        # When it serves one request and gets SIGTERM
        response = httpx.post(
            f"{url}/emails", json=payload(), headers={**AUTH, "Idempotency-Key": "bk-1#x#0"}, timeout=10
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # Then it answered and stopped cleanly, its log naming no one
    assert response.status_code == 200
    assert process.returncode == 0
    assert "-> 200" in output
    assert GUEST_LOCAL_PART not in output
