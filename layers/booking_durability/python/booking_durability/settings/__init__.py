"""Runtime settings: one pydantic model per function, each on this base, read from the environment.

Each field reads the environment variable of its name in upper case (``deliveries_table`` from
``DELIVERIES_TABLE``, exactly), a keyword argument taking its place; the CDK stack sets
them from the stage settings. Plain pydantic does it: pydantic-settings' sources (dotenv, secret
folders, cloud vaults, a command line) would cost every cold start their imports, and a function
reads nothing but its environment. Models are validated once, when a function's wiring is first
built (``booking_durability.wiring``), never at import.

Each function's model is in a module of its own (``settings/<function>.py``), so a function's
cold start builds its own settings model and no other function's. Secrets are never in the
environment, only the ARN of a secret is: the one exception is the local stack's webhook, whose
published development secret the notifier takes from there.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, extra="ignore")
    #: Whether a variable set to "" counts as unset.
    ignore_empty_variables: ClassVar[bool] = False

    @classmethod
    def from_environment(cls, **values: Any) -> Self:
        """The settings: every field not given from its environment variable."""
        return cls(**values)

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        # Each field from the variable of its name in upper case, exactly: the stack and the
        # local stack set only those, and a variable differing in case is someone else's.
        found = {}
        for name in cls.model_fields:
            value = os.environ.get(name.upper())
            if value is not None and (value or not cls.ignore_empty_variables):
                found[name] = value
        return {**found, **values}
