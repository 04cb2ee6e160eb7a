"""The guest's email: the request (``POST /v1/emails``) and its queue message
(docs/reference/http-api.md#email-request, docs/reference/queue-message.md#message-body), with
what every email shares (its type, status, reference and recipient).

The email routes load this module alone; the admin's drift email and the queue message that is
either one are in ``emails/models.py``, which only the consumer and the notifier need.

Every model hides input in its errors: a submitted value may be a guest's address or name.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from booking_durability.metric_names import FailureReason as FailureReason
from booking_durability.times import Instant, TimeZoneName
from booking_durability.validation import BookingId, JsonInteger, Text, Uuid

SCHEMA_ID = "booking-email/v1"
RETENTION = timedelta(days=30)
# Bounds that keep every number a client sends clear of overflowing a date or a DynamoDB number:
# revisions fit 32 bits, and no email waits more than ten years (3650 days).
MAX_REVISION = 2**31 - 1
MAX_DELAY = timedelta(days=3650)
MAX_DELAY_SECONDS = int(MAX_DELAY.total_seconds())


# The one list of email types: four a guest receives, and the admin's drift email, which only
# the notifier publishes (docs/reference/notifications.md#admin-email-fallback). (No docstring: it would land
# in the committed schema.)
class EmailType(StrEnum):
    BOOKING_REQUEST_RECEIVED = "booking_request_received"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_UPDATED = "booking_updated"
    BOOKING_CANCELLED = "booking_cancelled"
    ADMIN_POLICY_DRIFT = "admin_policy_drift"


GuestEmailType = Literal[
    EmailType.BOOKING_REQUEST_RECEIVED,
    EmailType.BOOKING_CONFIRMED,
    EmailType.BOOKING_UPDATED,
    EmailType.BOOKING_CANCELLED,
]
AdminEmailType = Literal[EmailType.ADMIN_POLICY_DRIFT]


class EmailStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class EmailRef:
    """What identifies one email: its dedupe key is ``{booking_id}#{email_type}#{revision}``."""

    booking_id: str
    email_type: str
    revision: int

    @property
    def dedupe_key(self) -> str:
        return f"{self.booking_id}#{self.email_type}#{self.revision}"

    @classmethod
    def from_dedupe_key(cls, key: str) -> EmailRef:
        booking_id, email_type, revision = key.rsplit("#", 2)
        return cls(booking_id, email_type, int(revision))


