"""All-or-nothing writes in memory, refused the way a DynamoDB transaction refuses them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from booking_durability.reservations.ports import WriteConflict


@dataclass
class Transaction:
    """Conditions are all judged on the state before any write; then every write, or none.

    ``check(label, holds, apply, found=...)``: ``apply`` runs on commit when every ``holds``;
    else ``WriteConflict`` names the labels that did not hold, with what the refused ``booking``
    and ``venue`` operations found (as the DynamoDB adapter answers them).
    """

    _checks: list[tuple[str, bool, Callable[[], None] | None, Any]] = field(default_factory=list)

    def check(
        self, label: str, holds: bool, apply: Callable[[], None] | None = None, found: Any = None
    ) -> None:
        self._checks.append((label, holds, apply, found))

    def commit(self) -> None:
        refused = {label: found for label, holds, _, found in self._checks if not holds}
        if refused:
            raise WriteConflict(
                frozenset(refused), booking=refused.get("booking"), venue=refused.get("venue")
            )
        for _, _, apply, _ in self._checks:
            if apply is not None:
                apply()
