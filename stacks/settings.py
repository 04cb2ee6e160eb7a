"""Every stage setting of the service, in one typed place.

A stage is chosen at synth time with ``-c stage=dev|prod|local`` (default ``dev``). Each stage is a
frozen :class:`StageSettings`; its invariants are checked when it is built, so a wrong number fails
the synth with a clear message instead of deploying a stack that misbehaves.

Pure Python on purpose: ``scripts/build_layer.py`` reads :data:`LAMBDA_PYTHON_VERSION` from here
without paying for the CDK import.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

#: The functions' runtime (``python3.14`` on arm64). The layer build targets the same version.
LAMBDA_PYTHON_VERSION = "3.14"
#: Wheel platforms the dependencies layer is built for: Lambda's arm64 Amazon Linux 2023.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")

SERVICE_NAME = "booking-durability"
METRICS_NAMESPACE = "BookingDurability"
DEFAULT_STAGE = "dev"

# SQS hard limits the settings must respect.
SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
SQS_MAX_MESSAGE_SIZE_BYTES = 262_144
# AWS's guidance for Lambda consumers: visibility timeout at least six times the function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6

#: CloudWatch Logs retention periods the stacks support.
LOG_RETENTION_DAYS_CHOICES = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)

EmailProvider = Literal["resend", "ses", "smtp"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class StageSettingsError(ValueError):
    """A stage's settings break an invariant; raised at synth time, before anything deploys."""


@dataclass(frozen=True)
class EmailQueueSettings:
    """The email queue and its dead-letter queue."""

    delivery_delay_seconds: int = 0
    retention_days: int = 4
    dlq_retention_days: int = 14
    max_message_size_bytes: int = SQS_MAX_MESSAGE_SIZE_BYTES
    #: Receives before SQS itself dead-letters a message (the backstop for consumer crashes);
    #: the consumer dead-letters at the same count (``MAX_RECEIVES``).
    max_receive_count: int = 5


@dataclass(frozen=True)
class EmailConsumerSettings:
    """The consumer Lambda and its SQS event source mapping."""

    timeout_seconds: int
    memory_mb: int = 512
    batch_size: int = 10
    max_batching_window_seconds: int = 0
    #: ScalingConfig.MaximumConcurrency of the event source mapping (SQS allows 2..1000).
    max_concurrency: int = 2
    #: Sends in flight at once inside one invocation.
    send_concurrency: int = 5
    #: How long a claimed dedupe key stays leased; longer than the timeout so a live invocation
    #: never loses its claim, short enough that a crashed one's claim is taken over soon.
    lease_seconds: int = 120


@dataclass(frozen=True)
class EmailDeliverySettings:
    """The provider, its limits, and the retry pacing the consumer applies.

    The pacing defaults are the AWS stages' (15-minute hops, minute-scale backoff); the local
    stage overrides them with seconds.
    """

    provider: EmailProvider
    sender: str
    provider_rate_limit_per_second: int
    #: Whether the provider needs credentials from Secrets Manager (not SMTP on loopback).
    uses_credentials_secret: bool
    #: Longest single SQS delay; longer waits are chained as hops of at most this long.
    max_delay_hop_seconds: int = SQS_MAX_DELAY_SECONDS
    backoff_base_seconds: int = 60
    #: Wait after a throttle that carries no ``retry-after`` (SMTP 421).
    throttle_backoff_seconds: int = 30
    max_throttle_deferrals: int = 10
    smtp_host: str | None = None
    smtp_port: int | None = None
    resend_base_url: str | None = None


@dataclass(frozen=True)
class ObservabilitySettings:
    log_retention_days: int
    tracing: bool
    log_level: LogLevel = "INFO"
    # Transient provider failures in 5 minutes that page: an outage or a bad API key fails every send.
    provider_failure_alarm_threshold: int = 10