def message_id_for(key: str) -> str:
    """RFC 5322 Message-ID derived from the dedupe key (docs/reference/queue-message.md#message-headers): same
    email, same id."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()}@booking.local>"


_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

Locale = Annotated[str, Field(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]


MAX_ADDRESS_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64

# RFC 5322 ``atext``: what a dot-atom local part is made of, ASCII only.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# Hyphens as a label's third and fourth characters are reserved for IDNA (RFC 5891): only an
# ``xn--`` label has them, in lower case as IDNA writes it. JSON Schema validators that check
# ``format: email`` fully refuse the others.
_NOT_RESERVED = r"(?!(?!xn)[A-Za-z0-9]{2}--)"
# A host name's label (RFC 1123): letters, digits and inner hyphens, at most 63.
_LABEL = _NOT_RESERVED + r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The top-level domain: a label ending with a letter, as every delegated one does.
_TOP_LEVEL = _NOT_RESERVED + r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
# Special-use names no guest's mail is delivered to (RFC 6761 and 6762, RFC 7686, .arpa); .test
# is allowed: the local stack and the booking app's staging use it.
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion")


def _any_case(word: str) -> str:
    return "".join(f"[{letter.upper()}{letter}]" for letter in word)


#: The one rule for an address, as the schemas state it and the models check it: at most 254
#: characters; a local part that is a dot-atom of ASCII, at most 64; a domain of ASCII labels (an
#: internationalized one in its IDNA ``xn--`` form, no other with ``--`` as its third and fourth
#: characters), with a dot, not under a special-use name.
#: Every such address is also one that ``format: email`` allows, as Ajv and JSON Schema read it
#: (RFC 5321, ASCII). The lengths are negative lookaheads, not ``maxLength``: generators such as
#: Schemathesis' skip and then check those, where they would spend minutes spelling a pattern's
#: match out to an exact length.
EMAIL_PATTERN = (
    rf"^(?![\s\S]{{{MAX_ADDRESS_LENGTH + 1}}})(?![^@]{{{MAX_LOCAL_PART_LENGTH + 1}}})"
    rf"(?![\s\S]*\.(?:{'|'.join(map(_any_case, _SPECIAL_USE))})$)"
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_TOP_LEVEL}$"
)
_EMAIL = re.compile(EMAIL_PATTERN)


def _email_address(value: str) -> str:
    # ``fullmatch``: JSON Schema's ``$`` is the very end, where Python's would allow a final newline.
    if _EMAIL.fullmatch(value) is None:
        raise ValueError("value is not a valid email address")
    # Domain names compare without regard to case: one spelling of each address.
    local_part, domain = value.rsplit("@", 1)
    return f"{local_part}@{domain.lower()}"


EmailAddress = Annotated[
    str,
    Field(max_length=MAX_ADDRESS_LENGTH),  # bounds the work before the pattern runs
    AfterValidator(_email_address),
    WithJsonSchema({"type": "string", "format": "email", "pattern": EMAIL_PATTERN}),
]


class Recipient(BaseModel):
    model_config = _STRICT

    email: EmailAddress
    name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None


class BookingEmailData(BaseModel):
    """What the guest templates show about the booking."""

    model_config = _STRICT

    restaurant_name: Annotated[Text, Field(min_length=1, max_length=200)]
    party_size: Annotated[int, JsonInteger(ge=1, le=100)]
    starts_at: Instant
    reference: Annotated[Text, Field(min_length=1, max_length=64)]
    previous_starts_at: Instant | None = None
    cancellation_reason: Annotated[Text, Field(max_length=500)] | None = None


class _EmailFields(BaseModel):
    model_config = _STRICT

    booking_id: BookingId
    revision: Annotated[int, JsonInteger(ge=0, le=MAX_REVISION)] = 0
    not_after: Instant | None = None
    suppress_if_sent: list[EmailType] | None = None
    recipient: Recipient
    locale: Locale = "en"
    time_zone: TimeZoneName = "UTC"

    email_type: EmailType

    @property
    def ref(self) -> EmailRef:
        return EmailRef(self.booking_id, self.email_type, self.revision)

    @property
    def dedupe_key(self) -> str:
        return self.ref.dedupe_key


# The rules that join two fields, in the schema too (``allOf`` of each model that has them), so
# that a body the schema allows is never refused by them.
_ONE_WAY_TO_DELAY: dict[str, Any] = {
    "not": {
        "type": "object",
        "required": ["deliver_at", "delay_seconds"],
        "properties": {"deliver_at": {"type": "string"}, "delay_seconds": {"type": "number"}},
    }
}
# Each subschema names its type: Ajv's strict mode refuses ``required`` or ``properties`` where
# it cannot tell that the value is an object.
_UPDATED_NEEDS_PREVIOUS: dict[str, Any] = {
    "if": {
        "type": "object",
        "required": ["email_type"],
        "properties": {"email_type": {"const": "booking_updated"}},
    },
    "then": {
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "required": ["previous_starts_at"],
                "properties": {"previous_starts_at": {"type": "string"}},
            }
        },
    },
}


def _schema_rules(*rules: dict[str, Any]) -> Any:
    def add(schema: dict[str, Any]) -> None:
        schema["allOf"] = [*schema.get("allOf", ()), *rules]

    return add


class _RequestRules(_EmailFields):
    deliver_at: Instant | None = None
    delay_seconds: Annotated[int, JsonInteger(ge=0, le=MAX_DELAY_SECONDS)] | None = None

    def delivery_time(self, published_at: datetime) -> datetime:
        """When the email may go out: never before publish time + delay (or ``deliver_at``)."""
        if self.deliver_at is not None:
            return max(self.deliver_at.astimezone(UTC), published_at)
        return published_at + timedelta(seconds=self.delay_seconds or 0)

    # Each rule checked on the field it names, so that the error names it.
    @field_validator("deliver_at")
    @classmethod
    def _within_ten_years(cls, value: datetime | None) -> datetime | None:
        # The one rule of a request that depends on the clock, so no schema can state it.
        if value is not None and value > datetime.now(UTC) + MAX_DELAY:
            raise ValueError("deliver_at must be at most ten years ahead")
        return value

    def _job_fields(self, published_at: datetime, job_id: uuid.UUID | None) -> dict[str, Any]:
        """The job's fields: the request's, with its delivery time fixed at publication."""
        return {
            **self.model_dump(exclude={"deliver_at", "delay_seconds"}, exclude_none=True),
            "schema": SCHEMA_ID,
            "job_id": job_id or uuid.uuid4(),
            "deliver_at": self.delivery_time(published_at),
        }

    @field_validator("delay_seconds")
    @classmethod
    def _one_way_to_delay(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("deliver_at") is not None:
            raise ValueError("give deliver_at or delay_seconds, not both")
        return value


class _BookingRules(BaseModel):
    @model_validator(mode="after")
    def _type_specific_data(self) -> Any:
        if self.email_type == "booking_updated" and self.data.previous_starts_at is None:  # type: ignore[attr-defined]
            raise ValueError("booking_updated needs data.previous_starts_at")
        return self


class EmailRequest(_BookingRules, _RequestRules):
    """A guest email as the booking app asks for it (``POST /v1/emails`` body)."""

    model_config = ConfigDict(json_schema_extra=_schema_rules(_ONE_WAY_TO_DELAY, _UPDATED_NEEDS_PREVIOUS))

    email_type: GuestEmailType
    data: BookingEmailData

    def to_job(self, published_at: datetime, job_id: uuid.UUID | None = None) -> GuestEmailJob:
        return GuestEmailJob.model_validate(self._job_fields(published_at, job_id))


class _JobFields(BaseModel):
    # ``schema`` only: the field's Python name is no second spelling of it in a message.
    model_config = ConfigDict(validate_by_alias=True, validate_by_name=False, serialize_by_alias=True)

    schema_id: Literal["booking-email/v1"] = Field(alias="schema")
    job_id: Uuid
    deliver_at: Instant  # always set by the producer
    # Informational: deliver_at rules.
    delay_seconds: Annotated[int, JsonInteger(ge=0, le=MAX_DELAY_SECONDS)] | None = None

    def to_message_body(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)  # type: ignore[attr-defined,no-any-return]


class GuestEmailJob(_JobFields, _BookingRules, _EmailFields):
    """Queue message for one of the four guest emails."""

    model_config = ConfigDict(title="GuestEmailJob", json_schema_extra=_schema_rules(_UPDATED_NEEDS_PREVIOUS))

    email_type: GuestEmailType
    data: BookingEmailData
