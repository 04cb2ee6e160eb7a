"""The policy-drift event and the ids it shares with the email jobs
(docs/reference/notifications.md#drift-events).

Kept apart from the email models so that the functions which only write or read drift events
(the reservation routes, the notifier) never import the email validation they do not need.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from booking_durability.metric_names import DriftReason
from booking_durability.times import Instant
from booking_durability.validation import BookingId as BookingId
from booking_durability.validation import (
    JsonInteger,
    PolicyHash,
    StandardJsonSchema,
    Uuid,
)

#: Why a drift flow ended unrecovered, shown inline in the event's schema (as the webhook's
#: receivers have always read it), not as a definition of its own.
InlineDriftReason = Annotated[
    DriftReason, WithJsonSchema({"enum": [reason.value for reason in DriftReason], "type": "string"})
]


class PolicyDriftData(BaseModel):
    """A policy-drift event as the admin is told it (the webhook's body): ids and hashes only.
    ``reason`` says why an unrecovered flow ended; ``hold_id`` names the replacement, if any."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

    type: Literal["policy_drift.recovered", "policy_drift.unrecovered"]
    event_id: Uuid
    occurred_at: Instant
    venue_id: BookingId
    original_hold_id: BookingId
    hold_id: BookingId | None = None
    original_policy_hash: PolicyHash
    policy_hash: PolicyHash
    policy_version: Annotated[int, JsonInteger(ge=1)]
    attempts: Annotated[int, JsonInteger(ge=0)]
    reason: InlineDriftReason | None = Field(default=None, title="Reason")


def drift_event_json_schema() -> dict[str, Any]:
    """The drift webhook's body as a JSON Schema, committed under ``schemas/`` (a test fails when
    it is stale): what the booking app receives, and the ``data`` of an ``admin_policy_drift`` job."""
    schema = PolicyDriftData.model_json_schema(schema_generator=StandardJsonSchema)
    schema["$id"] = "https://booking.local/schemas/policy-drift-webhook-v1.json"
    schema["title"] = "policy-drift webhook/v1"
    return schema
