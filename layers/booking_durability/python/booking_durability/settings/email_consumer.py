"""The email consumer's settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from booking_durability.settings.publishing import ProducerSettings


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
