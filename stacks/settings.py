"""Every stage setting of the service, in one typed place.

A stage is chosen at synth time with ``-c stage=dev|prod|local`` (default ``dev``). Each stage is a
frozen pydantic model: single values are checked by their field's constraints, and each model that
has rules across its fields checks them in one ``model_validator``, so a wrong number fails the
synth with a clear message (a :class:`StageSettingsError`) instead of deploying a stack that
misbehaves. ``dev`` is written out in full; ``prod`` and ``local`` are ``dev`` with their
differences (:func:`derive`), validated again as a whole.

Pure Python on purpose (pydantic, no CDK): ``scripts/build_layer.py`` reads
:data:`LAMBDA_PYTHON_VERSION` from here without paying for the CDK import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from email.utils import parseaddr
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: The functions' runtime (``python3.13`` on arm64). The layer build targets the same version and
#: compiles the layers' bytecode with a CPython of it (pyenv's here): Lambda mounts layers
#: read-only, so without that bytecode every cold start compiles what it imports. 3.13 rather than
#: the newer 3.14, for which no interpreter exists on the build machines to compile with.
LAMBDA_PYTHON_VERSION = "3.13"
#: Wheel platforms the dependencies layer is built for: Lambda's arm64 Amazon Linux 2023.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")

#: Template metadata on a schedule's rule: the period, in seconds, the local stack's scheduler
#: runs the rule's target with (EventBridge's own rates are whole minutes; the local stage's
#: periods are seconds). Here, not in the construct, so the local stack reads it without the CDK.
SCHEDULE_PERIOD_METADATA = "booking-durability:period-seconds"
SERVICE_NAME = "booking-durability"
DEFAULT_STAGE = "dev"

# SQS hard limits the settings must respect.
SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
SQS_MAX_MESSAGE_SIZE_BYTES = 262_144
SQS_MAX_RETENTION_DAYS = 14
#: Lambda's default concurrency quota per account and region (raised through Service Quotas).
LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY = 1000
#: Executions Lambda keeps unreserved in every account and region: reservations must leave them.
LAMBDA_UNRESERVED_MINIMUM = 100
# AWS's guidance for Lambda consumers: visibility timeout at least six times the function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
#: API Gateway ends an integration after 29 s: a function allowed longer answers a 504 anyway.
API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS = 29
#: The longest visibility backoff the consumer applies between transient retries: the runtime's
#: ``booking_durability.emails.failure_policy.MAX_BACKOFF_SECONDS`` (a test keeps them equal;
#: the stacks never import the runtime package).
MAX_BACKOFF_SECONDS = 900

EmailProvider = Literal["resend", "ses", "smtp"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
#: CloudWatch Logs retention periods the stacks support.
LogRetentionDays = Literal[1, 3, 5, 7, 14, 30, 60, 90, 180, 365]
# "Name <local@domain>" or a bare "local@domain".
_SENDER_PATTERN = r"^([^<>@]*<)?[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+>?$"
_ADDRESS_PATTERN = r"^[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+$"
#: A URL on the machine itself, plain http: the local stage's webhook sink.
_LOOPBACK_URL_PATTERN = r"^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?(/\S*)?$"
#: Domains reserved for examples and tests (RFC 2606, RFC 6761) and mDNS's ``.local``: no mail
#: sent from or to them reaches anyone.
PLACEHOLDER_DOMAINS = ("example", "test", "invalid", "localhost", "local")
PLACEHOLDER_SECOND_LEVEL_DOMAINS = ("example.com", "example.net", "example.org")
#: Who gets drift notifications until the deploying team names its admins: nobody.
PLACEHOLDER_ADMIN_EMAIL = "booking-admins@booking-durability.example"
#: A Standard Webhooks signing secret: ``whsec_`` and the base64 of the HMAC key's bytes.
_WEBHOOK_SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]+={0,2}$"  # noqa: S105 (a format, not a secret)

#: The local stage's webhook signing secret: ``whsec_`` + base64 of b"booking-local-dev-secret"
#: (24 bytes). A fixed, published development value for the loopback webhook sink only: the
#: local stack puts it in stack.json (``webhook_secret``) so the sink and the e2e tests can check
#: signatures. No AWS stage may carry a secret in its environment (NotificationsSettings refuses it).
LOCAL_WEBHOOK_SECRET = "whsec_Ym9va2luZy1sb2NhbC1kZXYtc2VjcmV0"  # noqa: S105 (published, local only)


class StageSettingsError(ValueError):
    """A stage's settings break an invariant; raised at synth time, before anything deploys."""


