"""One synthesis of the CDK app per test session, shared by every kind of test.

The first synth in a process costs seconds (jsii starts node), so every stage is synthesized
once, together, into a temporary cloud assembly.
"""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Any

STAGES = ("dev", "prod", "local")


@functools.cache
def synthesized_app() -> tuple[Any, Any]:
    """``(app, cloud_assembly)`` with one stack per stage."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import app as cdk_app

    cdk_app.ensure_dependencies_layer()
    app = cdk_app.build_app(STAGES, outdir=tempfile.mkdtemp(prefix="cdk-test-"))
    return app, app.synth()


def synthesized_templates() -> dict[str, dict[str, Any]]:
    _, assembly = synthesized_app()
    return {stage: assembly.get_stack_by_name(f"BookingDurability-{stage}").template for stage in STAGES}
