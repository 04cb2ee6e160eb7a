"""The policy-drift event and the ids it shares with the email jobs
(docs/reference/notifications.md#drift-events).

Kept apart from the email models so that the functions which only write or read drift events
(the reservation routes, the notifier) never import the email validation they do not need.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from booking_durability.times import Instant
from booking_durability.validation import JsonInteger

BOOKING_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
BookingId = Annotated[str, Field(min_length=1, max_length=128, pattern=BOOKING_ID_PATTERN)]
#: Why a drift flow ended unrecovered (no availability, a second drift, or interrupted).
DriftReason = Literal["no_availability", "drift_repeated", "interrupted"]
PolicyHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class PolicyDriftData(BaseModel):
    """The admin notification body (docs/reference/notifications.md#event-body): ids and hashes only."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

    type: Literal["policy_drift.recovered", "policy_drift.unrecovered"]
    event_id: uuid.UUID
    occurred_at: Instant
    venue_id: Annotated[str, Field(min_length=1, max_length=128)]
    original_hold_id: Annotated[str, Field(min_length=1, max_length=128)]
    hold_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    original_policy_hash: PolicyHash
    policy_hash: PolicyHash
    policy_version: Annotated[int, JsonInteger(ge=1)]
    attempts: Annotated[int, JsonInteger(ge=0)]
    reason: DriftReason | None = None