class _Settings(BaseModel):
    # Frozen: the checks ran on these values, so nothing may change them afterwards.
    model_config = ConfigDict(frozen=True, extra="forbid")


class QueueSettings(_Settings):
    """A work queue and its dead-letter queue (see ``stacks/queue_with_dlq.py``)."""

    delivery_delay_seconds: int = Field(0, ge=0, le=SQS_MAX_DELAY_SECONDS)
    retention_days: int = Field(4, ge=1, le=SQS_MAX_RETENTION_DAYS)
    dlq_retention_days: int = Field(14, ge=1, le=SQS_MAX_RETENTION_DAYS)
    max_message_size_bytes: int = Field(SQS_MAX_MESSAGE_SIZE_BYTES, ge=1024, le=SQS_MAX_MESSAGE_SIZE_BYTES)
    #: Receives before SQS itself dead-letters a message (the backstop for consumer crashes);
    #: the email consumer dead-letters at the same count (``MAX_RECEIVES``).
    max_receive_count: int = Field(5, ge=1, le=1000)

    @model_validator(mode="after")
    def _dlq_outlives_the_queue(self) -> Self:
        if self.dlq_retention_days <= self.retention_days:
            raise ValueError(
                f"the DLQ must keep messages longer than its queue (dlq_retention_days "
                f"{self.dlq_retention_days} <= retention_days {self.retention_days}), "
                "or a redriven message can expire before anyone looks at it"
            )
        return self


class FunctionSettings(_Settings):
    """What every Lambda function of the service is sized by."""

    timeout_seconds: int = Field(ge=1, le=900)
    memory_mb: int = Field(512, ge=128, le=10_240)
    #: Executions set aside for this function alone (ReservedConcurrentExecutions), which also
    #: cap it: a flood of emails can neither take the confirmation API's executions nor be
    #: starved by other functions of the account. Every function has one; the stage checks that
    #: their sum leaves the account its unreserved minimum (:data:`LAMBDA_UNRESERVED_MINIMUM`).
    reserved_concurrency: int = Field(ge=1)


class ApiFunctionSettings(FunctionSettings):
    """A function behind API Gateway: no use running past the gateway's own timeout."""

    timeout_seconds: int = Field(ge=1, le=API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS)


class QueueConsumerSettings(FunctionSettings):
    """A function an SQS queue feeds through an event source mapping.

    The queue's visibility timeout follows from it: :attr:`visibility_timeout_seconds`.
    """

    batch_size: int = Field(10, ge=1, le=10)
    #: MaximumBatchingWindowInSeconds of the event source mapping; unset, the mapping has none.
    max_batching_window_seconds: int | None = Field(None, ge=0, le=300)
    #: ScalingConfig.MaximumConcurrency of the event source mapping (SQS allows 2..1000).
    max_concurrency: int = Field(2, ge=2, le=1000)

    @property
    def visibility_timeout_seconds(self) -> int:
        """Six function timeouts plus the batching window, as AWS advises for Lambda consumers."""
        return VISIBILITY_TIMEOUT_FACTOR * self.timeout_seconds + (self.max_batching_window_seconds or 0)

    @model_validator(mode="after")
    def _reserved_for_every_poller(self) -> Self:
        # Fewer executions than the mapping runs at once would throttle the mapping's own
        # invocations, and each throttle costs a message one of its receives.
        if self.reserved_concurrency < self.max_concurrency:
            raise ValueError(
                f"reserved_concurrency ({self.reserved_concurrency}) is below max_concurrency "
                f"({self.max_concurrency}): the event source mapping would throttle itself"
            )
        return self


class EmailConsumerSettings(QueueConsumerSettings):
    """The consumer Lambda and its SQS event source mapping."""

    batch_size: int = Field(10, ge=1, le=10_000)
    max_batching_window_seconds: int = Field(0, ge=0, le=300)
    #: Sends in flight at once inside one invocation.
    send_concurrency: int = Field(5, ge=1)
    #: How long a claimed dedupe key stays leased; longer than the timeout so a live invocation
    #: never loses its claim, short enough that a crashed one's claim is taken over soon.
    lease_seconds: int = Field(120, ge=1)

    @model_validator(mode="after")
    def _batching_and_lease(self) -> Self:
        if self.batch_size > 10 and self.max_batching_window_seconds == 0:
            raise ValueError("a batch_size above 10 needs a max_batching_window_seconds (SQS rule)")
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds}) must exceed the consumer timeout "
                f"({self.timeout_seconds}) so a running invocation keeps its claim"
            )
        return self


