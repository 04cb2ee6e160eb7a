"""Runtime settings: one pydantic model per function, read from the environment once.

Nothing here runs at import time; ``consumer_settings()`` validates at first use (cold start)
and caches. Secrets are never in the environment: only the ARN of the provider's secret is.
"""

from __future__ import annotations

import functools
import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _EnvModel(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, hide_input_in_errors=True)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        source = os.environ if env is None else env
        names = {(f.alias or name): name for name, f in cls.model_fields.items()}
        return cls.model_validate({alias: source[alias] for alias in names if alias in source})


class ProducerSettings(_EnvModel):
    """What anything publishing email jobs needs (API, notifier, scripts, the booking app)."""

    email_queue_url: str = Field(alias="EMAIL_QUEUE_URL")
    max_delay_hop_seconds: Annotated[int, Field(ge=1, le=900)] = Field(900, alias="MAX_DELAY_HOP_SECONDS")


class ConsumerSettings(ProducerSettings):
    """The email consumer Lambda's settings, set by the CDK stack from the stage settings."""

    stage: str = Field(alias="STAGE")
    deliveries_table: str = Field(alias="DELIVERIES_TABLE")
    email_dlq_url: str = Field(alias="EMAIL_DLQ_URL")
    send_concurrency: Annotated[int, Field(ge=1, le=50)] = Field(10, alias="SEND_CONCURRENCY")
    backoff_base_seconds: Annotated[int, Field(ge=1, le=900)] = Field(60, alias="BACKOFF_BASE_SECONDS")
    throttle_backoff_seconds: Annotated[int, Field(ge=1, le=900)] = Field(
        30, alias="THROTTLE_BACKOFF_SECONDS"
    )
    max_throttle_deferrals: Annotated[int, Field(ge=0, le=100)] = Field(10, alias="MAX_THROTTLE_DEFERRALS")
    max_receives: Annotated[int, Field(ge=1, le=1000)] = Field(5, alias="MAX_RECEIVES")
    lease_seconds: Annotated[int, Field(ge=1, le=43200)] = Field(120, alias="LEASE_SECONDS")
    email_provider: Literal["resend", "ses", "smtp"] = Field("smtp", alias="EMAIL_PROVIDER")
    provider_secret_arn: str | None = Field(None, alias="PROVIDER_SECRET_ARN")
    sender: str = Field("Bookings <bookings@booking.local>", alias="EMAIL_SENDER")
    smtp_host: str = Field("127.0.0.1", alias="SMTP_HOST")
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = Field(1025, alias="SMTP_PORT")
    smtp_starttls: bool = Field(False, alias="SMTP_STARTTLS")
    resend_base_url: str = Field("https://api.resend.com", alias="RESEND_BASE_URL")
    provider_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, alias="PROVIDER_TIMEOUT_SECONDS"
    )


@functools.cache
def producer_settings() -> ProducerSettings:
    return ProducerSettings.from_env()  # type: ignore[no-any-return]


@functools.cache
def consumer_settings() -> ConsumerSettings:
    return ConsumerSettings.from_env()  # type: ignore[no-any-return]
