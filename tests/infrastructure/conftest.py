"""One synthesized app per test session: every stage's stack, synthesized once, cdk-nag on.

Tests read each stage through :class:`SynthesizedStage`, which finds the service's resources by
their role, not by logical id nor by being the only one of their kind: a function by its
Powertools service name, the email queue as the event source of the email consumer, a DLQ as
what its queue's redrive policy names, a table as what a function's environment points at. So a
renamed construct, or a second queue or function, does not silently skip an assertion.
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
from tests.synth import STAGE_CONTEXT, synthesized_app

# Before any test module imports aws_cdk: jsii warns on Node 20 otherwise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

Resource = dict[str, Any]

# Powertools service names (each function's logs' "service" and its metrics' dimension).
EMAIL_CONSUMER_SERVICE = "email-consumer"
EMAIL_API_SERVICE = "email-api"
RESERVATIONS_API_SERVICE = "reservations-api"
NOTIFIER_SERVICE = "notifier"
DRIFT_SWEEP_SERVICE = "drift-sweep"


@dataclass
class SynthesizedStage:
    """One stage's synthesized stack: its template, settings and assembly messages."""

    settings: StageSettings
    template_json: dict[str, Any]
    outdir: Path
    messages: list[Any] = field(default_factory=list)
    metadata: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_assembly(cls, assembly: Any, outdir: Path, settings: StageSettings) -> SynthesizedStage:
        """The stage's stack in a synthesized cloud assembly (written to ``outdir``)."""
        artifact = assembly.get_stack_by_name(settings.stack_name)
        metadata_file = outdir / f"{settings.stack_name}.metadata.json"
        return cls(
            settings=settings,
            template_json=artifact.template,
            outdir=outdir,
            messages=list(artifact.messages),
            metadata=json.loads(metadata_file.read_text()) if metadata_file.exists() else {},
        )

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

    def function(self, service: str) -> tuple[str, Resource]:
        """The function whose Powertools service name (``POWERTOOLS_SERVICE_NAME``) is ``service``."""
        found = [
            (rid, res)
            for rid, res in self.of_type("AWS::Lambda::Function").items()
            if _environment(res).get("POWERTOOLS_SERVICE_NAME") == service
        ]
        assert len(found) == 1, f"expected one function of service {service!r}, found {len(found)}"
        return found[0]

    @cached_property
    def consumer(self) -> tuple[str, Resource]:
        return self.function(EMAIL_CONSUMER_SERVICE)

    def mapping_of(self, function_id: str) -> Resource:
        """The event source mapping that feeds function ``function_id``."""
        return self.the_one("AWS::Lambda::EventSourceMapping", FunctionName={"Ref": function_id})[1]

    def queue_feeding(self, function_id: str) -> tuple[str, Resource]:
        """The queue function ``function_id`` reads: its event source."""
        queue_id = self.mapping_of(function_id)["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        assert self.resources[queue_id]["Type"] == "AWS::SQS::Queue"
        return queue_id, self.resources[queue_id]

    def dlq_of(self, queue: Resource) -> tuple[str, Resource]:
        """The dead-letter queue ``queue``'s redrive policy names."""
        dlq_id = _redrive(queue)["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert self.resources[dlq_id]["Type"] == "AWS::SQS::Queue"
        return dlq_id, self.resources[dlq_id]

    @cached_property
    def consumer_mapping(self) -> Resource:
        return self.mapping_of(self.consumer[0])

    @cached_property
    def email_queue(self) -> tuple[str, Resource]:
        return self.queue_feeding(self.consumer[0])

    @cached_property
    def email_dlq(self) -> tuple[str, Resource]:
        return self.dlq_of(self.email_queue[1])

    @property
    def consumer_properties(self) -> dict[str, Any]:
        properties: dict[str, Any] = self.consumer[1]["Properties"]
        return properties

    @property
    def consumer_environment(self) -> dict[str, Any]:
        return _environment(self.consumer[1])

    def role_statements(self, function_id: str) -> list[dict[str, Any]]:
        """Every IAM statement attached to the role of function ``function_id``."""
        role_id = self.resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements: list[dict[str, Any]] = []
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"]["Roles"]:
                statements += policy["Properties"]["PolicyDocument"]["Statement"]
        return statements

    @cached_property
    def consumer_statements(self) -> list[dict[str, Any]]:
        """Every IAM statement attached to the consumer's role."""
        return self.role_statements(self.consumer[0])

    def actions_on(self, resource: Any, *, function_id: str | None = None) -> set[str]:
        """Actions a function's role (the consumer's by default) allows on ``resource`` (a Ref /
        GetAtt expression)."""
        statements = self.consumer_statements if function_id is None else self.role_statements(function_id)
        allowed: set[str] = set()
        for statement in statements:
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            if statement["Effect"] == "Allow" and resource in resources:
                actions = statement["Action"]
                allowed |= set(actions if isinstance(actions, list) else [actions])
        return allowed

    def touched(self, function_id: str) -> dict[str, set[str]]:
        """``{resource: actions}`` a function's role allows; each resource as :meth:`arn_key`
        writes it, or ``"*"`` for any."""
        touched: dict[str, set[str]] = {}
        for statement in self.role_statements(function_id):
            assert statement["Effect"] == "Allow"
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for resource in resources:
                key = resource if resource == "*" else json.dumps(resource, sort_keys=True)
                touched.setdefault(key, set()).update(actions)
        return touched

    @staticmethod
    def arn_key(logical_id: str) -> str:
        """A resource's ARN as :meth:`touched` keys it."""
        return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)

    def own_log_group_key(self, function_id: str) -> str:
        """The ARN of a function's own log group, as :meth:`touched` keys it."""
        log_group = self.resources[function_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        return self.arn_key(log_group)

    @cached_property
    def deliveries_table(self) -> tuple[str, Resource]:
        table_ref = self.consumer_environment["DELIVERIES_TABLE"]
        return table_ref["Ref"], self.resources[table_ref["Ref"]]

    @cached_property
    def email_api(self) -> tuple[str, Resource]:
        return self.function(EMAIL_API_SERVICE)

    @cached_property
    def reservations_api(self) -> tuple[str, Resource]:
        return self.function(RESERVATIONS_API_SERVICE)

    @cached_property
    def reservations_table(self) -> tuple[str, Resource]:
        """The table the reservations API's environment names."""
        table_ref = _environment(self.reservations_api[1])["RESERVATIONS_TABLE"]
        return table_ref["Ref"], self.resources[table_ref["Ref"]]

    @cached_property
    def notifier(self) -> tuple[str, Resource]:
        return self.function(NOTIFIER_SERVICE)

    @property
    def notifier_environment(self) -> dict[str, Any]:
        return _environment(self.notifier[1])

    @cached_property
    def notifier_mapping(self) -> Resource:
        return self.mapping_of(self.notifier[0])

    @cached_property
    def notifications_queue(self) -> tuple[str, Resource]:
        return self.queue_feeding(self.notifier[0])

    @cached_property
    def notifications_dlq(self) -> tuple[str, Resource]:
        return self.dlq_of(self.notifications_queue[1])

    @cached_property
    def outbox_pipe(self) -> tuple[str, Resource]:
        """The pipe whose source is the reservations table's stream."""
        stream = {"Fn::GetAtt": [self.reservations_table[0], "StreamArn"]}
        return self.the_one("AWS::Pipes::Pipe", Source=stream)

    @cached_property
    def pipe_dlq(self) -> tuple[str, Resource]:
        """The queue the outbox pipe sends what it could not forward to."""
        parameters = self.outbox_pipe[1]["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]
        dlq_id = parameters["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert self.resources[dlq_id]["Type"] == "AWS::SQS::Queue"
        return dlq_id, self.resources[dlq_id]

    @cached_property
    def rest_api(self) -> tuple[str, Resource]:
        return self.the_one("AWS::ApiGateway::RestApi")

    @cached_property
    def api_stage_id(self) -> str:
        """The logical id of the stage the API is deployed to."""
        return self.the_one("AWS::ApiGateway::Stage", RestApiId={"Ref": self.rest_api[0]})[0]

    @property
    def api_stage(self) -> Resource:
        return self.resources[self.api_stage_id]

    @cached_property
    def api_methods(self) -> dict[tuple[str, str], Resource]:
        """Every API method by ``(HTTP method, path)``, the path rebuilt from the resource tree."""
        return {
            (method["Properties"]["HttpMethod"], self._api_path(method["Properties"]["ResourceId"])): method
            for method in self.of_type("AWS::ApiGateway::Method").values()
        }

    @cached_property
    def api_routes(self) -> dict[tuple[str, str], str]:
        """``(HTTP method, path)`` -> the logical id of the function its integration invokes."""
        routes = {}
        for route, method in self.api_methods.items():
            parts = method["Properties"]["Integration"]["Uri"]["Fn::Join"][1]
            [function_id] = [
                part["Fn::GetAtt"][0] for part in parts if isinstance(part, dict) and "Fn::GetAtt" in part
            ]
            routes[route] = function_id
        return routes

    def _api_path(self, resource_ref: dict[str, Any]) -> str:
        if "Fn::GetAtt" in resource_ref:
            assert resource_ref["Fn::GetAtt"][1] == "RootResourceId"
            return ""
        properties = self.resources[resource_ref["Ref"]]["Properties"]
        return f"{self._api_path(properties['ParentId'])}/{properties['PathPart']}"

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


def _environment(function: Resource) -> dict[str, Any]:
    variables: dict[str, Any] = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
    return variables


def _redrive(queue: Resource) -> dict[str, Any]:
    redrive: dict[str, Any] = queue.get("Properties", {}).get("RedrivePolicy", {})
    return redrive


@pytest.fixture(scope="session")
def synthesized() -> SynthesizedApp:
    """All stages of app.py's app, from the session's one synthesis (tests/synth.py)."""
    assembly, outdir = synthesized_app()
    stages = {
        name: SynthesizedStage.from_assembly(
            assembly, outdir, stage_settings(name, **STAGE_CONTEXT.get(name, {}))
        )
        for name in STAGE_NAMES
    }
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