class EmailDeliverySettings(_Settings):
    """The provider, its limits, and the retry pacing the consumer applies.

    The pacing defaults are the AWS stages' (15-minute hops, minute-scale backoff); the local
    stage overrides them with seconds.
    """

    provider: EmailProvider
    sender: str = Field(pattern=_SENDER_PATTERN)
    provider_rate_limit_per_second: int = Field(ge=1)
    #: Whether the provider needs credentials from Secrets Manager (not SMTP on loopback).
    uses_credentials_secret: bool
    #: Longest single SQS delay; longer waits are chained as hops of at most this long.
    max_delay_hop_seconds: int = Field(SQS_MAX_DELAY_SECONDS, ge=1, le=SQS_MAX_DELAY_SECONDS)
    backoff_base_seconds: int = Field(60, ge=1)
    #: Wait after a throttle that carries no ``retry-after`` (SMTP 421).
    throttle_backoff_seconds: int = Field(30, ge=1)
    max_throttle_deferrals: int = Field(10, ge=0)
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65_535)
    resend_base_url: str | None = None

    @model_validator(mode="after")
    def _provider_has_what_it_needs(self) -> Self:
        if self.provider == "resend" and not self.uses_credentials_secret:
            raise ValueError("resend needs its API key secret (uses_credentials_secret)")
        if self.provider == "smtp" and (self.smtp_host is None or self.smtp_port is None):
            raise ValueError("the smtp provider needs smtp_host and smtp_port")
        return self


class ApiSettings(_Settings):
    """The REST API's stage: how much traffic it takes, and how many server errors page."""

    #: Steady requests per second the stage accepts (the refill rate of API Gateway's bucket).
    throttling_rate_limit: int = Field(ge=1, le=10_000)
    #: Requests the bucket holds: how far a burst may run above the steady rate.
    throttling_burst_limit: int = Field(ge=1, le=5_000)
    #: Percentage of requests answered 5xx over 5 minutes that pages (5XXError / Count x 100).
    #: Nothing a client sends may yield a 5xx (docs/reference/http-api.md#server-errors), so any sustained
    #: share is a fault of ours or of AWS.
    server_error_alarm_percent: float = Field(1.0, gt=0, le=100)
    #: Requests in those 5 minutes below which the rate is not judged: one 5xx out of three
    #: requests is 33 %, and not yet a pattern worth waking someone for.
    server_error_alarm_min_requests: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _burst_holds_a_second_of_traffic(self) -> Self:
        if self.throttling_burst_limit < self.throttling_rate_limit:
            raise ValueError(
                f"throttling_burst_limit ({self.throttling_burst_limit}) is below throttling_rate_limit "
                f"({self.throttling_rate_limit}): steady traffic the rate allows would be throttled"
            )
        return self


class NotifierFunctionSettings(QueueConsumerSettings):
    """The drift notifier Lambda and its SQS event source mapping."""


class DriftSweepFunctionSettings(FunctionSettings):
    """The scheduled function that ends the drift flows nobody repeated, once their replacement
    expired (a confirm that replaced a hold, then failed): it releases the replacement and tells
    the admins, reason ``interrupted``."""

    timeout_seconds: int = Field(60, ge=1, le=900)
    memory_mb: int = Field(256, ge=128, le=10_240)
    #: One run at a time is all a sweep needs: a run that finds the previous one still going
    #: waits for the next period rather than racing it (racing runs would be safe, only wasted).
    reserved_concurrency: int = Field(1, ge=1)
    #: How often it runs: an EventBridge schedule in AWS, whose finest rate is a minute (so a
    #: multiple of 60 there), the local scheduler process locally. An interrupted flow ends at
    #: most this long after its replacement expired.
    every_seconds: int = Field(60, ge=1, le=86_400)


