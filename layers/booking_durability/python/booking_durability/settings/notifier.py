"""The drift notifier's settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from booking_durability.settings import Settings

#: A URL on the machine itself: only such a webhook (the local stack's sink) is configured by the
#: environment.
_LOOPBACK_URL = r"^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?(/\S*)?$"


class NotifierSettings(Settings):
    """The drift notifier Lambda's settings (docs/reference/notifications.md#webhook-configuration).

    With a webhook the notifier POSTs each event there, signed with the Standard Webhooks secret.
    In AWS the webhook's URL and secrets are one secret in Secrets Manager
    (``webhook_secret_arn``: the JSON object ``{"url", "secret", "previous"?}``), never the
    environment. Only the local stack's webhook, on a loopback address, takes them from the
    environment instead (``webhook_url``, ``webhook_secret`` and, while rotating,
    ``webhook_previous_secret``): the one secret ever read from there. Without a webhook the
    notifier emails ``admin_email`` through the email queue. Empty variables count as unset.
    """

    ignore_empty_variables = True

    notifications_dlq_url: str
    max_receives: Annotated[int, Field(ge=1, le=1000)] = 5
    webhook_secret_arn: str | None = None
    # Not in repr: a webhook URL may carry a token, and the admin's address is personal data.
    webhook_url: Annotated[str, Field(pattern=_LOOPBACK_URL)] | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    webhook_previous_secret: str | None = Field(default=None, repr=False)
    webhook_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    admin_email: str | None = Field(default=None, repr=False)
    email_queue_url: str | None = None
    max_delay_hop_seconds: Annotated[int, Field(ge=1, le=900)] = 900

    @property
    def uses_webhook(self) -> bool:
        return self.webhook_secret_arn is not None or self.webhook_url is not None

    @property
    def admin_route(self) -> tuple[str, str] | None:
        """``(admin_email, email_queue_url)`` when the notifier emails the admin; None with a
        webhook. Without a webhook both are there: the settings refuse to load otherwise."""
        if self.uses_webhook or self.admin_email is None or self.email_queue_url is None:
            return None
        return self.admin_email, self.email_queue_url

    def model_post_init(self, context: object, /) -> None:
        # One channel, fully configured: checked at cold start, not at the first drift event.
        local = {
            "WEBHOOK_URL": self.webhook_url,
            "WEBHOOK_SECRET": self.webhook_secret,
            "WEBHOOK_PREVIOUS_SECRET": self.webhook_previous_secret,
        }
        if self.webhook_secret_arn is not None:
            given = [name for name, value in local.items() if value is not None]
            if given:
                raise ValueError(
                    f"with WEBHOOK_SECRET_ARN the webhook's url and secrets come from that secret: "
                    f"unset {', '.join(given)}"
                )
        elif self.webhook_url is not None:
            if self.webhook_secret is None:
                raise ValueError("a webhook needs WEBHOOK_SECRET_ARN (AWS) or WEBHOOK_SECRET (local)")
        elif self.admin_email is None or self.email_queue_url is None:
            raise ValueError("without a webhook, ADMIN_EMAIL and EMAIL_QUEUE_URL are needed")
