"""Every alarm of the service and the section of ``docs/runbook.md`` that says what to do about it.

One place for the anchors: each alarm's description ends with ``Runbook: docs/runbook.md#<anchor>``
(:meth:`Page.description`), the runbook has one section per entry here, titled with its
``title`` (GitHub derives exactly ``anchor`` from that heading), and an infrastructure test
checks that every alarm in the template names one of these anchors and that the anchors are
unique. ``widget`` is where on the stage's dashboard the operator looks first: the section's
heading and the graph's title, as the dashboard shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

RUNBOOK_PATH = "docs/runbook.md"


class AlarmKey(StrEnum):
    """One kind of alarm: one runbook section (the tables' read and write throttles share one)."""

    EMAIL_DLQ = "email-dlq"
    NOTIFICATIONS_DLQ = "notifications-dlq"
    OUTBOX_PIPE_DLQ = "outbox-pipe-dlq"
    EMAIL_QUEUE_AGE = "email-queue-age"
    EMAIL_DELIVERY_LAG = "email-delivery-lag"
    EMAIL_PROVIDER_FAILING = "email-provider-failing"
    EMAIL_PROVIDER_NOT_CONFIGURED = "email-provider-not-configured"
    EMAIL_CONSUMER_ERRORS = "email-consumer-errors"
    EMAIL_CONSUMER_THROTTLES = "email-consumer-throttles"
    EMAIL_API_ERRORS = "email-api-errors"
    EMAIL_API_THROTTLES = "email-api-throttles"
    RESERVATIONS_API_ERRORS = "reservations-api-errors"
    RESERVATIONS_API_THROTTLES = "reservations-api-throttles"
    NOTIFIER_ERRORS = "notifier-errors"
    NOTIFIER_THROTTLES = "notifier-throttles"
    DRIFT_SWEEP_ERRORS = "drift-sweep-errors"
    DRIFT_SWEEP_THROTTLES = "drift-sweep-throttles"
    API_SERVER_ERRORS = "api-server-errors"
    API_UNHANDLED_ERRORS = "api-unhandled-errors"
    DELIVERIES_TABLE_THROTTLES = "deliveries-table-throttles"
    RESERVATIONS_TABLE_THROTTLES = "reservations-table-throttles"
    POLICY_DRIFT_UNRECOVERED = "policy-drift-unrecovered"
    HOLD_METADATA_REJECTED = "hold-metadata-rejected"


@dataclass(frozen=True)
class RunbookSection:
    """A section of the runbook: its heading, the anchor GitHub gives it, the dashboard graph."""

    title: str
    anchor: str
    #: ``(dashboard section, graph title)``: where the alarm's metric is drawn.
    widget: tuple[str, str]

    @property
    def reference(self) -> str:
        return f"{RUNBOOK_PATH}#{self.anchor}"


RUNBOOK = MappingProxyType(
    {
        AlarmKey.EMAIL_DLQ: RunbookSection(
            "Email DLQ not empty", "email-dlq-not-empty", ("Email queue", "DLQ: Message Count")
        ),
        AlarmKey.NOTIFICATIONS_DLQ: RunbookSection(
            "Notifications DLQ not empty",
            "notifications-dlq-not-empty",
            ("Notifications queue", "DLQ: Message Count"),
        ),
        AlarmKey.OUTBOX_PIPE_DLQ: RunbookSection(
            "Outbox pipe DLQ not empty", "outbox-pipe-dlq-not-empty", ("Outbox pipe DLQ", "Message Count")
        ),
        AlarmKey.EMAIL_QUEUE_AGE: RunbookSection(
            "Email queue oldest message too old",
            "email-queue-oldest-message-too-old",
            ("Email queue", "Oldest Message Age"),
        ),
        AlarmKey.EMAIL_DELIVERY_LAG: RunbookSection(
            "Email delivery lag high",
            "email-delivery-lag-high",
            ("Email delivery", "Delivery lag (ms after deliver_at)"),
        ),
        AlarmKey.EMAIL_PROVIDER_FAILING: RunbookSection(
            "Email provider failing", "email-provider-failing", ("Email delivery", "Email outcomes")
        ),
        AlarmKey.EMAIL_PROVIDER_NOT_CONFIGURED: RunbookSection(
            "Email provider not configured",
            "email-provider-not-configured",
            ("Email delivery", "Provider not configured (no credentials to send with)"),
        ),
        AlarmKey.EMAIL_CONSUMER_ERRORS: RunbookSection(
            "Email consumer errors", "email-consumer-errors", ("Email consumer", "Errors")
        ),
        AlarmKey.EMAIL_CONSUMER_THROTTLES: RunbookSection(
            "Email consumer throttled", "email-consumer-throttled", ("Email consumer", "Invocations")
        ),
        AlarmKey.EMAIL_API_ERRORS: RunbookSection(
            "Email API function errors", "email-api-function-errors", ("Email API", "Errors")
        ),
        AlarmKey.EMAIL_API_THROTTLES: RunbookSection(
            "Email API function throttled", "email-api-function-throttled", ("Email API", "Invocations")
        ),
        AlarmKey.RESERVATIONS_API_ERRORS: RunbookSection(
            "Reservations API function errors",
            "reservations-api-function-errors",
            ("Reservations API", "Errors"),
        ),
        AlarmKey.RESERVATIONS_API_THROTTLES: RunbookSection(
            "Reservations API function throttled",
            "reservations-api-function-throttled",
            ("Reservations API", "Invocations"),
        ),
        AlarmKey.NOTIFIER_ERRORS: RunbookSection(
            "Notifier errors", "notifier-errors", ("Notifier", "Errors")
        ),
        AlarmKey.NOTIFIER_THROTTLES: RunbookSection(
            "Notifier throttled", "notifier-throttled", ("Notifier", "Invocations")
        ),
        AlarmKey.DRIFT_SWEEP_ERRORS: RunbookSection(
            "Drift sweep errors", "drift-sweep-errors", ("Drift sweep", "Errors")
        ),
        AlarmKey.DRIFT_SWEEP_THROTTLES: RunbookSection(
            "Drift sweep throttled", "drift-sweep-throttled", ("Drift sweep", "Invocations")
        ),
        AlarmKey.API_SERVER_ERRORS: RunbookSection(
            "API 5xx rate high",
            "api-5xx-rate-high",
            ("HTTP API server errors", "5xx answers (% of requests)"),
        ),
        AlarmKey.API_UNHANDLED_ERRORS: RunbookSection(
            "API unhandled errors",
            "api-unhandled-errors",
            ("HTTP API server errors", "Unhandled errors (500 INTERNAL_ERROR)"),
        ),
        AlarmKey.DELIVERIES_TABLE_THROTTLES: RunbookSection(
            "Deliveries table throttled", "deliveries-table-throttled", ("Deliveries table", "Throttles")
        ),
        AlarmKey.RESERVATIONS_TABLE_THROTTLES: RunbookSection(
            "Reservations table throttled",
            "reservations-table-throttled",
            ("Reservations table", "Throttles"),
        ),
        AlarmKey.POLICY_DRIFT_UNRECOVERED: RunbookSection(
            "Policy drift unrecovered",
            "policy-drift-unrecovered",
            ("Holds and bookings", "Policy drift unrecovered (all reasons)"),
        ),
        AlarmKey.HOLD_METADATA_REJECTED: RunbookSection(
            "Hold metadata rejected spike",
            "hold-metadata-rejected-spike",
            ("Holds and bookings", "Confirmations refused for missing hold metadata"),
        ),
    }
)


@dataclass(frozen=True)
class Page:
    """What one alarm means when it pages, and the runbook section that says what to do."""

    runbook: AlarmKey
    meaning: str

    @property
    def section(self) -> RunbookSection:
        return RUNBOOK[self.runbook]

    @property
    def description(self) -> str:
        """The alarm's description: its meaning, then where the runbook answers it."""
        return f"{self.meaning} Runbook: {self.section.reference}"
