"""Publishing email jobs: message body, attributes and the SQS delay of the first hop."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from booking_durability.emails.ports import OutgoingMessage
from booking_durability.emails.producer import hop_delay, publish_email
from tests.builders import GUEST_EMAIL, T0, email_request


class RecordingQueue:
    """In-memory stand-in for the email queue: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return "m-1"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        return None


HOP = 900


@pytest.mark.parametrize(
    ("seconds_ahead", "hop", "expected"),
    [(-30, 900, 0), (0, 900, 0), (0.2, 900, 1), (120, 900, 120), (7200, 900, 900), (7200, 5, 5)],
)
def test_hop_delay_is_never_early_and_never_above_one_hop(
    seconds_ahead: float, hop: int, expected: int
) -> None:
    assert hop_delay(T0 + timedelta(seconds=seconds_ahead), T0, hop) == expected


def test_publish_builds_the_contract_message() -> None:
    # Given a request delayed by 10 minutes
    queue = RecordingQueue()
    published = publish_email(email_request(delay_seconds=600), queue=queue, max_hop_seconds=HOP, now=T0)
    # Then one message carries the job, delayed 600 s, with only the allowed attributes
    [message] = queue.sent
    body = json.loads(message.body)
    assert body["job_id"] == published.job_id
    assert published.dedupe_key == "bk_123#booking_confirmed#0"
    assert published.deliver_at == T0 + timedelta(minutes=10)
    assert message.delay_seconds == 600
    assert dict(message.attributes) == {"email_type": "booking_confirmed", "schema": "booking-email/v1"}
    assert GUEST_EMAIL not in json.dumps(dict(message.attributes))


def test_long_delays_are_capped_at_the_stage_hop() -> None:
    queue = RecordingQueue()
    publish_email(email_request(delay_seconds=7200), queue=queue, max_hop_seconds=5, now=T0)
    assert queue.sent[0].delay_seconds == 5
    assert json.loads(queue.sent[0].body)["deliver_at"] == "2026-12-01T14:00:00Z"


def test_invalid_request_sends_nothing() -> None:
    queue = RecordingQueue()
    with pytest.raises(ValidationError):
        publish_email(email_request(time_zone="Nowhere/Else"), queue=queue, max_hop_seconds=HOP, now=T0)
    assert queue.sent == []


def test_admin_drift_jobs_are_published_with_their_type() -> None:
    queue = RecordingQueue()
    drift = {
        "type": "policy_drift.recovered",
        "event_id": "0b7e4b1e-8f0a-4f51-9d43-3f0f3c3b7a10",
        "occurred_at": "2026-12-01T12:00:00Z",
        "venue_id": "v1",
        "original_hold_id": "h1",
        "hold_id": "h2",
        "original_policy_hash": "a" * 64,
        "policy_hash": "b" * 64,
        "policy_version": 2,
        "attempts": 2,
    }
    publish_email(
        {
            "booking_id": drift["event_id"],
            "email_type": "admin_policy_drift",
            "recipient": {"email": "ops@example.test"},
            "data": drift,
        },
        queue=queue,
        max_hop_seconds=HOP,
        now=T0,
    )
    assert queue.sent[0].attributes["email_type"] == "admin_policy_drift"
