"""Publishing email jobs: message body, attributes and the SQS delay of the first hop."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from booking_durability.adapters.email_queue import BatchFailure, OutgoingMessage
from booking_durability.emails.producer import hop_delay, publish_email, publish_emails
from booking_durability.settings import ProducerSettings
from tests.builders import GUEST_EMAIL, T0, email_request


class RecordingQueue:
    """In-memory stand-in for the email queue: keeps what was sent, refuses what it is told to."""

    def __init__(self, refuse: dict[str, tuple[str, bool]] | None = None) -> None:
        self.sent: list[OutgoingMessage] = []
        self.refuse = refuse or {}

    def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return "m-1"

    def send_batch(self, messages: list[OutgoingMessage]) -> list[BatchFailure]:
        failures = [
            BatchFailure(m.entry_id, *self.refuse[m.entry_id]) for m in messages if m.entry_id in self.refuse
        ]
        self.sent.extend(m for m in messages if m.entry_id not in self.refuse)
        return failures


SETTINGS = ProducerSettings(EMAIL_QUEUE_URL="http://queue", MAX_DELAY_HOP_SECONDS=900)


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
    published = publish_email(email_request(delay_seconds=600), queue=queue, settings=SETTINGS, now=T0)  # type: ignore[arg-type]
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
    settings = ProducerSettings(EMAIL_QUEUE_URL="http://queue", MAX_DELAY_HOP_SECONDS=5)
    publish_email(email_request(delay_seconds=7200), queue=queue, settings=settings, now=T0)  # type: ignore[arg-type]
    assert queue.sent[0].delay_seconds == 5
    assert json.loads(queue.sent[0].body)["deliver_at"] == "2026-12-01T14:00:00Z"


def test_invalid_request_sends_nothing() -> None:
    queue = RecordingQueue()
    with pytest.raises(ValidationError):
        publish_email(email_request(time_zone="Nowhere/Else"), queue=queue, settings=SETTINGS, now=T0)  # type: ignore[arg-type]
    assert queue.sent == []


def test_batch_surfaces_partial_failures_by_position() -> None:
    # Given three requests, the second of which SQS refuses
    queue = RecordingQueue(refuse={"1": ("InternalError", False)})
    requests = [email_request(booking_id=f"bk_{i}") for i in range(3)]
    result = publish_emails(requests, queue=queue, settings=SETTINGS, now=T0)  # type: ignore[arg-type]
    # Then the caller learns which one, and that it may retry it
    assert [p.dedupe_key for p in result.published] == [
        "bk_0#booking_confirmed#0",
        "bk_2#booking_confirmed#0",
    ]
    [failure] = result.failed
    assert (failure.index, failure.dedupe_key, failure.code, failure.retryable) == (
        1,
        "bk_1#booking_confirmed#0",
        "InternalError",
        True,
    )


def test_batch_with_an_invalid_request_sends_none() -> None:
    queue = RecordingQueue()
    with pytest.raises(ValidationError):
        publish_emails([email_request(), email_request(revision=-1)], queue=queue, settings=SETTINGS, now=T0)  # type: ignore[list-item]
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
        queue=queue,  # type: ignore[arg-type]
        settings=SETTINGS,
        now=T0,
    )
    assert queue.sent[0].attributes["email_type"] == "admin_policy_drift"
