"""One drift event to the admin, exactly once (docs/reference/notifications.md#webhook-delivery): validated,
handed to the channel, retried by the queue or dead-lettered with why, and counted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from booking_durability.emails.models import EMAIL_JOB, AdminDriftEmailJob, PolicyDriftData, Recipient
from booking_durability.notifications import delivery as notifier_module
from booking_durability.notifications.delivery import (
    IncomingNotification,
    NotificationOutcome,
    Notifier,
)
from booking_durability.notifications.email_channel import EmailChannel
from booking_durability.notifications.failure_policy import NotificationFailurePolicy
from booking_durability.notifications.webhook import (
    WebhookChannel,
    WebhookSecretUnavailable,
    WebhookSigner,
    WebhookTarget,
    WebhookUnreachable,
)
from booking_durability.retry import RetryLater
from tests.unit.notifications.builders import (
    ADMIN_EMAIL,
    SECRET,
    Clock,
    FakeQueue,
    FakeTransport,
    as_body,
    drift_event,
    unrecovered_event,
)


def message(body: dict[str, Any] | str, receive_count: int = 1) -> IncomingNotification:
    text = body if isinstance(body, str) else as_body(body)
    return IncomingNotification(message_id="m-1", body=text, receive_count=receive_count)


class Metrics:
    """Every metric the notifier emits with its own dimension, as (name, dimension, value)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, str]] = []

    def __call__(self, name: str, dimension: str, value: str) -> None:
        self.emitted.append((name, dimension, value))


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    recorded = Metrics()
    monkeypatch.setattr(notifier_module, "count_with_dimension", recorded)
    return recorded


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def dlq() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def webhook_notifier(transport: FakeTransport, dlq: FakeQueue) -> Notifier:
    target = WebhookTarget(url="https://hooks.example.test/drift", signer=WebhookSigner(SECRET))
    channel = WebhookChannel(target=lambda: target, transport=transport)
    return Notifier(channel=channel, dlq=dlq, policy=NotificationFailurePolicy(max_receives=5), clock=Clock())


@pytest.fixture
def email_queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def email_notifier(email_queue: FakeQueue, dlq: FakeQueue) -> Notifier:
    channel = EmailChannel(
        admin=Recipient(email=ADMIN_EMAIL), queue=email_queue, max_hop_seconds=900, clock=Clock()
    )
    return Notifier(channel=channel, dlq=dlq, policy=NotificationFailurePolicy(max_receives=5), clock=Clock())


FIRST_DEAD_LETTERED_AT = "2026-12-01T12:00:00Z"  # the test clock's now: this is its first time


def dead_letter_attributes(dlq: FakeQueue) -> dict[str, Any]:
    """The letter's attributes, ``first_dead_lettered_at`` checked (now) and left out."""
    [dead] = dlq.sent
    attributes = dict(dead.attributes)
    assert attributes.pop("first_dead_lettered_at") == FIRST_DEAD_LETTERED_AT
    return attributes


@pytest.mark.parametrize("event", [drift_event(), unrecovered_event()])
def test_a_drift_event_reaches_the_webhook_once_and_is_counted(
    event: dict[str, Any],
    webhook_notifier: Notifier,
    transport: FakeTransport,
    dlq: FakeQueue,
    metrics: Metrics,
) -> None:
    assert webhook_notifier.notify(message(event)) is NotificationOutcome.SENT
    assert [posted.body for posted in transport.posted] == [as_body(event).encode()]
    assert dlq.sent == []
    assert metrics.emitted == [("AdminNotificationSent", "channel", "webhook")]


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "",
        as_body(drift_event(type="policy_drift.ignored")),
        as_body(drift_event(event_id="not-a-uuid")),
        as_body(drift_event(policy_hash="ABC")),
        as_body(drift_event(venue_id=None)),
        as_body(drift_event(guest_email="ana@example.test")),  # ids and hashes only
    ],
)
def test_a_body_that_is_not_a_drift_event_is_dead_lettered_at_once_unsent(
    body: str, webhook_notifier: Notifier, transport: FakeTransport, dlq: FakeQueue, metrics: Metrics
) -> None:
    assert webhook_notifier.notify(message(body, receive_count=1)) is NotificationOutcome.DEAD_LETTERED
    assert transport.posted == []
    assert dlq.sent[0].body == body
    assert dead_letter_attributes(dlq) == {"failure_reason": "invalid_event", "attempts": 0}
    assert metrics.emitted == [("AdminNotificationFailed", "failure_reason", "invalid_event")]


@pytest.mark.parametrize("receive_count", [1, 2, 3, 4])
def test_an_unreachable_webhook_leaves_the_event_for_the_queue_to_deliver_again(
    receive_count: int, webhook_notifier: Notifier, transport: FakeTransport, dlq: FakeQueue, metrics: Metrics
) -> None:
    transport.script = [503]
    with pytest.raises(RetryLater):
        webhook_notifier.notify(message(drift_event(), receive_count=receive_count))
    assert dlq.sent == []
    assert metrics.emitted == []


def test_at_the_fifth_receive_an_unreachable_webhook_dead_letters_the_event_unchanged(
    webhook_notifier: Notifier, transport: FakeTransport, dlq: FakeQueue, metrics: Metrics
) -> None:
    transport.script = [WebhookUnreachable(None, "timed out")]
    event = drift_event()
    assert webhook_notifier.notify(message(event, receive_count=5)) is NotificationOutcome.DEAD_LETTERED
    assert dlq.sent[0].body == as_body(event)
    assert dead_letter_attributes(dlq) == {"failure_reason": "webhook_unreachable", "attempts": 5}
    assert metrics.emitted == [("AdminNotificationFailed", "failure_reason", "webhook_unreachable")]