@dataclass(frozen=True)
class StageSettings:
    """One stage of the service. Built only through :func:`stage_settings` or tests."""

    name: str
    email_queue: EmailQueueSettings
    consumer: EmailConsumerSettings
    delivery: EmailDeliverySettings
    observability: ObservabilitySettings
    #: Keep stateful resources (the deliveries table) when the stack is deleted.
    retain_data: bool = False
    #: The local stage keeps retries quick (CONTRACT §3): visibility <= 60 s, hops <= 5 s,
    #: backoff base <= 2 s.
    quick_retries: bool = False

    def __post_init__(self) -> None:
        self._check_provider_rate()
        self._check_consumer()
        self._check_queue()
        self._check_delivery()
        if self.observability.log_retention_days not in LOG_RETENTION_DAYS_CHOICES:
            raise StageSettingsError(
                f"stage {self.name!r}: log_retention_days must be one of {LOG_RETENTION_DAYS_CHOICES}"
            )
        if self.quick_retries:
            self._check_quick_retries()

    @property
    def email_visibility_timeout_seconds(self) -> int:
        """Six consumer timeouts plus the batching window, as AWS advises for Lambda consumers."""
        return VISIBILITY_TIMEOUT_FACTOR * self.consumer.timeout_seconds + (
            self.consumer.max_batching_window_seconds
        )

    @property
    def stack_name(self) -> str:
        return f"BookingDurability-{self.name}"

    def _check_provider_rate(self) -> None:
        in_flight = self.consumer.send_concurrency * self.consumer.max_concurrency
        limit = self.delivery.provider_rate_limit_per_second
        if in_flight > limit:
            raise StageSettingsError(
                f"stage {self.name!r}: send_concurrency ({self.consumer.send_concurrency}) x "
                f"max_concurrency ({self.consumer.max_concurrency}) = {in_flight} sends in flight "
                f"exceeds provider_rate_limit_per_second ({limit}) of {self.delivery.provider!r}; "
                "lower one of them or raise the provider's limit first"
            )

    def _check_consumer(self) -> None:
        consumer = self.consumer
        if not 2 <= consumer.max_concurrency <= 1000:
            raise StageSettingsError(
                f"stage {self.name!r}: max_concurrency must be 2..1000 (SQS event source limit)"
            )
        if not 0 <= consumer.max_batching_window_seconds <= 300:
            raise StageSettingsError(f"stage {self.name!r}: max_batching_window_seconds must be 0..300")
        if not 1 <= consumer.batch_size <= 10_000:
            raise StageSettingsError(f"stage {self.name!r}: batch_size must be 1..10000")
        if consumer.batch_size > 10 and consumer.max_batching_window_seconds == 0:
            raise StageSettingsError(
                f"stage {self.name!r}: a batch_size above 10 needs a max_batching_window_seconds"
            )
        if consumer.lease_seconds <= consumer.timeout_seconds:
            raise StageSettingsError(
                f"stage {self.name!r}: lease_seconds ({consumer.lease_seconds}) must exceed the "
                f"consumer timeout ({consumer.timeout_seconds}) so a running invocation keeps its claim"
            )

    def _check_queue(self) -> None:
        queue = self.email_queue
        if not 0 <= queue.delivery_delay_seconds <= SQS_MAX_DELAY_SECONDS:
            raise StageSettingsError(f"stage {self.name!r}: delivery_delay_seconds must be 0..900")
        if self.email_visibility_timeout_seconds > SQS_MAX_VISIBILITY_TIMEOUT_SECONDS:
            raise StageSettingsError(f"stage {self.name!r}: the consumer timeout is too long for SQS")
        if queue.dlq_retention_days <= queue.retention_days:
            raise StageSettingsError(
                f"stage {self.name!r}: the DLQ must keep messages longer than the email queue, "
                "or a redriven message can expire before anyone looks at it"
            )

    def _check_delivery(self) -> None:
        delivery = self.delivery
        if not 1 <= delivery.max_delay_hop_seconds <= SQS_MAX_DELAY_SECONDS:
            raise StageSettingsError(f"stage {self.name!r}: max_delay_hop_seconds must be 1..900")
        if delivery.provider == "resend" and not delivery.uses_credentials_secret:
            raise StageSettingsError(f"stage {self.name!r}: resend needs its API key secret")
        if delivery.provider == "smtp" and (delivery.smtp_host is None or delivery.smtp_port is None):
            raise StageSettingsError(f"stage {self.name!r}: the smtp provider needs smtp_host and smtp_port")

    def _check_quick_retries(self) -> None:
        too_slow = {
            "email visibility timeout": (self.email_visibility_timeout_seconds, 60),
            "delivery_delay_seconds": (self.email_queue.delivery_delay_seconds, 5),
            "max_delay_hop_seconds": (self.delivery.max_delay_hop_seconds, 5),
            "backoff_base_seconds": (self.delivery.backoff_base_seconds, 2),
            "throttle_backoff_seconds": (self.delivery.throttle_backoff_seconds, 1),
        }
        for what, (value, limit) in too_slow.items():
            if value > limit:
                raise StageSettingsError(
                    f"stage {self.name!r} keeps retries quick: {what} is {value} s, at most {limit} s"
                )


