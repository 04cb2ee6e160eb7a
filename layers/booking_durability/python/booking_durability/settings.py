"""Runtime settings: one pydantic model per function, read from the environment.

Each field reads the environment variable of its name in upper case (``deliveries_table`` from
``DELIVERIES_TABLE``; any case matches), a keyword argument taking its place; the CDK stack sets
them from the stage settings. Plain pydantic does it: pydantic-settings' sources (dotenv, secret
folders, cloud vaults, a command line) would cost every cold start their imports, and a function
reads nothing but its environment. Models are validated
once, when a function's wiring is first built (``booking_durability.wiring``), never at import.
Secrets are never in the environment, only the ARN of a secret is: the one exception is the local
stack's webhook, whose published development secret the notifier takes from there.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: A URL on the machine itself: only such a webhook (the local stack's sink) is configured by the
#: environment.
_LOOPBACK_URL = r"^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?(/\S*)?$"


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, extra="ignore")
    #: Whether a variable set to "" counts as unset.
    ignore_empty_variables: ClassVar[bool] = False

    @classmethod
    def from_environment(cls, **values: Any) -> Self:
        """The settings: every field not given from its environment variable."""
        return cls(**values)

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        # Each field from the variable of its name in upper case, exactly: the stack and the
        # local stack set only those, and a variable differing in case is someone else's.
        found = {}
        for name in cls.model_fields:
            value = os.environ.get(name.upper())
            if value is not None and (value or not cls.ignore_empty_variables):
                found[name] = value
        return {**found, **values}


class ProducerSettings(_Settings):
    """What anything publishing email jobs needs (API, notifier, scripts)."""

    email_queue_url: str
    max_delay_hop_seconds: Annotated[int, Field(ge=1, le=900)] = 900


class ConsumerSettings(ProducerSettings):
    """The email consumer Lambda's settings."""

    stage: str
    deliveries_table: str
    email_dlq_url: str
    send_concurrency: Annotated[int, Field(ge=1, le=50)] = 10
    backoff_base_seconds: Annotated[int, Field(ge=1, le=900)] = 60
    throttle_backoff_seconds: Annotated[int, Field(ge=1, le=900)] = 30
    max_throttle_deferrals: Annotated[int, Field(ge=0, le=100)] = 10
    max_receives: Annotated[int, Field(ge=1, le=1000)] = 5
    lease_seconds: Annotated[int, Field(ge=1, le=43200)] = 120
    email_provider: Literal["resend", "ses", "smtp"] = "smtp"
    provider_secret_arn: str | None = None
    email_sender: str = "Bookings <bookings@booking.local>"
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 1025
    smtp_starttls: bool = False
    resend_base_url: str = "https://api.resend.com"
    provider_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0


class EmailApiSettings(ProducerSettings):
    """The email routes' function: publishes jobs and records them in the deliveries ledger."""

    deliveries_table: str


class ReservationsApiSettings(_Settings):
    """The venue, hold and booking routes' function."""

    reservations_table: str


class DriftSweepSettings(_Settings):
    """The drift sweep's function: it ends interrupted drift flows in the reservations table."""

    reservations_table: str


class NotifierSettings(_Settings):
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
