"""Reservation errors carry what the problem response needs, and never a submitted value."""

from __future__ import annotations

import pytest

from booking_durability.errors import DomainError
from booking_durability.reservations.allocator import NoAvailabilityReason
from booking_durability.reservations.refusals import (
    HoldMetadataIncomplete,
    HoldTimingInvalid,
    NoAvailabilityError,
)


@pytest.mark.parametrize(
    ("error", "code", "status", "extra"),
    [
        (
            HoldTimingInvalid([{"loc": ["starts_at"], "msg": "starts_at must be in the future"}]),
            "VALIDATION_FAILED",
            422,
            {"errors": [{"loc": ["starts_at"], "msg": "starts_at must be in the future"}]},
        ),
        (NoAvailabilityError("no_table"), "NO_AVAILABILITY", 409, {"reason": "no_table"}),
        (
            HoldMetadataIncomplete(["policy_hash"]),
            "HOLD_METADATA_INCOMPLETE",
            422,
            {"missing": ["policy_hash"]},
        ),
    ],
)
def test_each_error_has_a_stable_code_status_and_problem_fields(
    error: DomainError, code: str, status: int, extra: dict
) -> None:
    assert isinstance(error, DomainError)
    assert (error.code, error.status, error.problem_fields()) == (code, status, extra)
    assert error.detail == str(error)


def test_a_no_availability_reason_is_answered_as_its_plain_value() -> None:
    error = NoAvailabilityError(NoAvailabilityReason.PARTY_TOO_LARGE)
    assert type(error.problem_fields()["reason"]) is str
    assert error.problem_fields() == {"reason": "party_too_large"}


def test_the_base_error_falls_back_to_its_title() -> None:
    error = DomainError()
    assert (error.code, error.status, str(error)) == ("DOMAIN_ERROR", 400, "Request refused")
