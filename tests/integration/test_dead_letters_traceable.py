"""Dead letters an operator can trace (README.md, "How delivery stays exactly-once"): every
letter the consumer sends carries ``failure_reason``, ``attempts``, ``first_dead_lettered_at``
(kept across redrives) and, once the job validated, ``dedupe_key``; its log line names the
letter's DLQ message id and the dedupe key. The queues are moto's, the batch the real one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from booking_durability.emails.consumer import consume_batch
from booking_durability.emails.ports import OutgoingMessage
from booking_durability.emails.providers.base import PermanentProviderError, TransientProviderError
from booking_durability.errors import QueueSendFailed
from booking_durability.observability import metrics
from tests.builders import T0, job, sqs_event, sqs_record
from tests.integration.conftest import Clock, Resources, ScriptedProvider, consumer_of, make_delivery

KEY = "bk_123#booking_confirmed#0"
NOW = "2026-12-01T12:00:00Z"  # the test clock's


@pytest.fixture(autouse=True)
def invocation_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def attributes(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


def consume(
    resources: Resources, clock: Clock, *records: dict[str, Any], provider: Any = None
) -> dict[str, Any]:
    delivery = make_delivery(
        resources, provider or ScriptedProvider([PermanentProviderError("resend", 422)]), clock
    )
    return consume_batch_of(delivery, *records)


def consume_batch_of(delivery: Any, *records: dict[str, Any]) -> dict[str, Any]:
    return consume_batch(sqs_event(*records), None, consumer_of(delivery))


def test_a_letter_names_its_email_its_reason_its_attempts_and_when_it_was_first_dead_lettered(
    resources: Resources, clock: Clock, log_lines: io.StringIO
) -> None:
    # When the provider refuses an email for good
    assert consume(resources, clock, sqs_record(job())) == {"batchItemFailures": []}
    # Then its letter says what it is, why, how often it was tried and since when
    [letter] = resources.drain(resources.dlq_url)
    assert attributes(letter) == {
        "failure_reason": "provider_rejected",
        "attempts": "1",
        "dedupe_key": KEY,
        "first_dead_lettered_at": NOW,
        "email_type": "booking_confirmed",
        "schema": "booking-email/v1",
    }
    # And the log line names the letter by its DLQ message id, and the email by its key (ids only)
    [line] = [json.loads(text) for text in log_lines.getvalue().splitlines() if "email dead-lettered" in text]
    assert line["dlq_message_id"] == letter["MessageId"]
    assert line["dedupe_key"] == KEY


def test_a_letter_of_a_body_that_did_not_validate_has_no_dedupe_key(
    resources: Resources, clock: Clock
) -> None:
    consume(resources, clock, sqs_record({**job(), "revision": -1}), sqs_record("{not json"))
    letters = resources.drain(resources.dlq_url)
    assert sorted(attributes(letter)["failure_reason"] for letter in letters) == [
        "invalid_json",
        "schema_invalid",
    ]
    assert all("dedupe_key" not in attributes(letter) for letter in letters)
    assert all(attributes(letter)["first_dead_lettered_at"] == NOW for letter in letters)


@pytest.mark.parametrize(
    ("received", "kept"),
    [
        ("2026-11-20T09:15:00+01:00", "2026-11-20T08:15:00Z"),  # sound: kept, in UTC
        ("2026-11-20T08:15:00.5Z", "2026-11-20T08:15:00.500000Z"),
        ("20 November", NOW),  # unparsable: now
        ("1999-11-20T08:15:00Z", NOW),  # outside the instants the service accepts
        ("2026-12-24T08:15:00Z", NOW),  # later than now cannot be the first time
        ("ana.guest+pii@example.test", NOW),
    ],
)
def test_a_redriven_letter_dead_lettered_again_keeps_when_it_was_first_dead_lettered(
    resources: Resources, clock: Clock, received: str, kept: str
) -> None:
    # Given a letter an operator redrove, with the attributes its first dead-lettering gave it
    redriven = sqs_record(
        job(),
        attributes={
            "failure_reason": "provider_rejected",
            "attempts": 1,
            "dedupe_key": KEY,
            "first_dead_lettered_at": received,
        },
    )
    # When it fails for good again
    consume(resources, clock, redriven)
    # Then its new letter keeps the first time, if the redriven one said so soundly
    [letter] = resources.drain(resources.dlq_url)
    assert attributes(letter)["first_dead_lettered_at"] == kept
    assert attributes(letter)["attempts"] == "1"  # the ledger's count, not the attribute's


class CapturingQueue:
    """Keeps what is sent to it (a re-queued copy) rather than delay it in moto."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return "m"

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        return None


def test_a_redriven_letter_waiting_for_its_time_carries_its_first_dead_lettering_along(
    resources: Resources, clock: Clock
) -> None:
    # Given a redriven letter whose deliver_at is still ahead
    delivery = make_delivery(resources, ScriptedProvider(), clock)
    delivery.dispatch.queue = queue = CapturingQueue()
    redriven = sqs_record(
        job(deliver_at=T0 + timedelta(seconds=30)),
        attributes={
            "failure_reason": "transient_exhausted",
            "attempts": 2,
            "first_dead_lettered_at": "2026-11-20T08:15:00Z",
        },
    )
    # When it is re-queued for the rest of the wait
    consume_batch_of(delivery, redriven)
    # Then the copy still says when it was first dead-lettered, and how often it was tried
    [copy] = queue.sent
    assert copy.attributes["first_dead_lettered_at"] == "2026-11-20T08:15:00Z"
    assert copy.attributes["attempts"] == 2
    assert copy.delay_seconds == 30


class RefusingDlq:
    """A DLQ refusing every send."""

    def send(self, message: OutgoingMessage) -> str:
        raise QueueSendFailed("send_message failed: ServiceUnavailable")

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        return None


def test_a_letter_the_dlq_refuses_on_the_last_receive_goes_back_as_a_fresh_copy_with_its_reason(
    resources: Resources, clock: Clock
) -> None:
    # Given an email failing transiently on its fifth receive, and a DLQ that refuses it
    delivery = make_delivery(resources, ScriptedProvider([TransientProviderError("resend", 503)]), clock)
    delivery.dispatch.dlq = RefusingDlq()
    record = sqs_record(job(), receive_count=5)
    # When the consumer dead-letters it
    assert consume_batch_of(delivery, record) == {"batchItemFailures": []}
    # Then rather than leave it to SQS's redrive (no reason), a fresh copy is on the queue,
    # saying why, with its receives ahead of it
    [copy] = resources.drain(resources.queue_url)
    assert copy["Body"] == record["body"]
    assert attributes(copy)["failure_reason"] == "transient_exhausted"
    assert attributes(copy)["dedupe_key"] == KEY
    assert resources.status("bk_123", "booking_confirmed#0") == "failed"