class NotificationsSettings(_Settings):
    """Admin notifications of policy drift (docs/reference/notifications.md#channels): where they go, and how
    they get there.

    With ``webhook`` each drift event is POSTed to the admins' webhook, signed; without it the
    notifier emails ``admin_email`` through the email queue. In AWS the webhook's URL and signing
    secret are one secret in Secrets Manager, which the stack creates and operators fill in
    (docs/deploy.md): the URL may carry the receiver's token, so neither is known at synth time
    nor ever in a function's environment. Only the local stage's webhook, the loopback sink, is
    configured here (``local_webhook_url`` and ``local_webhook_secret``, both put in the
    notifier's environment).
    """

    webhook: bool = False
    #: How long one webhook POST may take before it counts as unreachable.
    webhook_timeout_seconds: int = Field(5, ge=1, le=60)
    local_webhook_url: str | None = Field(None, pattern=_LOOPBACK_URL_PATTERN)
    local_webhook_secret: str | None = Field(None, pattern=_WEBHOOK_SECRET_PATTERN)
    #: Who gets the ``admin_policy_drift`` email when no webhook is configured.
    admin_email: str = Field(PLACEHOLDER_ADMIN_EMAIL, pattern=_ADDRESS_PATTERN)
    notifier: NotifierFunctionSettings
    #: Stream records per pipe batch (the outbox pipe, reservations stream -> notifications queue).
    pipe_batch_size: int = Field(10, ge=1, le=10)
    #: Retries of a batch the pipe could not forward, before it goes to the pipe's DLQ. Never
    #: infinite (-1): a record retried until the stream drops it (24 h) would vanish unseen.
    pipe_retry_attempts: int = Field(10, ge=0, le=10_000)

    @property
    def webhook_secret_in_aws(self) -> bool:
        """Whether the webhook's URL and secret are the Secrets Manager secret the stack creates."""
        return self.webhook and self.local_webhook_url is None

    @model_validator(mode="after")
    def _webhook_is_safe(self) -> Self:
        if (self.local_webhook_url is None) != (self.local_webhook_secret is None):
            raise ValueError(
                "local_webhook_url and local_webhook_secret go together: the loopback sink's URL and "
                "its published secret, the only ones a function's environment may carry"
            )
        if self.local_webhook_url is not None and not self.webhook:
            raise ValueError("a local webhook is a webhook: set webhook with local_webhook_url")
        batch_time = self.notifier.batch_size * self.webhook_timeout_seconds
        if batch_time >= self.notifier.timeout_seconds:
            raise ValueError(
                f"notifier.batch_size ({self.notifier.batch_size}) x webhook_timeout_seconds "
                f"({self.webhook_timeout_seconds}) = {batch_time} s must stay below "
                f"notifier.timeout_seconds ({self.notifier.timeout_seconds}): a batch of "
                "unreachable webhooks, called one after another, must fit in one invocation"
            )
        return self


class ObservabilitySettings(_Settings):
    """Logs, traces, and the thresholds of the alarms that are not derived from other settings."""

    log_retention_days: LogRetentionDays
    tracing: bool
    log_level: LogLevel = "INFO"
    #: Who the alarm topic emails (``-c alarm_email=oncall@example.com``); none: operators
    #: subscribe to the topic themselves (its ARN is the ``AlarmTopicArn`` output).
    alarm_email: str | None = Field(None, pattern=_ADDRESS_PATTERN)
    #: Transient provider failures in 5 minutes that page: an outage or a bad API key fails every send.
    provider_failure_alarm_threshold: int = Field(10, ge=1)
    #: p99 of EmailDeliveryLagMs (sent minus ``deliver_at``) that pages when it lasts 15 minutes.
    #: An email sent at its first attempt is late by the batching window and one invocation at
    #: most (the stage check insists the threshold is above that); 300 s is reached by an email
    #: that needed its third retry (60 + 120 + 240 s of backoff), so a p99 above it means more
    #: than one email in a hundred is struggling.
    delivery_lag_p99_alarm_seconds: int = Field(300, ge=1)
    #: HoldMetadataRejected in 5 minutes that pages: confirmations refused because a hold lacks
    #: its policy hash, tables or snapshot (imported holds not yet backfilled, or a regression).
    hold_metadata_rejected_alarm_threshold: int = Field(5, ge=1)


