"""Every email model: the guest's (``emails/guest.py``), the admin's policy-drift email (the
notifier's fallback, docs/reference/notifications.md#admin-email-fallback), and the queue message
that is either one (docs/reference/queue-message.md#message-body).

Every model hides input in its errors: a submitted value may be a guest's address or name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter

from booking_durability.drift_events import PolicyDriftData
from booking_durability.emails.guest import (
    _ONE_WAY_TO_DELAY,
    EMAIL_PATTERN,
    MAX_ADDRESS_LENGTH,
    MAX_DELAY,
    MAX_DELAY_SECONDS,
    MAX_LOCAL_PART_LENGTH,
    MAX_REVISION,
    RETENTION,
    SCHEMA_ID,
    AdminEmailType,
    BookingEmailData,
    EmailAddress,
    EmailRef,
    EmailRequest,
    EmailStatus,
    EmailType,
    FailureReason,
    GuestEmailJob,
    GuestEmailType,
    Locale,
    Recipient,
    _EmailFields,
    _JobFields,
    _RequestRules,
    _schema_rules,
    message_id_for,
)
from booking_durability.validation import StandardJsonSchema

__all__ = [
    "EMAIL_JOB",
    "EMAIL_PATTERN",
    "MAX_ADDRESS_LENGTH",
    "MAX_DELAY",
    "MAX_DELAY_SECONDS",
    "MAX_LOCAL_PART_LENGTH",
    "MAX_REVISION",
    "RETENTION",
    "SCHEMA_ID",
    "AdminDriftEmailJob",
    "AdminDriftEmailRequest",
    "AdminEmailType",
    "BookingEmailData",
    "EmailAddress",
    "EmailJob",
    "EmailRef",
    "EmailRequest",
    "EmailStatus",
    "EmailType",
    "FailureReason",
    "GuestEmailJob",
    "GuestEmailType",
    "Locale",
    "PolicyDriftData",
    "Recipient",
    "job_json_schema",
    "message_id_for",
]


class AdminDriftEmailRequest(_RequestRules):
    """The notifier's fallback when no webhook is configured
    (docs/reference/notifications.md#admin-email-fallback)."""

    model_config = ConfigDict(json_schema_extra=_schema_rules(_ONE_WAY_TO_DELAY))

    email_type: AdminEmailType
    data: PolicyDriftData

    def to_job(self, published_at: datetime, job_id: uuid.UUID | None = None) -> AdminDriftEmailJob:
        return AdminDriftEmailJob.model_validate(self._job_fields(published_at, job_id))


class AdminDriftEmailJob(_JobFields, _EmailFields):
    """Queue message for the admin's policy-drift email."""

    model_config = ConfigDict(title="AdminDriftEmailJob")

    email_type: AdminEmailType
    data: PolicyDriftData


EmailJob = Annotated[GuestEmailJob | AdminDriftEmailJob, Field(discriminator="email_type")]
EMAIL_JOB = TypeAdapter(EmailJob)


def job_json_schema() -> dict[str, Any]:
    """The JSON Schema committed under ``schemas/`` (a test fails when it is stale)."""
    schema = EMAIL_JOB.json_schema(by_alias=True, schema_generator=StandardJsonSchema)
    schema["$id"] = "https://booking.local/schemas/booking-email-v1.json"
    schema["title"] = "booking-email/v1"
    schema["description"] = "Queue message of the booking durability service's email queue."
    return schema
