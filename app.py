"""The CDK app: one ``BookingDurability-<stage>`` stack, cdk-nag always on.

    npx cdk synth -c stage=dev|prod|local            # default stage: dev
    .venv/bin/python app.py -c stage=local -o cdk.out  # the same, without the CDK CLI

Either way the template lands in ``<outdir>/BookingDurability-<stage>.template.json``. The Lambda
layers are built first when their inputs changed (scripts/build_layer.py). Nothing here
calls AWS: account and region come from CDK_DEFAULT_* when set, else the stack is env-agnostic.

Context only the deploying team knows: ``-c email_sender=...``, ``-c webhook=on`` (drift
notifications by signed webhook, its URL and secret in Secrets Manager), ``-c admin_email=...``
(drift notifications by email while there is no webhook) and ``-c alarm_email=...`` (subscribed
to the alarm topic); see ``stacks.settings.stage_settings``. ``prod`` refuses to synthesize with
a placeholder sender or without a real drift notification channel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.service_stack import ServiceStack
from stacks.settings import DEFAULT_STAGE, StageSettingsError, stage_settings

REPO_ROOT = Path(__file__).resolve().parent


#: The context keys that reach the stage settings (``stacks.settings.stage_settings``).
STAGE_CONTEXT_KEYS = ("email_sender", "webhook", "admin_email", "alarm_email", "webhook_url")


def build_app(
    stages: Sequence[str] | None = None,
    *,
    outdir: str | os.PathLike[str] | None = None,
    context: Mapping[str, Any] | None = None,
    stage_context: Mapping[str, Mapping[str, Any]] | None = None,
) -> cdk.App:
    """An app with one stack per stage (default: the ``stage`` context, else ``dev``).

    cdk.json's context (feature flags) is applied here too, so ``python app.py`` synthesizes
    what ``npx cdk synth`` does; context the CLI passes still wins. ``stage_context`` gives one
    stage its own values of :data:`STAGE_CONTEXT_KEYS` when one app builds several stages.
    """
    app = cdk.App(
        outdir=None if outdir is None else str(outdir),
        context={**_cdk_json_context(), **(context or {})},
    )
    env = stack_environment()
    for name in stages or [app.node.try_get_context("stage") or DEFAULT_STAGE]:
        values = {key: app.node.try_get_context(key) for key in STAGE_CONTEXT_KEYS}
        values.update((stage_context or {}).get(name, {}))
        ServiceStack(app, stage_settings(name, **values), env=env)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(verbose=True))
    return app


def ensure_layers() -> None:
    """Build the dependencies and domain layers unless they are up to date (a no-op then)."""
    from layer_assets import build as layer_build

    for line in layer_build.ensure_layers():
        print(line, file=sys.stderr)


def _cdk_json_context() -> dict[str, Any]:
    with (REPO_ROOT / "cdk.json").open(encoding="utf-8") as file:
        context: dict[str, Any] = json.load(file).get("context", {})
    return context


def stack_environment() -> cdk.Environment | None:
    """Account and region from CDK_DEFAULT_* (set by the CDK CLI), else env-agnostic: no AWS call."""
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    if account is None and region is None:
        return None
    return cdk.Environment(account=account, region=region)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Synthesize the booking durability stack.")
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context value, as with `cdk synth -c` (e.g. stage=local)",
    )
    parser.add_argument("-o", "--output", help="cloud assembly folder (default: cdk.out)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    context = dict(item.split("=", 1) for item in args.context)
    # Under the CDK CLI the output folder comes from CDK_OUTDIR, which cdk.App reads itself.
    outdir = args.output or (None if "CDK_OUTDIR" in os.environ else "cdk.out")
    ensure_layers()
    try:
        app = build_app(outdir=outdir, context=context)
    except StageSettingsError as error:
        sys.exit(f"error: {error}")
    app.synth()


if __name__ == "__main__":
    main()
