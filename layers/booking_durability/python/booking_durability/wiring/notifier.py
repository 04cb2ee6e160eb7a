"""The drift notifier's dependencies: settings, the channel (webhook or email), the DLQ.

The webhook's URL and signing secret come from Secrets Manager in AWS (``WEBHOOK_SECRET_ARN``: a
JSON object ``{"url": ..., "secret": "whsec_...", "previous": "whsec_..."}``, ``previous`` only
while the secret is rotated), read through the Powertools cache so a rotation reaches warm
functions within minutes; locally from ``WEBHOOK_URL``, ``WEBHOOK_SECRET`` and
``WEBHOOK_PREVIOUS_SECRET``. ``Rotating`` rebuilds the target only when the secret changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from booking_durability.adapters import aws
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.adapters.secrets import Rotating, secret_json
from booking_durability.notifications.delivery import AdminChannel, Notifier
from booking_durability.notifications.failure_policy import NotificationFailurePolicy
from booking_durability.notifications.webhook import (
    PREVIOUS_KEY,
    SECRET_KEY,
    URL_KEY,
    HttpxTransport,
    WebhookChannel,
    WebhookSecretUnavailable,
    target_from_secret,
)
from booking_durability.settings.notifier import NotifierSettings
from booking_durability.wiring import Wired


def webhook_secret(settings: NotifierSettings) -> Callable[[], Mapping[str, str]]:
    """Reads the webhook secret as ``{"url", "secret", "previous"?}``, wherever the stage keeps it."""
    arn = settings.webhook_secret_arn
    if arn is None:
        local = {URL_KEY: settings.webhook_url, SECRET_KEY: settings.webhook_secret}
        if settings.webhook_previous_secret is not None:
            local[PREVIOUS_KEY] = settings.webhook_previous_secret
        configured = {key: value for key, value in local.items() if value is not None}
        return lambda: configured

    def read() -> Mapping[str, str]:
        try:
            return secret_json(arn)
        except Exception:
            # Not the cause's text: a transform error may quote part of the secret's value.
            raise WebhookSecretUnavailable("could not read the webhook secret") from None

    return read


def build_channel(settings: NotifierSettings, sqs: Any) -> AdminChannel:
    """The webhook when one is configured, else the admin's email
    (docs/reference/notifications.md#channels)."""
    route = settings.admin_route
    if route is not None:
        # Only this stage loads the email models (address validation): a webhook stage never does.
        from booking_durability.emails.models import Recipient
        from booking_durability.notifications.email_channel import EmailChannel

        admin_email, email_queue_url = route
        return EmailChannel(
            admin=Recipient(email=admin_email),  # a bad address fails the cold start
            queue=EmailQueue(email_queue_url, sqs),
            max_hop_seconds=settings.max_delay_hop_seconds,
        )
    target = Rotating(webhook_secret(settings), target_from_secret)
    if settings.webhook_secret_arn is None:
        target()  # the local secrets cost no call: a malformed one fails the cold start
    return WebhookChannel(target=target, transport=HttpxTransport(settings.webhook_timeout_seconds))


def build_notifier(settings: NotifierSettings) -> Notifier:
    sqs = aws.client("sqs")
    return Notifier(
        channel=build_channel(settings, sqs),
        dlq=EmailQueue(settings.notifications_dlq_url, sqs),  # an SQS sender with the dead-letter attributes
        policy=NotificationFailurePolicy(max_receives=settings.max_receives),
    )


def _build() -> Notifier:
    return build_notifier(NotifierSettings.from_environment())


notifier = Wired(_build)
