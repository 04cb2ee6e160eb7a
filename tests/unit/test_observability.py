"""Observability costs nothing it does not use: no Tracer (X-Ray SDK) unless the stage enables it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import runpy, sys
runpy.run_path("lambdas/email_consumer/handler.py")
from booking_durability import observability
print("tracer" if observability.tracer() is not None else "no-tracer")
print("xray-loaded" if "aws_xray_sdk" in sys.modules else "xray-not-loaded")
"""


def _probe(enable_tracing: str) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", "ENABLE_TRACING": enable_tracing, "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_the_handler_loads_no_tracer_when_tracing_is_off() -> None:
    assert _probe("false") == ["no-tracer", "xray-not-loaded"]


def test_the_tracer_exists_when_the_stage_enables_tracing() -> None:
    assert _probe("true")[0] == "tracer"
