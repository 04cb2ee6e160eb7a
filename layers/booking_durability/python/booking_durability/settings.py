"""Runtime settings: one pydantic-settings model per function, read from the environment.

Each field reads the environment variable of its name in upper case (``deliveries_table`` from
``DELIVERIES_TABLE``); the CDK stack sets them from the stage settings. Models are validated
once, when a function's wiring is first built (``booking_durability.wiring``), never at import.
Secrets are never in the environment: only the ARN of a secret is.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, hide_input_in_errors=True, extra="ignore")


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
    """The drift notifier Lambda's settings (CONTRACT §4).

    With ``webhook_url`` the notifier POSTs each event there, signed with the Standard Webhooks
    secret: in AWS from Secrets Manager (``webhook_secret_arn``, a secret whose value is the JSON
    object ``{"secret": "whsec_..."}``), locally from ``webhook_secret`` itself, the one secret
    ever read from the environment (the local stack's own). Without a webhook it emails
    ``admin_email`` through the email queue. Empty variables count as unset.
    """

    model_config = SettingsConfigDict(env_ignore_empty=True)

    notifications_dlq_url: str
    max_receives: Annotated[int, Field(ge=1, le=1000)] = 5
    # Not in repr: a webhook URL may carry a token, and the admin's address is personal data.
    webhook_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    webhook_secret_arn: str | None = None
    webhook_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    admin_email: str | None = Field(default=None, repr=False)
    email_queue_url: str | None = None
    max_delay_hop_seconds: Annotated[int, Field(ge=1, le=900)] = 900

    def model_post_init(self, context: object, /) -> None:
        # One channel, fully configured: checked at cold start, not at the first drift event.
        if self.webhook_url is not None:
            if self.webhook_secret is None and self.webhook_secret_arn is None:
                raise ValueError("a webhook needs WEBHOOK_SECRET_ARN (AWS) or WEBHOOK_SECRET (local)")
            if self.webhook_secret is not None and self.webhook_secret_arn is not None:
                raise ValueError("give WEBHOOK_SECRET_ARN or WEBHOOK_SECRET, not both")
        elif self.admin_email is None or self.email_queue_url is None:
            raise ValueError("without WEBHOOK_URL, ADMIN_EMAIL and EMAIL_QUEUE_URL are needed")