def test_a_refusing_webhook_dead_letters_the_event_at_once(
    webhook_notifier: Notifier, transport: FakeTransport, dlq: FakeQueue, metrics: Metrics
) -> None:
    transport.script = [400]
    assert (
        webhook_notifier.notify(message(drift_event(), receive_count=1)) is NotificationOutcome.DEAD_LETTERED
    )
    assert dead_letter_attributes(dlq) == {"failure_reason": "webhook_rejected", "attempts": 1}
    assert len(transport.posted) == 1
    assert metrics.emitted == [("AdminNotificationFailed", "failure_reason", "webhook_rejected")]


def test_a_dead_letter_that_sqs_refuses_leaves_the_event_on_the_queue(
    webhook_notifier: Notifier, transport: FakeTransport, dlq: FakeQueue, metrics: Metrics
) -> None:
    transport.script = [400]
    dlq.failing = True
    with pytest.raises(RetryLater):
        webhook_notifier.notify(message(drift_event()))
    assert metrics.emitted == []


@pytest.mark.parametrize("receive_count", [1, 4])
def test_an_unreadable_secret_leaves_the_event_on_the_queue_before_the_last_receive(
    receive_count: int, transport: FakeTransport, dlq: FakeQueue
) -> None:
    def no_secret() -> WebhookTarget:
        raise WebhookSecretUnavailable("could not read the webhook secret")

    channel = WebhookChannel(target=no_secret, transport=transport)
    notifier = Notifier(channel=channel, dlq=dlq, policy=NotificationFailurePolicy(max_receives=5))
    with pytest.raises(RetryLater):
        notifier.notify(message(drift_event(), receive_count=receive_count))
    assert transport.posted == []
    assert dlq.sent == []


def test_an_unreadable_secret_at_the_last_receive_dead_letters_the_event_with_its_reason(
    transport: FakeTransport, dlq: FakeQueue, metrics: Metrics
) -> None:
    def no_secret() -> WebhookTarget:
        raise WebhookSecretUnavailable("could not read the webhook secret")

    channel = WebhookChannel(target=no_secret, transport=transport)
    notifier = Notifier(
        channel=channel, dlq=dlq, policy=NotificationFailurePolicy(max_receives=5), clock=Clock()
    )
    event = drift_event()
    # Never left for SQS's redrive, which would move it without a reason
    assert notifier.notify(message(event, receive_count=5)) is NotificationOutcome.DEAD_LETTERED
    assert transport.posted == []
    assert dlq.sent[0].body == as_body(event)
    assert dead_letter_attributes(dlq) == {"failure_reason": "channel_unavailable", "attempts": 5}
    assert metrics.emitted == [("AdminNotificationFailed", "failure_reason", "channel_unavailable")]


def test_without_a_webhook_the_admin_gets_an_email_job_keyed_by_the_event(
    email_notifier: Notifier, email_queue: FakeQueue, metrics: Metrics
) -> None:
    # Given a drift event
    event = unrecovered_event()
    # When it is notified without a webhook
    assert email_notifier.notify(message(event)) is NotificationOutcome.SENT
    # Then one admin_policy_drift job, due now, carries it to the admin in English
    [published] = email_queue.sent
    job = EMAIL_JOB.validate_json(published.body)
    assert isinstance(job, AdminDriftEmailJob)
    assert job.booking_id == event["event_id"]
    assert job.dedupe_key == f"{event['event_id']}#admin_policy_drift#0"
    assert job.recipient.email == ADMIN_EMAIL
    assert job.locale == "en"
    assert job.data == PolicyDriftData.model_validate(event)
    assert json.loads(published.body)["data"] == {**event, "occurred_at": "2026-12-01T12:00:00Z"}
    assert published.attributes == {"email_type": "admin_policy_drift", "schema": "booking-email/v1"}
    assert published.delay_seconds == 0
    assert metrics.emitted == [("AdminNotificationSent", "channel", "email")]


def test_a_redelivered_event_publishes_the_same_dedupe_key_so_the_admin_gets_one_email(
    email_notifier: Notifier, email_queue: FakeQueue
) -> None:
    body = drift_event()
    email_notifier.notify(message(body, receive_count=1))
    email_notifier.notify(message(body, receive_count=2))
    keys = {EMAIL_JOB.validate_json(sent.body).dedupe_key for sent in email_queue.sent}
    assert keys == {f"{body['event_id']}#admin_policy_drift#0"}


def test_an_email_queue_that_refuses_leaves_the_event_for_the_queue_to_deliver_again(
    email_notifier: Notifier, email_queue: FakeQueue, dlq: FakeQueue
) -> None:
    email_queue.failing = True
    with pytest.raises(RetryLater):
        email_notifier.notify(message(drift_event()))
    assert dlq.sent == []


def test_an_email_queue_that_refuses_at_the_last_receive_dead_letters_the_event_with_its_reason(
    email_notifier: Notifier, email_queue: FakeQueue, dlq: FakeQueue
) -> None:
    email_queue.failing = True
    assert email_notifier.notify(message(drift_event(), receive_count=5)) is NotificationOutcome.DEAD_LETTERED
    assert dead_letter_attributes(dlq) == {"failure_reason": "channel_unavailable", "attempts": 5}


def test_an_event_id_in_upper_case_still_keys_one_email(
    email_notifier: Notifier, email_queue: FakeQueue
) -> None:
    event = drift_event()
    email_notifier.notify(message(event))
    email_notifier.notify(message({**event, "event_id": event["event_id"].upper()}))
    assert len({EMAIL_JOB.validate_json(sent.body).dedupe_key for sent in email_queue.sent}) == 1
