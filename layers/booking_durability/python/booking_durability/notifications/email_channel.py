"""The admin's email as the drift notifier's channel, when no webhook is configured
(docs/reference/notifications.md#admin-email-fallback).

A module of its own so that a notifier with a webhook never imports the email models and their
address validation: only ``wiring.notifier.build_channel``'s no-webhook branch imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from booking_durability.drift_events import PolicyDriftData
from booking_durability.emails.models import AdminDriftEmailRequest, Recipient
from booking_durability.emails.ports import MessageQueue
from booking_durability.emails.producer import publish_email
from booking_durability.metric_names import NotificationChannel
from booking_durability.times import utc_now

ADMIN_LOCALE = "en"


@dataclass
class EmailChannel:
    """With no webhook configured: an ``admin_policy_drift`` job on the email queue."""

    admin: Recipient
    queue: MessageQueue
    max_hop_seconds: int
    clock: Callable[[], datetime] = utc_now
    name: ClassVar[Literal[NotificationChannel.EMAIL]] = NotificationChannel.EMAIL

    def deliver(self, event: PolicyDriftData, body: str) -> None:
        """Publish the event's email job (due now). Raises ``QueueSendFailed``."""
        request = AdminDriftEmailRequest.model_validate(
            {
                # A UUID's canonical text matches the booking id pattern; one event, one dedupe key.
                "booking_id": str(event.event_id),
                "email_type": "admin_policy_drift",
                "recipient": self.admin,
                "locale": ADMIN_LOCALE,
                "data": event,
            }
        )
        publish_email(request, queue=self.queue, max_hop_seconds=self.max_hop_seconds, now=self.clock())
