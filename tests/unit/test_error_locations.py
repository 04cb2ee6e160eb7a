"""Where a message failed validation, as its log line says it: in the names its schema declares,
never a key that came from the input, and never a failure of its own."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from booking_durability.validation import error_locations


class Guest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party_size: int
    notes: dict[str, int] = {}


def refusal(payload: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Guest.model_validate(payload)
    return caught.value


def test_declared_names_and_positions_are_shown_and_input_keys_are_not() -> None:
    exc = refusal({"party_size": "x", "Garcia": 1, "notes": {"garcia": "x"}})
    assert error_locations(exc, Guest) == ["(unknown)", "notes.(unknown)", "party_size"]


def test_a_schema_that_cannot_be_made_hides_every_name_and_raises_nothing() -> None:
    class Unschematic(BaseModel):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("no schema")

    exc = refusal({"party_size": "x"})
    assert error_locations(exc, Unschematic) == ["(unknown)"]
