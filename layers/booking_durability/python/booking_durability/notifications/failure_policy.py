"""What the notifier does after a webhook failure (docs/reference/notifications.md#retries-and-dead-letters),
decided without any I/O.

An unreachable receiver is retried by the queue (the record fails, SQS delivers it again after
the visibility timeout) until the last allowed receive, where the notifier dead-letters it
itself; a refusal is dead-lettered at once. So is an event whose channel stayed out of reach (the
webhook's secret, the email queue) until its last receive. SQS's own redrive after as many
receives is the backstop for a notifier that crashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from booking_durability.metric_names import NotificationFailureReason as NotificationFailureReason
from booking_durability.notifications.webhook import WebhookFailure, WebhookRejected


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

    def decide_unavailable(self, receive_count: int) -> Decision:
        """The channel's own dependencies out of reach: retried, dead-lettered on the last receive
        with a reason of its own rather than left to SQS's redrive, which would give it none."""
        if receive_count >= self.max_receives:
            return DeadLetter(NotificationFailureReason.CHANNEL_UNAVAILABLE)
        return Retry()
