"""What the notifier does after a webhook failure (CONTRACT §4), decided without any I/O.

An unreachable receiver is retried by the queue (the record fails, SQS delivers it again after
the visibility timeout) until the last allowed receive, where the notifier dead-letters it
itself; a refusal is dead-lettered at once. SQS's own redrive after as many receives is the
backstop for a notifier that crashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from booking_durability.notifications.webhook import WebhookFailure, WebhookRejected


class NotificationFailureReason(StrEnum):
    """Why a drift event reached the notifications DLQ (its ``failure_reason`` attribute)."""

    WEBHOOK_UNREACHABLE = "webhook_unreachable"
    WEBHOOK_REJECTED = "webhook_rejected"
    INVALID_EVENT = "invalid_event"


@dataclass(frozen=True)
class Retry:
    """Fail the record: the queue delivers it again."""


@dataclass(frozen=True)
class DeadLetter:
    reason: NotificationFailureReason


Decision = Retry | DeadLetter


@dataclass(frozen=True)
class NotificationFailurePolicy:
    max_receives: int

    def decide(self, failure: WebhookFailure, receive_count: int) -> Decision:
        if isinstance(failure, WebhookRejected):
            return DeadLetter(NotificationFailureReason.WEBHOOK_REJECTED)
        if receive_count >= self.max_receives:
            return DeadLetter(NotificationFailureReason.WEBHOOK_UNREACHABLE)
        return Retry()
