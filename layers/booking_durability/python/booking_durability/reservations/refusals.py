"""Reservation errors a client sees: each a ``DomainError`` with a stable ``code`` and status.

``detail`` is written by us and never interpolates a submitted value.
"""

from __future__ import annotations

from typing import Any

from booking_durability.errors import DomainError
from booking_durability.validation import ValidationFailed


class HoldTimingInvalid(ValidationFailed):
    """A hold's start or duration breaks the venue's slot rules; answered like request validation."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors, "the hold's time does not fit the venue's policy")


class NoAvailabilityError(DomainError):
    """No table or combination can seat the party (``reason``: ``party_too_large`` | ``no_table``)."""

    code = "NO_AVAILABILITY"
    status = 409
    title = "No availability"

    def __init__(self, reason: str) -> None:
        super().__init__("no table can seat the party at that time")
        self.reason = str(reason)  # a NoAvailabilityReason is a StrEnum: keep the plain value

    def problem_fields(self) -> dict[str, Any]:
        return {"reason": self.reason}


class HoldMetadataIncomplete(DomainError):
    """A hold (typically imported) lacks what confirmation needs; ``missing`` holds dotted paths."""

    code = "HOLD_METADATA_INCOMPLETE"
    status = 422
    title = "Hold metadata incomplete"

    def __init__(self, missing: list[str]) -> None:
        super().__init__("the hold lacks metadata that confirmation needs")
        self.missing = missing

    def problem_fields(self) -> dict[str, Any]:
        return {"missing": list(self.missing)}


class HoldInvalid(DomainError):
    """The hold's tables, as the venue version it was quoted under describes them, cannot seat its
    party (typically an imported hold): ``reason`` ``party_does_not_fit``."""

    code = "HOLD_INVALID"
    status = 422
    title = "Hold invalid"

    def __init__(self, reason: str = "party_does_not_fit") -> None:
        super().__init__("the hold's tables cannot seat its party under the venue's policy")
        self.reason = reason

    def problem_fields(self) -> dict[str, Any]:
        return {"reason": self.reason}


class VenueNotFound(DomainError):
    code = "VENUE_NOT_FOUND"
    status = 404
    title = "Venue not found"


class VersionNotFound(DomainError):
    code = "VERSION_NOT_FOUND"
    status = 404
    title = "Venue version not found"


class PreconditionFailed(DomainError):
    """``If-Match`` names a policy the venue no longer has (or a venue that does not exist)."""

    code = "PRECONDITION_FAILED"
    status = 412
    title = "Precondition failed"


class HoldNotFound(DomainError):
    code = "HOLD_NOT_FOUND"
    status = 404
    title = "Hold not found"


class HoldNotActive(DomainError):
    code = "HOLD_NOT_ACTIVE"
    status = 409
    title = "Hold not active"


class BookingNotFound(DomainError):
    code = "BOOKING_NOT_FOUND"
    status = 404
    title = "Booking not found"


class HoldExpired(DomainError):
    code = "HOLD_EXPIRED"
    status = 409
    title = "Hold expired"


class PolicyChanged(DomainError):
    """The venue's policy drifted and the hold could not be confirmed under the new one."""

    code = "POLICY_CHANGED"
    status = 409
    title = "Seating policy changed"

    def __init__(self, attempts: int, reason: str) -> None:
        super().__init__("the venue's seating policy changed and the hold could not be confirmed under it")
        self.attempts = attempts
        self.reason = reason

    def problem_fields(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "reason": self.reason}


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422
    title = "Idempotency key reused"


class BookingIdTaken(DomainError):
    """The booking id already names a booking of another hold."""

    code = "BOOKING_ID_TAKEN"
    status = 409
    title = "Booking id taken"
