"""Validation errors every entry point reports the same way, never echoing submitted values.

A submitted value may be a guest's address or name, and an unexpected key may be one too
(``{"guest@example.com": ...}``), so only field names, positions and our own messages leave.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from booking_durability.errors import DomainError

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Messages pydantic writes that quote or describe the input; replaced by ours.
_REWORDED = {
    "union_tag_invalid": "email_type is not one of the known email types",
}


def safe_errors(errors: ValidationError | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as ``[{"loc", "msg"}]`` that never echo a submitted value.

    Takes pydantic's ``ValidationError`` or its ``errors()`` list (as Powertools' request
    validation reports them).
    """
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False, include_context=False, include_input=True)
    safe = []
    for error in errors:
        kind = str(error.get("type", ""))
        msg = _REWORDED.get(kind, str(error.get("msg", "invalid value")))
        submitted = error.get("input")
        if kind == "value_error" and "email" in msg:
            msg = "value is not a valid email address"
        elif isinstance(submitted, str) and submitted and submitted in msg:
            msg = "invalid value"
        # Only field names and positions: anything else in a location came from the input.
        loc: list[str | int] = [
            part if isinstance(part, int) or _FIELD_NAME.match(str(part)) else "(unknown)"
            for part in error.get("loc", ())
        ]
        if error.get("type") == "extra_forbidden" and loc:
            loc[-1] = "(unexpected field)"
        safe.append({"loc": loc, "msg": msg})
    return safe


def error_locations(exc: ValidationError) -> list[str]:
    """Where validation failed, as dotted paths (for log lines: never what was there)."""
    return sorted({".".join(str(part) for part in error["loc"]) for error in safe_errors(exc)})


class ValidationFailed(DomainError):
    """422 ``VALIDATION_FAILED`` with ``errors: [{"loc", "msg"}]`` (CONTRACT §0)."""

    code = "VALIDATION_FAILED"
    status = 422
    title = "Request validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str = "") -> None:
        super().__init__(detail or "The request does not match the schema; see errors.")
        self.errors = errors

    def problem_fields(self) -> dict[str, Any]:
        return {"errors": self.errors}
