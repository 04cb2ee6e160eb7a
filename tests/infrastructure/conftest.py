"""One synthesized app per test session: every stage's stack, synthesized once, cdk-nag on.

Tests read each stage through :class:`SynthesizedStage`, which finds the service's resources by
what they are (the queue with a redrive policy, the function its event source mapping feeds),
not by logical id, so a renamed construct does not silently skip an assertion.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from stacks.settings import STAGE_NAMES, StageSettings, stage_settings
from tests.synth import synthesized_app

# Before any test module imports aws_cdk: jsii warns on Node 20 otherwise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

Resource = dict[str, Any]


@dataclass
class SynthesizedStage:
    """One stage's synthesized stack: its template, settings and assembly messages."""

    settings: StageSettings
    template_json: dict[str, Any]
    outdir: Path
    messages: list[Any] = field(default_factory=list)
    metadata: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.settings.name

    @cached_property
    def template(self) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.template_json)

    @property
    def resources(self) -> dict[str, Resource]:
        resources: dict[str, Resource] = self.template_json["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, Resource]:
        return {rid: res for rid, res in self.resources.items() if res["Type"] == resource_type}

    def the_one(self, resource_type: str, **properties: Any) -> tuple[str, Resource]:
        """The single resource of ``resource_type`` whose properties include ``properties``."""
        found = [
            (rid, res)
            for rid, res in self.of_type(resource_type).items()
            if all(res.get("Properties", {}).get(key) == value for key, value in properties.items())
        ]
        assert len(found) == 1, f"expected one {resource_type} with {properties}, found {len(found)}"
        return found[0]

    @cached_property
    def email_queue(self) -> tuple[str, Resource]:
        found = [(rid, res) for rid, res in self.of_type("AWS::SQS::Queue").items() if _redrive(res)]
        assert len(found) == 1, "expected exactly one queue with a redrive policy (the email queue)"
        return found[0]

    @cached_property
    def email_dlq(self) -> tuple[str, Resource]:
        dlq_id = _redrive(self.email_queue[1])["deadLetterTargetArn"]["Fn::GetAtt"][0]
        return dlq_id, self.resources[dlq_id]

    @cached_property
    def consumer_mapping(self) -> Resource:
        queue_arn = {"Fn::GetAtt": [self.email_queue[0], "Arn"]}
        return self.the_one("AWS::Lambda::EventSourceMapping", EventSourceArn=queue_arn)[1]

    @cached_property
    def consumer(self) -> tuple[str, Resource]:
        function_id = self.consumer_mapping["Properties"]["FunctionName"]["Ref"]
        return function_id, self.resources[function_id]

    @property
    def consumer_properties(self) -> dict[str, Any]:
        properties: dict[str, Any] = self.consumer[1]["Properties"]
        return properties

    @property
    def consumer_environment(self) -> dict[str, Any]:
        variables: dict[str, Any] = self.consumer_properties["Environment"]["Variables"]
        return variables

    @cached_property
    def consumer_statements(self) -> list[dict[str, Any]]:
        """Every IAM statement attached to the consumer's role."""
        role_id = self.consumer_properties["Role"]["Fn::GetAtt"][0]
        statements: list[dict[str, Any]] = []
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"]["Roles"]:
                statements += policy["Properties"]["PolicyDocument"]["Statement"]
        return statements

    def actions_on(self, resource: Any) -> set[str]:
        """Actions the consumer's role allows on ``resource`` (a Ref / GetAtt expression)."""
        allowed: set[str] = set()
        for statement in self.consumer_statements:
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            if statement["Effect"] == "Allow" and resource in resources:
                actions = statement["Action"]
                allowed |= set(actions if isinstance(actions, list) else [actions])
        return allowed

    @cached_property
    def deliveries_table(self) -> tuple[str, Resource]:
        table_ref = self.consumer_environment["DELIVERIES_TABLE"]
        return table_ref["Ref"], self.resources[table_ref["Ref"]]

    def staged_asset(self, code: dict[str, Any]) -> Path:
        """The folder the cloud assembly zips for a Lambda ``Code`` / layer ``Content``."""
        asset_hash = code["S3Key"].removesuffix(".zip")
        manifest = json.loads((self.outdir / f"{self.settings.stack_name}.assets.json").read_text())
        return self.outdir / manifest["files"][asset_hash]["source"]["path"]

    @property
    def acknowledgements(self) -> dict[str, str]:
        """Every cdk-nag acknowledgement in the stack: ``"<path> <rule>"`` -> reason."""
        acknowledged = {}
        for path, entries in self.metadata.items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        acknowledged[f"{path} {rule}"] = reason
        return acknowledged


@dataclass
class SynthesizedApp:
    outdir: Path
    stages: dict[str, SynthesizedStage]

    @cached_property
    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report


def _redrive(queue: Resource) -> dict[str, Any]:
    redrive: dict[str, Any] = queue.get("Properties", {}).get("RedrivePolicy", {})
    return redrive


@pytest.fixture(scope="session")
def synthesized() -> SynthesizedApp:
    """All stages of app.py's app, from the session's one synthesis (tests/synth.py)."""
    assembly, outdir = synthesized_app()
    stages = {}
    for name in STAGE_NAMES:
        settings = stage_settings(name)
        artifact = assembly.get_stack_by_name(settings.stack_name)
        metadata_file = outdir / f"{settings.stack_name}.metadata.json"
        stages[name] = SynthesizedStage(
            settings=settings,
            template_json=artifact.template,
            outdir=outdir,
            messages=list(artifact.messages),
            metadata=json.loads(metadata_file.read_text()) if metadata_file.exists() else {},
        )
    return SynthesizedApp(outdir=outdir, stages=stages)


@pytest.fixture(params=STAGE_NAMES)
def stage(request: pytest.FixtureRequest, synthesized: SynthesizedApp) -> SynthesizedStage:
    """Each stage in turn."""
    return synthesized.stages[request.param]


@pytest.fixture(params=[name for name in STAGE_NAMES if name != "local"])
def aws_stage(request: pytest.FixtureRequest, synthesized: SynthesizedApp) -> SynthesizedStage:
    """The stages deployed to AWS."""
    return synthesized.stages[request.param]


@pytest.fixture
def dev(synthesized: SynthesizedApp) -> SynthesizedStage:
    return synthesized.stages["dev"]


@pytest.fixture
def prod(synthesized: SynthesizedApp) -> SynthesizedStage:
    return synthesized.stages["prod"]


@pytest.fixture
def local(synthesized: SynthesizedApp) -> SynthesizedStage:
    return synthesized.stages["local"]