class StageSettings(_Settings):
    """One stage of the service. Built only through :func:`stage_settings` / :func:`derive`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    email_queue: QueueSettings = QueueSettings()
    consumer: EmailConsumerSettings
    delivery: EmailDeliverySettings
    api: ApiSettings
    email_api: ApiFunctionSettings
    reservations_api: ApiFunctionSettings
    notifications_queue: QueueSettings = QueueSettings()
    notifications: NotificationsSettings
    drift_sweep: DriftSweepFunctionSettings = DriftSweepFunctionSettings()
    observability: ObservabilitySettings
    #: Keep stateful resources (the tables, the logs) when the stack is deleted.
    retain_data: bool = False
    #: A stage guests and admins rely on: once the deploying team's context is applied, its sender
    #: and its drift notification channel must be real (no placeholder address at a reserved
    #: example domain), or the synth stops (:meth:`require_real_addresses`).
    refuses_placeholder_addresses: bool = False
    #: The deploying account's Lambda concurrency quota in the stage's region: the functions'
    #: reservations must leave :data:`LAMBDA_UNRESERVED_MINIMUM` of it unreserved.
    account_concurrency: int = Field(LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY, ge=LAMBDA_UNRESERVED_MINIMUM + 1)
    #: The local stage keeps retries quick (docs/reference/local-stack.md#quick-retries): visibility <= 60 s,
    #: hops <= 5 s, backoff base <= 2 s.
    quick_retries: bool = False

    @property
    def queue_consumers(self) -> dict[str, QueueConsumerSettings]:
        """Each queue's consumer, by the queue's name."""
        return {"email": self.consumer, "notifications": self.notifications.notifier}

    @property
    def stack_name(self) -> str:
        return f"BookingDurability-{self.name}"

    @property
    def functions(self) -> dict[str, FunctionSettings]:
        """Every function's settings by where they are (``consumer``, ``notifications.notifier``),
        found in the sections themselves, so a function added to a section is counted too."""
        return dict(_function_settings(self, prefix=""))

    @property
    def reserved_concurrency(self) -> int:
        """The executions every function of the stage reserves, together."""
        return sum(function.reserved_concurrency for function in self.functions.values())

    @property
    def email_retry_backoffs_seconds(self) -> tuple[int, ...]:
        """The visibility backoff after each transient failure that is retried: receives 1 to
        ``max_receive_count - 1`` (the last receive dead-letters), doubling from
        ``backoff_base_seconds`` and capped at :data:`MAX_BACKOFF_SECONDS`, as the consumer's
        failure policy computes them."""
        base = self.delivery.backoff_base_seconds
        return tuple(
            min(base * 2 ** (receive - 1), MAX_BACKOFF_SECONDS)
            for receive in range(1, self.email_queue.max_receive_count)
        )

    @property
    def email_age_alarm_seconds(self) -> int:
        """The age of the oldest email message above which something is stuck: the longest a
        healthy pipeline keeps one message (SQS ages a message from when it was sent):

        - one hop of delay (``max_delay_hop_seconds``): every copy the service sends, a delay
          hop, a throttle deferral or a re-queue behind another worker's lease, is delayed by
          at most one hop, and SQS may count the delay in the message's age;
        - plus every retry backoff (:attr:`email_retry_backoffs_seconds`): a transiently
          failing message is the same message, hidden for its backoff after each receive;
        - plus, for each of the ``max_receive_count`` receives, the batching window and one
          full consumer invocation before the message is deleted, hidden or dead-lettered.

        dev and prod: 900 + (60 + 120 + 240 + 480) + 5 x (5 + 60) = 2125 s (about 35 minutes);
        local: 5 + (2 + 4 + 8 + 16) + 5 x (0 + 10) = 85 s. Anything older is a consumer that
        does not run (disabled mapping, crashing before it reports, throttled) or a retry
        pacing that no longer matches this derivation.
        """
        per_receive = self.consumer.max_batching_window_seconds + self.consumer.timeout_seconds
        return (
            self.delivery.max_delay_hop_seconds
            + sum(self.email_retry_backoffs_seconds)
            + self.email_queue.max_receive_count * per_receive
        )

    def require_real_addresses(self) -> None:
        """On a stage that :attr:`refuses_placeholder_addresses`, raise a
        :class:`StageSettingsError` when its sender, or its only drift notification channel, is a
        placeholder address. The stack calls it before it builds anything: what the deploying
        team passes as context (``-c email_sender``, ``-c webhook``, ``-c admin_email``) is
        applied by then."""
        if not self.refuses_placeholder_addresses:
            return
        problems = _placeholder_problems(self)
        if problems:
            raise StageSettingsError(f"stage {self.name!r}: " + "; ".join(problems))

    @model_validator(mode="after")
    def _sections_agree(self) -> Self:
        for check in _STAGE_CHECKS:
            check(self)
        return self


def _sends_within_provider_rate(stage: StageSettings) -> None:
    in_flight = stage.consumer.send_concurrency * stage.consumer.max_concurrency
    limit = stage.delivery.provider_rate_limit_per_second
    if in_flight > limit:
        raise ValueError(
            f"send_concurrency ({stage.consumer.send_concurrency}) x max_concurrency "
            f"({stage.consumer.max_concurrency}) = {in_flight} sends in flight exceeds "
            f"provider_rate_limit_per_second ({limit}) of {stage.delivery.provider!r}; "
            "lower one of them or raise the provider's limit first"
        )


def _visibility_within_sqs_limit(stage: StageSettings) -> None:
    for queue, consumer in stage.queue_consumers.items():
        if consumer.visibility_timeout_seconds > SQS_MAX_VISIBILITY_TIMEOUT_SECONDS:
            raise ValueError(
                f"the {queue} visibility timeout ({consumer.visibility_timeout_seconds} s, six "
                f"consumer timeouts) exceeds SQS's {SQS_MAX_VISIBILITY_TIMEOUT_SECONDS} s"
            )


def _lag_alarm_above_first_attempt(stage: StageSettings) -> None:
    first_attempt = stage.consumer.max_batching_window_seconds + stage.consumer.timeout_seconds
    lag_alarm = stage.observability.delivery_lag_p99_alarm_seconds
    if lag_alarm <= first_attempt:
        raise ValueError(
            f"observability.delivery_lag_p99_alarm_seconds ({lag_alarm}) must exceed the "
            f"batching window plus the consumer timeout ({first_attempt} s): an email sent at "
            "its first attempt can be that late, and the alarm would page on healthy traffic"
        )


def _leaves_unreserved_concurrency(stage: StageSettings) -> None:
    unreserved = stage.account_concurrency - stage.reserved_concurrency
    if unreserved < LAMBDA_UNRESERVED_MINIMUM:
        reserved = ", ".join(f"{where} {f.reserved_concurrency}" for where, f in stage.functions.items())
        raise ValueError(
            f"the functions reserve {stage.reserved_concurrency} executions ({reserved}), leaving "
            f"{unreserved} of the account's {stage.account_concurrency}: Lambda keeps at least "
            f"{LAMBDA_UNRESERVED_MINIMUM} unreserved; lower a reservation or raise the account's "
            "quota (and account_concurrency) first"
        )


def _retry_pacing(stage: StageSettings) -> None:
    """Quick retries on the stage that keeps them; elsewhere, a sweep schedule EventBridge can run."""
    if stage.quick_retries:
        _check_quick_retries(stage)
    elif stage.drift_sweep.every_seconds % 60:
        raise ValueError(
            f"drift_sweep.every_seconds ({stage.drift_sweep.every_seconds}) must be whole minutes: "
            "EventBridge schedules run at most once a minute"
        )


def _check_quick_retries(stage: StageSettings) -> None:
    too_slow = {
        **{
            f"{queue} visibility timeout": (consumer.visibility_timeout_seconds, 60)
            for queue, consumer in stage.queue_consumers.items()
        },
        "delivery_delay_seconds": (stage.email_queue.delivery_delay_seconds, 5),
        "notifications_queue.delivery_delay_seconds": (
            stage.notifications_queue.delivery_delay_seconds,
            5,
        ),
        "max_delay_hop_seconds": (stage.delivery.max_delay_hop_seconds, 5),
        "backoff_base_seconds": (stage.delivery.backoff_base_seconds, 2),
        "throttle_backoff_seconds": (stage.delivery.throttle_backoff_seconds, 1),
    }
    for what, (value, limit) in too_slow.items():
        if value > limit:
            raise ValueError(f"this stage keeps retries quick: {what} is {value} s, at most {limit} s")


#: What must hold across a stage's sections, checked in this order once they are each valid.
_STAGE_CHECKS: tuple[Callable[[StageSettings], None], ...] = (
    _sends_within_provider_rate,
    _visibility_within_sqs_limit,
    _lag_alarm_above_first_attempt,
    _leaves_unreserved_concurrency,
    _retry_pacing,
)


def _placeholder_problems(stage: StageSettings) -> list[str]:
    """What a stage's placeholder sender or drift channel would break, one sentence each."""
    # The messages name the setting and the flag that sets it, never the address (it may be a
    # person's).
    problems = []
    if is_placeholder_address(stage.delivery.sender):
        problems.append(
            "every guest email would be sent from a placeholder address (an example domain), "
            "which the provider refuses: pass "
            '-c email_sender="Bookings <bookings@your-verified-domain>"'
        )
    if not stage.notifications.webhook and is_placeholder_address(stage.notifications.admin_email):
        problems.append(
            "drift notifications have no channel: no webhook, and admin_email is a placeholder "
            "(an example domain) that reaches nobody. Pass -c webhook=on (then put the webhook's "
            "url and secret in its secret, docs/deploy.md) or -c admin_email=<the admins' address>"
        )
    return problems