def _dev() -> StageSettings:
    return StageSettings(
        name="dev",
        email_queue=EmailQueueSettings(),
        consumer=EmailConsumerSettings(
            timeout_seconds=60,
            batch_size=10,
            max_batching_window_seconds=5,
            max_concurrency=2,
            send_concurrency=5,
            lease_seconds=120,
        ),
        delivery=EmailDeliverySettings(
            provider="resend",
            sender="Bookings <bookings@dev.mail.booking-durability.example>",
            # Resend's default team limit; dev shares it with nothing else.
            provider_rate_limit_per_second=10,
            uses_credentials_secret=True,
        ),
        observability=ObservabilitySettings(log_retention_days=14, tracing=True),
    )


def _prod() -> StageSettings:
    return StageSettings(
        name="prod",
        email_queue=EmailQueueSettings(),
        consumer=EmailConsumerSettings(
            timeout_seconds=60,
            memory_mb=1024,
            batch_size=10,
            max_batching_window_seconds=5,
            max_concurrency=5,
            send_concurrency=10,
            lease_seconds=120,
        ),
        delivery=EmailDeliverySettings(
            provider="resend",
            sender="Bookings <bookings@mail.booking-durability.example>",
            # Assumed production limit: confirm it with Resend, and raise it there before concurrency.
            provider_rate_limit_per_second=50,
            uses_credentials_secret=True,
        ),
        observability=ObservabilitySettings(log_retention_days=90, tracing=True),
        retain_data=True,
    )


def _local() -> StageSettings:
    return StageSettings(
        name="local",
        email_queue=EmailQueueSettings(),
        # 10 s x 6 = 60 s visibility: a crashed local invocation's message comes back within a minute.
        consumer=EmailConsumerSettings(
            timeout_seconds=10,
            memory_mb=512,
            batch_size=10,
            max_batching_window_seconds=0,
            max_concurrency=2,
            send_concurrency=5,
            lease_seconds=20,
        ),
        delivery=EmailDeliverySettings(
            provider="smtp",
            sender="Bookings <bookings@booking.local>",
            # The loopback SMTP sink has no limit worth modelling; this only bounds in-flight sends.
            provider_rate_limit_per_second=100,
            uses_credentials_secret=False,
            max_delay_hop_seconds=5,
            backoff_base_seconds=2,
            throttle_backoff_seconds=1,
            max_throttle_deferrals=10,
            smtp_host="127.0.0.1",
            smtp_port=1025,
        ),
        observability=ObservabilitySettings(log_retention_days=1, tracing=False),
        quick_retries=True,
    )


_STAGES = {"dev": _dev, "prod": _prod, "local": _local}
STAGE_NAMES = tuple(_STAGES)


def stage_settings(name: str = DEFAULT_STAGE, *, email_sender: str | None = None) -> StageSettings:
    """The settings of stage ``name``; an unknown name is a :class:`StageSettingsError`.

    ``email_sender`` (context ``-c email_sender="Bookings <bookings@your-verified-domain>"``)
    replaces the stage's sender: the domain must be verified with the provider, and only the
    team deploying knows it.
    """
    try:
        build = _STAGES[name]
    except KeyError:
        raise StageSettingsError(
            f"unknown stage {name!r}: choose one of {', '.join(STAGE_NAMES)} with -c stage=<name>"
        ) from None
    settings = build()
    if email_sender:
        if "@" not in email_sender:
            raise StageSettingsError(
                "email_sender must be an address, e.g. 'Bookings <bookings@example.com>'"
            )
        settings = replace(settings, delivery=replace(settings.delivery, sender=email_sender))
    return settings
