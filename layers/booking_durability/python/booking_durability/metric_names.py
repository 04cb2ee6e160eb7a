"""The service's own CloudWatch metrics: their namespace, names, and the values of their dimensions.

The functions emit these names (``observability.count``), the monitoring stack graphs and alarms
on them, and the tests check the two agree; none of them spells a name itself. ``alarmed`` on a
metric says the monitoring stack must page on it, so a renamed metric cannot silently lose its
alarm (tests/infrastructure/test_metric_names.py).

This module imports nothing but the standard library, and the package's ``__init__`` nothing at
all: the CDK app (``stacks/``) imports it without loading the runtime's dependencies (pydantic,
Powertools), and it ships in the layer with the code that emits the metrics. A module under
``stacks/`` could not be imported by the functions; a package of its own would need a layer of
its own.
"""

from __future__ import annotations

from enum import StrEnum

#: The namespace every function emits its metrics to (``POWERTOOLS_METRICS_NAMESPACE``).
NAMESPACE = "BookingDurability"


class Dimension(StrEnum):
    """A metric's own dimension, beside the ``service`` one Powertools adds to every metric."""

    FAILURE_REASON = "failure_reason"
    REASON = "reason"
    CHANNEL = "channel"


class Metric(StrEnum):
    """A metric a function emits; ``alarmed`` when an alarm of the stack pages on it, and the
    ``dimension`` it is emitted with (``observability.count_with_dimension``), if any."""

    alarmed: bool
    dimension: Dimension | None

    def __new__(cls, name: str, alarmed: bool = False, dimension: Dimension | None = None) -> Metric:
        member = str.__new__(cls, name)
        member._value_ = name
        member.alarmed = alarmed
        member.dimension = dimension
        return member

    # The email consumer: what happened to each email it received.
    EMAIL_SENT = "EmailSent"
    EMAIL_DUPLICATE_SKIPPED = "EmailDuplicateSkipped"
    EMAIL_DEFERRED = "EmailDeferred"
    EMAIL_TRANSIENT_FAILURE = "EmailTransientFailure", True
    EMAIL_THROTTLED = "EmailThrottled"
    EMAIL_PERMANENT_FAILURE = "EmailPermanentFailure"
    EMAIL_PROVIDER_NOT_CONFIGURED = "EmailProviderNotConfigured", True
    EMAIL_CANCELLED_SKIPPED = "EmailCancelledSkipped"
    EMAIL_EXPIRED_SKIPPED = "EmailExpiredSkipped"
    EMAIL_SUPPRESSED_SKIPPED = "EmailSuppressedSkipped"
    EMAIL_LEASE_LOST = "EmailLeaseLost"
    EMAIL_UNEXPECTED_FAILURE = "EmailUnexpectedFailure"
    EMAIL_SENT_UNRECORDED = "EmailSentUnrecorded"
    #: Milliseconds from an email's deliver_at to its sending.
    EMAIL_DELIVERY_LAG_MS = "EmailDeliveryLagMs", True
    #: By :class:`FailureReason`.
    EMAIL_DEAD_LETTERED = "EmailDeadLettered", False, Dimension.FAILURE_REASON
    # The reservations API (and the drift sweep): holds, bookings, policy drift.
    HOLD_CREATED = "HoldCreated"
    HOLD_CONFIRMED = "HoldConfirmed"
    HOLD_RELEASED = "HoldReleased"
    BOOKING_CANCELLED = "BookingCancelled"
    HOLD_METADATA_REJECTED = "HoldMetadataRejected", True
    #: By :class:`NoAvailabilityReason`.
    NO_AVAILABILITY = "NoAvailability", False, Dimension.REASON
    POLICY_DRIFT_DETECTED = "PolicyDriftDetected"
    POLICY_DRIFT_RECOVERED = "PolicyDriftRecovered"
    #: By :class:`DriftReason`.
    POLICY_DRIFT_UNRECOVERED = "PolicyDriftUnrecovered", True, Dimension.REASON
    # The notifier: how the admins were told, or why they were not.
    #: By :class:`NotificationChannel`.
    ADMIN_NOTIFICATION_SENT = "AdminNotificationSent", False, Dimension.CHANNEL
    #: By :class:`NotificationFailureReason`.
    ADMIN_NOTIFICATION_FAILED = "AdminNotificationFailed", False, Dimension.FAILURE_REASON
    # The API functions' last line: a failure nothing anticipated, answered 500 INTERNAL_ERROR.
    UNHANDLED_ERRORS = "UnhandledErrors", True


class FailureReason(StrEnum):
    """Why a message reached the DLQ: never provider text, which can echo the address."""

    INVALID_JSON = "invalid_json"
    SCHEMA_INVALID = "schema_invalid"
    PROVIDER_REJECTED = "provider_rejected"
    RENDER_FAILED = "render_failed"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    TRANSIENT_EXHAUSTED = "transient_exhausted"
    THROTTLE_EXHAUSTED = "throttle_exhausted"


class NotificationFailureReason(StrEnum):
    """Why a drift event reached the notifications DLQ (its ``failure_reason`` attribute)."""

    WEBHOOK_UNREACHABLE = "webhook_unreachable"
    WEBHOOK_REJECTED = "webhook_rejected"
    INVALID_EVENT = "invalid_event"
    #: The webhook's secret or the email queue could not be reached on every receive.
    CHANNEL_UNAVAILABLE = "channel_unavailable"


class NotificationChannel(StrEnum):
    """How the notifier tells the admins of a drift event."""

    WEBHOOK = "webhook"
    EMAIL = "email"


class NoAvailabilityReason(StrEnum):
    PARTY_TOO_LARGE = "party_too_large"
    NO_TABLE = "no_table"


class DriftReason(StrEnum):
    """Why a drift flow ended unrecovered (no availability, a second drift, or interrupted)."""

    NO_AVAILABILITY = "no_availability"
    DRIFT_REPEATED = "drift_repeated"
    INTERRUPTED = "interrupted"