def is_placeholder_address(address: str) -> bool:
    """Whether ``address`` (bare or ``Name <address>``) is at a domain no mail reaches."""
    domain = parseaddr(address)[1].rpartition("@")[2].lower().rstrip(".")
    labels = domain.split(".")
    return labels[-1] in PLACEHOLDER_DOMAINS or any(
        domain == reserved or domain.endswith(f".{reserved}") for reserved in PLACEHOLDER_SECOND_LEVEL_DOMAINS
    )


def _function_settings(section: BaseModel, *, prefix: str) -> Iterator[tuple[str, FunctionSettings]]:
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, FunctionSettings):
            yield f"{prefix}{name}", value
        elif isinstance(value, BaseModel):
            yield from _function_settings(value, prefix=f"{prefix}{name}.")


def derive(base: StageSettings, **changes: Any) -> StageSettings:
    """``base`` with ``changes``, validated again as a whole.

    A section given as a mapping changes only the fields it names (a section within a section
    too), so a stage reads as its differences:
    ``derive(dev, consumer={"memory_mb": 1024}, retain_data=True)``. Any broken invariant is a
    :class:`StageSettingsError` naming the stage and the field.
    """
    data = _merged(base.model_dump(), changes)
    return _validated(lambda: StageSettings.model_validate(data), stage=str(data.get("name")))


