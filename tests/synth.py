"""One synthesis of the CDK app per test session, shared by every kind of test.

The first synth in a process costs seconds (jsii starts node), so every stage is synthesized
once, together, into a temporary cloud assembly.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

STAGES = ("dev", "prod", "local")  # every stage of stacks/settings.py
#: What the deploying team passes for each stage (``-c key=value``): prod refuses to synthesize
#: with the placeholder sender, or with no real drift notification channel.
STAGE_CONTEXT: dict[str, dict[str, str]] = {
    "prod": {
        "email_sender": "Bookings <bookings@mail.bookings-platform.com>",
        "admin_email": "drift-admins@bookings-platform.com",
    }
}


@functools.cache
def synthesized_app() -> tuple[Any, Path]:
    """``(cloud_assembly, outdir)`` with one stack per stage."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import app as cdk_app

    cdk_app.ensure_layers()
    outdir = Path(tempfile.mkdtemp(prefix="cdk-test-"))
    return cdk_app.build_app(STAGES, outdir=outdir, stage_context=STAGE_CONTEXT).synth(), outdir


def synthesized_templates() -> dict[str, dict[str, Any]]:
    assembly, _ = synthesized_app()
    return {stage: assembly.get_stack_by_name(f"BookingDurability-{stage}").template for stage in STAGES}
