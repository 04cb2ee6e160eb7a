"""The drift notifier's dependencies: settings, the channel (webhook or email), the DLQ.

The webhook's signing secret comes from Secrets Manager in AWS (``WEBHOOK_SECRET_ARN``: a JSON
object ``{"secret": "whsec_..."}``, the same shape as the provider's secret, read through the
Powertools cache so a rotation reaches warm functions within minutes) and from
``WEBHOOK_SECRET`` locally; ``Rotating`` rebuilds the signer only when the secret changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from booking_durability.adapters import aws
from booking_durability.adapters.email_queue import EmailQueue
from booking_durability.adapters.secrets import Rotating, secret_json
from booking_durability.notifications.failure_policy import NotificationFailurePolicy
from booking_durability.notifications.notifier import AdminChannel, Notifier
from booking_durability.notifications.webhook import (
    SECRET_KEY,
    HttpxTransport,
    WebhookChannel,
    WebhookSecretUnavailable,
    signer_from_secret,
)
from booking_durability.settings import NotifierSettings
from booking_durability.wiring import Wired


def webhook_secret(settings: NotifierSettings) -> Callable[[], Mapping[str, str]]:
    """Reads the webhook secret as ``{"secret": "whsec_..."}``, wherever the stage keeps it."""
    local = settings.webhook_secret
    if local is not None:
        return lambda: {SECRET_KEY: local}
    arn = settings.webhook_secret_arn

    def read() -> Mapping[str, str]:
        try:
            return secret_json(arn)
        except Exception:
            # Not the cause's text: a transform error may quote part of the secret's value.
            raise WebhookSecretUnavailable("could not read the webhook secret") from None

    return read


def build_channel(settings: NotifierSettings, sqs: Any) -> AdminChannel:
    """The webhook when one is configured, else the admin's email (CONTRACT §4)."""
    if settings.webhook_url is None:
        # Only this stage loads the email models (address validation): a webhook stage never does.
        from booking_durability.emails.models import Recipient
        from booking_durability.notifications.email_channel import EmailChannel

        assert settings.admin_email is not None  # checked by the settings
        assert settings.email_queue_url is not None
        return EmailChannel(
            admin=Recipient(email=settings.admin_email),  # a bad address fails the cold start
            queue=EmailQueue(settings.email_queue_url, sqs),
            max_hop_seconds=settings.max_delay_hop_seconds,
        )
    signer = Rotating(webhook_secret(settings), signer_from_secret)
    if settings.webhook_secret is not None:
        signer()  # the local secret costs no call: a malformed one fails the cold start
    client = httpx.Client(timeout=httpx.Timeout(settings.webhook_timeout_seconds), follow_redirects=False)
    return WebhookChannel(url=settings.webhook_url, signer=signer, transport=HttpxTransport(client))


def build_notifier(settings: NotifierSettings) -> Notifier:
    sqs = aws.client("sqs")
    return Notifier(
        channel=build_channel(settings, sqs),
        dlq=EmailQueue(settings.notifications_dlq_url, sqs),  # an SQS sender with the §2 attributes
        policy=NotificationFailurePolicy(max_receives=settings.max_receives),
    )


def _build() -> Notifier:
    return build_notifier(NotifierSettings())  # every field from the environment


notifier = Wired(_build)