def _merged(current: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes``; a mapping merges into the section it names, at any depth."""
    merged = dict(current)
    for key, value in changes.items():
        section = merged.get(key)
        merged[key] = (
            _merged(section, value) if isinstance(value, Mapping) and isinstance(section, dict) else value
        )
    return merged


def _validated(build: Callable[[], StageSettings], *, stage: str) -> StageSettings:
    try:
        return build()
    except ValidationError as error:
        raise StageSettingsError(f"stage {stage!r}: {_explain(error)}") from None


def _explain(error: ValidationError) -> str:
    """One line per broken rule: ``consumer.lease_seconds: ...`` (never the whole input)."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _dev() -> StageSettings:
    return StageSettings(
        name="dev",
        consumer=EmailConsumerSettings(
            timeout_seconds=60,
            batch_size=10,
            max_batching_window_seconds=5,
            max_concurrency=2,
            # As many as the mapping polls with: more would never be used.
            reserved_concurrency=2,
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
        api=ApiSettings(throttling_rate_limit=20, throttling_burst_limit=40),
        # At the API's 20 requests per second, a quarter second each takes 5 executions; holds and
        # confirmations get twice the email routes' share, so a flood of emails never takes theirs.
        email_api=ApiFunctionSettings(timeout_seconds=10, reserved_concurrency=5),
        reservations_api=ApiFunctionSettings(timeout_seconds=10, reserved_concurrency=10),
        # No webhook until the deploying team turns it on (-c webhook=on): drift notifications
        # are emailed to admin_email meanwhile.
        notifications=NotificationsSettings(
            notifier=NotifierFunctionSettings(timeout_seconds=60, memory_mb=256, reserved_concurrency=2)
        ),
        observability=ObservabilitySettings(log_retention_days=14, tracing=True),
    )


def _prod() -> StageSettings:
    return derive(
        _dev(),
        name="prod",
        consumer={"memory_mb": 1024, "max_concurrency": 5, "reserved_concurrency": 5, "send_concurrency": 10},
        delivery={
            "sender": "Bookings <bookings@mail.booking-durability.example>",
            # Assumed production limit: confirm it with Resend, and raise it there before concurrency.
            "provider_rate_limit_per_second": 50,
        },
        # Assumed booking-platform peak: confirm it, and the account's API Gateway quota, first.
        api={"throttling_rate_limit": 200, "throttling_burst_limit": 400},
        # 200 requests per second, a quarter second each: 50 executions for the routes that seat
        # guests, half that for the email routes. 82 reserved in all, with dev's 19: 101 of the
        # account's 1000, leaving far more than the 100 Lambda keeps unreserved.
        email_api={"memory_mb": 1024, "reserved_concurrency": 25},
        reservations_api={"memory_mb": 1024, "reserved_concurrency": 50},
        observability={"log_retention_days": 90},
        retain_data=True,
        refuses_placeholder_addresses=True,
    )


def _local() -> StageSettings:
    return derive(
        _dev(),
        name="local",
        # 10 s x 6 = 60 s visibility: a crashed local invocation's message comes back within a minute.
        consumer={"timeout_seconds": 10, "max_batching_window_seconds": 0, "lease_seconds": 20},
        delivery={
            "provider": "smtp",
            "sender": "Bookings <bookings@booking.local>",
            # The loopback SMTP sink has no limit worth modelling; this only bounds in-flight sends.
            "provider_rate_limit_per_second": 100,
            "uses_credentials_secret": False,
            "max_delay_hop_seconds": 5,
            "backoff_base_seconds": 2,
            "throttle_backoff_seconds": 1,
            "smtp_host": "127.0.0.1",
            "smtp_port": 1025,
        },
        # docs/reference/local-stack.md#webhook-sink: drift notifications go to the loopback webhook sink,
        # signed with the published local secret. 10 s x 6 = 60 s visibility; 4 calls x 2 s fit in 10 s.
        notifications={
            "webhook": True,
            "local_webhook_url": "http://127.0.0.1:8025/webhooks/policy-drift",
            "local_webhook_secret": LOCAL_WEBHOOK_SECRET,
            "webhook_timeout_seconds": 2,
            "notifier": {"timeout_seconds": 10, "batch_size": 4},
        },
        # The local scheduler sweeps every 2 s: an interrupted flow ends soon after its replacement.
        drift_sweep={"every_seconds": 2, "timeout_seconds": 10},
        # Local retries are seconds apart (backoff 2, 4, 8 s): 30 s of lag is already the third retry.
        observability={"log_retention_days": 1, "tracing": False, "delivery_lag_p99_alarm_seconds": 30},
        quick_retries=True,
    )


_STAGES: dict[str, Callable[[], StageSettings]] = {"dev": _dev, "prod": _prod, "local": _local}
STAGE_NAMES = tuple(_STAGES)


def stage_settings(
    name: str = DEFAULT_STAGE,
    *,
    email_sender: str | None = None,
    webhook: bool | str | None = None,
    admin_email: str | None = None,
    alarm_email: str | None = None,
    webhook_url: str | None = None,
) -> StageSettings:
    """The settings of stage ``name``; an unknown name is a :class:`StageSettingsError`.

    Context values the team deploying knows and the code cannot:

    - ``email_sender`` (``-c email_sender="Bookings <bookings@your-verified-domain>"``) replaces
      the stage's sender: the domain must be verified with the provider.
    - ``webhook`` (``-c webhook=on``) sends drift notifications to a webhook: the stack creates
      the secret operators put its URL and signing secret in (``WebhookSecretArn``).
    - ``admin_email`` (``-c admin_email=admins@example.com``) receives drift notifications by
      email while no webhook is configured.
    - ``alarm_email`` (``-c alarm_email=oncall@example.com``) is subscribed to the alarm topic
      (it confirms the subscription from the email AWS sends).

    ``webhook_url`` is refused with what to do instead: a URL given at synth time would end up
    in the template and the function's environment, and it may carry the receiver's token.
    """
    try:
        build = _STAGES[name]
    except KeyError:
        raise StageSettingsError(
            f"unknown stage {name!r}: choose one of {', '.join(STAGE_NAMES)} with -c stage=<name>"
        ) from None
    if webhook_url:
        raise StageSettingsError(
            "-c webhook_url is not taken: the webhook's URL is a secret (it may carry the receiver's "
            "token), kept with its signing secret in Secrets Manager, never in the template or a "
            "function's environment. Deploy with -c webhook=on, then put "
            '{"url": ..., "secret": "whsec_..."} in the WebhookSecretArn secret (docs/deploy.md)'
        )
    settings = _validated(build, stage=name)
    if email_sender:
        if not re.fullmatch(_SENDER_PATTERN, email_sender):
            raise StageSettingsError(
                "email_sender must be an address, e.g. 'Bookings <bookings@example.com>'"
            )
        settings = derive(settings, delivery={"sender": email_sender})
    notifications: dict[str, Any] = {}
    if webhook is not None:
        notifications["webhook"] = _switch("webhook", webhook)
    if admin_email:
        notifications["admin_email"] = admin_email
    if notifications:
        settings = derive(settings, notifications=notifications)
    if alarm_email:
        settings = derive(settings, observability={"alarm_email": alarm_email})
    return settings


def _switch(name: str, value: bool | str) -> bool:
    """A context flag: a boolean from cdk.json, or a word from ``-c name=on``."""
    if isinstance(value, bool):
        return value
    words = {
        "on": True,
        "true": True,
        "yes": True,
        "1": True,
        "off": False,
        "false": False,
        "no": False,
        "0": False,
    }
    try:
        return words[value.strip().lower()]
    except KeyError:
        raise StageSettingsError(f"-c {name}= takes on or off") from None
