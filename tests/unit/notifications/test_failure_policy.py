"""When a failed webhook send is retried by the queue and when it is dead-lettered
(docs/reference/notifications.md#retries-and-dead-letters)."""

from __future__ import annotations

import pytest

from booking_durability.notifications.failure_policy import (
    DeadLetter,
    NotificationFailurePolicy,
    NotificationFailureReason,
    Retry,
)
from booking_durability.notifications.webhook import WebhookRejected, WebhookUnreachable

POLICY = NotificationFailurePolicy(max_receives=5)


@pytest.mark.parametrize("receive_count", [1, 2, 3, 4])
def test_an_unreachable_receiver_is_retried_before_the_last_receive(receive_count: int) -> None:
    assert POLICY.decide(WebhookUnreachable(503, "down"), receive_count) == Retry()


@pytest.mark.parametrize("receive_count", [5, 6, 40])
def test_at_the_last_receive_an_unreachable_receiver_is_dead_lettered(receive_count: int) -> None:
    decision = POLICY.decide(WebhookUnreachable(None, "timed out"), receive_count)
    assert decision == DeadLetter(NotificationFailureReason.WEBHOOK_UNREACHABLE)


@pytest.mark.parametrize("receive_count", [1, 5])
def test_a_refusal_is_dead_lettered_at_once(receive_count: int) -> None:
    decision = POLICY.decide(WebhookRejected(400, "refused"), receive_count)
    assert decision == DeadLetter(NotificationFailureReason.WEBHOOK_REJECTED)


def test_the_receive_budget_is_the_stages() -> None:
    patient = NotificationFailurePolicy(max_receives=8)
    assert patient.decide(WebhookUnreachable(503, "down"), 5) == Retry()
    assert isinstance(patient.decide(WebhookUnreachable(503, "down"), 8), DeadLetter)
