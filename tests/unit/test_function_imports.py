"""What a function's cold start loads: its handler file imported as Lambda imports it, in a fresh
interpreter, loads the modules that function runs and none of another function's
(docs/performance.md, "Cold starts")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ["email_api", "reservations_api", "email_consumer", "notifier", "drift_sweep"]
SETTINGS = {
    "email_api": {"email_api", "publishing"},
    "reservations_api": {"reservations_api"},
    "email_consumer": {"email_consumer", "publishing"},
    "notifier": {"notifier"},
    "drift_sweep": {"drift_sweep"},
}
#: Modules a function's import must not load: what only other functions (or other stages) run.
NEVER = {
    # The guest email routes neither read nor write drift events, nor the admin's drift email.
    "email_api": [
        "booking_durability.drift_events",
        "booking_durability.emails.models",
        "booking_durability.reservations",
    ],
    "reservations_api": ["booking_durability.emails", "booking_durability.notifications"],
    # Powertools' batch module loads its parser models when pydantic is loaded before it.
    "email_consumer": [
        "aws_lambda_powertools.utilities.parser",
        "booking_durability.api",
        "booking_durability.reservations",
    ],
    "notifier": [
        "aws_lambda_powertools.utilities.parser",
        "booking_durability.emails.models",
        "booking_durability.api",
    ],
    "drift_sweep": [
        "booking_durability.emails",
        "booking_durability.api",
        "aws_lambda_powertools.event_handler",
    ],
}


def loaded_modules(function: str) -> set[str]:
    handler = ROOT / "lambdas" / function / "handler.py"
    code = (
        "import json, sys; from importlib import util; "
        f"spec = util.spec_from_file_location('handler', {str(handler)!r}); "
        "spec.loader.exec_module(util.module_from_spec(spec)); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_builds_its_own_settings_model_only(function: str) -> None:
    # When its handler is imported
    modules = loaded_modules(function)

    # Then of the settings it loaded only its own (and the publishing settings, for the functions
    # that publish email jobs)
    settings = {name.rsplit(".", 1)[1] for name in modules if name.startswith("booking_durability.settings.")}
    assert settings == SETTINGS[function]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_loads_no_module_only_others_run(function: str) -> None:
    # When its handler is imported
    modules = loaded_modules(function)

    # Then nothing that only other functions run was loaded
    unwanted = [
        name
        for name in modules
        for prefix in NEVER[function]
        if name == prefix or name.startswith(f"{prefix}.")
    ]
    assert unwanted == []
