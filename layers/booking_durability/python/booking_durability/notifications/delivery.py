"""Notifying the admin of one policy-drift event, exactly once
(docs/reference/notifications.md#webhook-delivery).

``Notifier.notify`` takes one message of the notifications queue: it validates the body
(``PolicyDriftData``: ids and hashes only), hands it to the configured channel and says what
happened, or raises ``RetryLater`` when SQS should deliver it again. Exactly one notification
per event rests on the channel: the webhook's ``webhook-id`` is the event's and identical on
every retry (the receiver drops repeats), and the email's dedupe key is
``{event_id}#admin_policy_drift#0`` (the email pipeline delivers each key once).

A message that cannot be notified goes to the notifications DLQ, unchanged, with the
``failure_reason``, ``attempts`` and ``first_dead_lettered_at`` attributes (no ``dedupe_key``:
the event's id is in its body); it counts as done only once that send succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import ValidationError

from booking_durability.drift_events import PolicyDriftData
from booking_durability.emails.ports import MessageQueue, OutgoingMessage
from booking_durability.errors import InfrastructureError
from booking_durability.metric_names import Dimension, Metric, NotificationChannel
from booking_durability.notifications.failure_policy import (
    DeadLetter,
    NotificationFailurePolicy,
    NotificationFailureReason,
)
from booking_durability.notifications.webhook import WebhookFailure
from booking_durability.observability import count_with_dimension, logger
from booking_durability.retry import RetryLater
from booking_durability.times import iso, utc_now
from booking_durability.validation import error_locations

__all__ = ["IncomingNotification", "NotificationOutcome", "Notifier"]


@dataclass(frozen=True)
class IncomingNotification:
    """The parts of an SQS record the notifier uses."""

    message_id: str
    body: str
    receive_count: int
    #: When an earlier receive first dead-lettered it (a redriven event), if it says so soundly.
    first_dead_lettered_at: datetime | None = None


class NotificationOutcome(StrEnum):
    SENT = "sent"
    DEAD_LETTERED = "dead_lettered"


class AdminChannel(Protocol):
    """Where drift events go: the webhook (``webhook.WebhookChannel``) or the admin's email
    (``email_channel.EmailChannel``)."""

    @property
    def name(self) -> NotificationChannel: ...

    def deliver(self, event: PolicyDriftData, body: str) -> None:
        """Deliver ``event`` (``body`` is its text as received). Raises ``WebhookFailure`` or
        ``InfrastructureError``."""
        ...


@dataclass
class Notifier:
    """The notifier's logic, with every dependency handed in (tests hand in their own)."""

    channel: AdminChannel
    dlq: MessageQueue
    policy: NotificationFailurePolicy
    clock: Callable[[], datetime] = field(default=utc_now)

    def notify(self, message: IncomingNotification) -> NotificationOutcome:
        try:
            event = PolicyDriftData.model_validate_json(message.body)
        except ValidationError as exc:
            # Where validation failed, never what was there.
            logger.warning(
                "drift event failed validation",
                extra={
                    "message_id": message.message_id,
                    "error_locations": error_locations(exc, PolicyDriftData),
                },
            )
            self._dead_letter(message, NotificationFailureReason.INVALID_EVENT, attempts=0)
            return NotificationOutcome.DEAD_LETTERED
        with _event_log_context(event):
            return self._notify(event, message)

    def _notify(self, event: PolicyDriftData, message: IncomingNotification) -> NotificationOutcome:
        channel = self.channel.name
        try:
            self.channel.deliver(event, message.body)
        except WebhookFailure as failure:
            decision = self.policy.decide(failure, message.receive_count)
            if isinstance(decision, DeadLetter):
                self._dead_letter(
                    message, decision.reason, attempts=message.receive_count, status=failure.status
                )
                return NotificationOutcome.DEAD_LETTERED
            logger.warning(
                "webhook unreachable; the event will be delivered again",
                extra={"status": failure.status, "receive_count": message.receive_count},
            )
            raise RetryLater("webhook unreachable") from None
        except InfrastructureError as exc:
            # The secret or the email queue out of reach: nothing the event did. Retried like
            # an unreachable webhook, and dead-lettered with its reason on the last receive.
            unavailable = self.policy.decide_unavailable(message.receive_count)
            if isinstance(unavailable, DeadLetter):
                logger.error(
                    "admin notification channel unavailable on the last receive",
                    extra={
                        "error_code": exc.code,
                        "channel": channel,
                        "receive_count": message.receive_count,
                    },
                )
                self._dead_letter(message, unavailable.reason, attempts=message.receive_count)
                return NotificationOutcome.DEAD_LETTERED
            logger.error(
                "admin notification not sent; the event will be delivered again",
                extra={"error_code": exc.code, "channel": channel, "receive_count": message.receive_count},
            )
            raise RetryLater(exc.code) from None
        count_with_dimension(Metric.ADMIN_NOTIFICATION_SENT, Dimension.CHANNEL, channel)
        logger.info("admin notified", extra={"channel": channel, "receive_count": message.receive_count})
        return NotificationOutcome.SENT

    def _dead_letter(
        self,
        message: IncomingNotification,
        reason: NotificationFailureReason,
        *,
        attempts: int,
        status: int | None = None,
    ) -> None:
        """Send the message, unchanged, to the DLQ with why; ``RetryLater`` when SQS refuses."""
        # Kept from the first time it was dead-lettered (a redriven event says when), else now.
        now = self.clock()
        first = message.first_dead_lettered_at
        attributes: dict[str, str | int] = {
            "failure_reason": reason,
            "attempts": attempts,
            "first_dead_lettered_at": iso(first if first is not None and first <= now else now),
        }
        try:
            dead_letter_id = self.dlq.send(OutgoingMessage(message.body, attributes))
        except InfrastructureError as exc:
            logger.error(
                "notifications DLQ send failed; the event will be delivered again",
                extra={"error_code": exc.code, "failure_reason": reason},
            )
            raise RetryLater("dead-letter send failed") from None
        count_with_dimension(Metric.ADMIN_NOTIFICATION_FAILED, Dimension.FAILURE_REASON, reason)
        logger.warning(
            "drift event dead-lettered",
            extra={
                "failure_reason": reason,
                "attempts": attempts,
                "status": status,
                "message_id": message.message_id,
                "dlq_message_id": dead_letter_id,
            },
        )


@contextmanager
def _event_log_context(event: PolicyDriftData) -> Iterator[None]:
    """The event's id as every log line's correlation id while it is handled (ids only)."""
    keys = {"correlation_id": str(event.event_id), "event_type": event.type, "venue_id": event.venue_id}
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(keys))
