"""The stack's outputs and the names the tools look them up by come from one module.

``booking_durability.stack_outputs`` names every output; the stack writes no other (but the one
the CDK's RestApi adds itself), exports exactly the ones it marks exported, and every output the
operator tools read is one the stack writes in every stage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from booking_durability.stack_outputs import StackOutput, route_group_policy
from stacks.api import ROUTE_GROUPS

if TYPE_CHECKING:
    from tests.infrastructure.conftest import SynthesizedStage

#: Written only when the stage has what they point at (an HTTP provider's secret, a webhook's).
CONDITIONAL = {StackOutput.PROVIDER_SECRET_ARN, StackOutput.WEBHOOK_SECRET_ARN}
ROUTE_GROUP_POLICIES = {route_group_policy(group) for group in ROUTE_GROUPS}


def _ours(stage: SynthesizedStage) -> dict[str, dict[str, object]]:
    """The stage's outputs but the endpoint the CDK's RestApi outputs itself (the ApiUrl again)."""
    outputs = stage.template_json["Outputs"]
    api_url = outputs[StackOutput.API_URL]["Value"]
    return {
        name: output
        for name, output in outputs.items()
        if name == StackOutput.API_URL or output["Value"] != api_url
    }


def test_every_output_is_one_the_module_names(stage: SynthesizedStage) -> None:
    unnamed = set(_ours(stage)) - set(StackOutput) - ROUTE_GROUP_POLICIES
    assert unnamed == set(), unnamed


def test_every_output_the_module_names_is_written(stage: SynthesizedStage) -> None:
    missing = (set(StackOutput) - CONDITIONAL) | ROUTE_GROUP_POLICIES
    assert missing - set(_ours(stage)) == set()


def test_exactly_the_outputs_marked_exported_are_exported(stage: SynthesizedStage) -> None:
    exported = {name: output["Export"] for name, output in _ours(stage).items() if "Export" in output}
    expected = {output for output in StackOutput if output.exported} | ROUTE_GROUP_POLICIES
    assert set(exported) == expected
    for name, export in exported.items():
        assert export == {"Name": f"{stage.settings.stack_name}-{name}"}, name


def test_every_output_the_operator_tools_read_is_written(stage: SynthesizedStage) -> None:
    from operations.dead_letter_queues import _OUTPUTS
    from operations.hold_migration import TABLE_OUTPUT

    read = {TABLE_OUTPUT, *(name for names in _OUTPUTS.values() for name in names)}
    assert read <= set(_ours(stage)), read - set(_ours(stage))
    assert read <= set(StackOutput)


def test_a_route_groups_policy_output_is_named_after_the_group() -> None:
    assert route_group_policy("venues-admin") == "ApiVenuesAdminPolicyArn"
    assert route_group_policy("emails") == "ApiEmailsPolicyArn"


def test_the_deploy_checklist_names_every_output_and_no_other() -> None:
    deploy = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text(encoding="utf-8")
    start = deploy.index("**The outputs exist.**")
    checklist = deploy[start : deploy.index("\n\n", start)]
    named = set(re.findall(r"`([A-Za-z]+)`", checklist))
    assert named == set(StackOutput) | ROUTE_GROUP_POLICIES
