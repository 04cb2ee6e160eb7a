"""The managed policies the booking app's roles attach: publish email jobs, read, change, and
call single route groups."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from booking_durability.stack_outputs import StackOutput, route_group_policy
from stacks.settings import StageSettings

Route = tuple[str, str]
_PATH_PARAMETER = re.compile(r"\{([^}]+)\}")


def resource_pattern(path: str) -> str:
    """An API path as execute-api ARNs name it: each ``{parameter}`` becomes ``*``."""
    return _PATH_PARAMETER.sub("*", path)


class CallerPolicies(Construct):
    """What the booking app's roles attach, one managed policy per thing they may do.

    ``publish_email_jobs`` allows ``sqs:SendMessage`` on the email queue and nothing else. No KMS
    permission goes with it: the queue is encrypted with SQS-managed keys (SSE-SQS), which ask
    nothing of a producer; a customer managed key would need ``kms:GenerateDataKey`` and
    ``kms:Decrypt`` on that key here.

    ``read`` and ``change`` split every route by what it does (docs/booking-app.md): ``read`` allows the
    routes that change nothing (every GET, and the ``read_only_routes`` that are not GETs, such
    as a lookup), ``change`` every other route. A role given ``read`` alone can look at venues, holds,
    bookings and emails, and cannot cancel, release, confirm or publish anything.

    ``api_routes[group]`` allows the routes of ``route_groups[group]`` alone, for a role that
    needs less (only the venue administration side gets ``venues-admin``).

    Each policy allows ``execute-api:Invoke`` on its routes in the deployed stage, one ARN per
    method and path, a path parameter written ``*`` (the only way IAM can name "any venue").
    Since an IAM ``*`` also matches ``/``, the synth refuses a policy whose patterns would match a
    route it does not grant: a route of another group, a change for the read policy.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        rest_api: apigateway.RestApi,
        route_groups: Mapping[str, Sequence[Route]],
        read_only_routes: Collection[Route],
        email_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        by_access = _by_access(route_groups, read_only_routes)
        _require_exclusive_groups(route_groups)
        _require_exclusive_groups(by_access)
        self._settings = settings
        self._rest_api = rest_api
        self.publish_email_jobs = self._publish_email_jobs(email_queue)
        self.read = self._invoke_policy(
            "ApiRead",
            "read",
            "the routes that change nothing: " + _listed(by_access["read"]),
            by_access["read"],
        )
        self.change = self._invoke_policy(
            "ApiChange",
            "change",
            "every route that changes something: " + _listed(by_access["change"]),
            by_access["change"],
        )
        self.api_routes = {
            group: self._invoke_policy(
                f"Api{_camel(group)}", group, f"the {group} routes: {_listed(routes)}", routes
            )
            for group, routes in route_groups.items()
        }
        #: Each policy by the id of the stack output that exports its ARN, with the output's description.
        self.outputs = self._outputs()

    def _outputs(self) -> dict[str, tuple[iam.ManagedPolicy, str]]:
        return {
            StackOutput.PUBLISH_EMAIL_JOBS_POLICY_ARN: (
                self.publish_email_jobs,
                "Managed policy: sqs:SendMessage on the email queue",
            ),
            StackOutput.API_READ_POLICY_ARN: (
                self.read,
                "Managed policy: execute-api:Invoke on every API route that changes nothing (the GETs)",
            ),
            StackOutput.API_CHANGE_POLICY_ARN: (
                self.change,
                "Managed policy: execute-api:Invoke on every API route that changes something",
            ),
            **{
                route_group_policy(group): (
                    policy,
                    f"Managed policy: execute-api:Invoke on the API's {group} routes",
                )
                for group, policy in self.api_routes.items()
            },
        }

    def _publish_email_jobs(self, email_queue: sqs.IQueue) -> iam.ManagedPolicy:
        return iam.ManagedPolicy(
            self,
            "PublishEmailJobs",
            description=(
                f"Booking durability ({self._settings.name}): publish email jobs to the email queue "
                "(sqs:SendMessage only; the queue uses SQS-managed encryption, so no KMS permission)"
            ),
            statements=[
                iam.PolicyStatement(
                    sid="PublishEmailJobs",
                    actions=["sqs:SendMessage"],
                    resources=[email_queue.queue_arn],
                )
            ],
        )

    def _invoke_policy(
        self, construct_id: str, name: str, what: str, routes: Sequence[Route]
    ) -> iam.ManagedPolicy:
        stage = self._rest_api.deployment_stage.stage_name
        arns = {
            route: self._rest_api.arn_for_execute_api(route[0], resource_pattern(route[1]), stage)
            for route in routes
        }
        policy = iam.ManagedPolicy(
            self,
            construct_id,
            description=f"Booking durability ({self._settings.name}): call {what}",
            statements=[
                iam.PolicyStatement(
                    sid=f"Invoke{_camel(name)}Routes",
                    actions=["execute-api:Invoke"],
                    resources=list(arns.values()),
                )
            ],
        )
        for (method, path), arn in arns.items():
            parameters = _PATH_PARAMETER.findall(path)
            if not parameters:
                continue
            # cdk-nag names a wildcard resource by its flattened ARN: acknowledge exactly that one.
            finding = f"AwsSolutions-IAM5[Resource::{_flatten(Stack.of(self).resolve(arn))}]"
            Validations.of(policy).acknowledge(
                Acknowledgment(
                    id=finding,
                    reason=(
                        "An execute-api ARN names a request's concrete path, so the path "
                        f"{'parameter' if len(parameters) == 1 else 'parameters'} "
                        f"{' and '.join(parameters)} of {method} {path} can only be granted as '*'. "
                        "The API, its stage, the method and every fixed path segment stay named, and "
                        "the synth refuses a pattern that would also match a route the policy does "
                        "not grant."
                    ),
                )
            )
        return policy


def _by_access(
    route_groups: Mapping[str, Sequence[Route]], read_only_routes: Collection[Route]
) -> dict[str, tuple[Route, ...]]:
    """Every route of the API, as ``read`` (every GET, and the read-only routes) or ``change``."""
    routes = [route for group in route_groups.values() for route in group]
    _require_routes(read_only_routes, routes)
    reads = {route for route in routes if route[0] == "GET"} | set(read_only_routes)
    return {
        "read": tuple(route for route in routes if route in reads),
        "change": tuple(route for route in routes if route not in reads),
    }


def _require_routes(read_only_routes: Collection[Route], routes: Sequence[Route]) -> None:
    """Fail the synth when a read-only route is not a route of the API (a typo would leave the
    route in the change policy unseen), or is a GET (which reads anyway)."""
    for method, path in read_only_routes:
        if (method, path) not in routes:
            raise ValueError(f"read-only route {method} {path} is not a route of the API")
        if method == "GET":
            raise ValueError(f"read-only route {method} {path} is a GET: every GET is read-only")


def _listed(routes: Sequence[Route]) -> str:
    return ", ".join(f"{method} {path}" for method, path in routes)


def _require_exclusive_groups(route_groups: Mapping[str, Sequence[Route]]) -> None:
    """Fail the synth when a group's ARN patterns would also grant a route of another group.

    IAM's ``*`` matches any characters, ``/`` included: ``GET /v1/venues/*`` would grant
    ``GET /v1/venues/{venue_id}/versions/{n}`` too. Each route is tried as a request path (its
    parameters filled in) against every other group's patterns for the same method.
    """
    for group, routes in route_groups.items():
        for other, other_routes in route_groups.items():
            if other == group:
                continue
            for method, path in routes:
                request = _PATH_PARAMETER.sub("x", path)
                leaked = [
                    f"{other_method} {other_path}"
                    for other_method, other_path in other_routes
                    if other_method == method and fnmatchcase(request, resource_pattern(other_path))
                ]
                if leaked:
                    raise ValueError(
                        f"the {other} policy's {leaked} would also grant {method} {path} of the "
                        f"{group} routes: regroup the routes or make the paths distinct"
                    )


def _camel(group: str) -> str:
    return "".join(part.capitalize() for part in group.split("-"))


def _flatten(reference: Any) -> str:
    """A resolved CloudFormation value as cdk-nag flattens it to name a finding."""
    if isinstance(reference, str):
        return reference.replace("${", "<").replace("}", ">")
    if isinstance(reference, dict):
        if "Fn::Join" in reference:
            delimiter, items = reference["Fn::Join"]
            return str(delimiter).join(_flatten(item) for item in items)
        if "Fn::GetAtt" in reference:
            resource, attribute = reference["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Ref" in reference:
            return f"<{_flatten(reference['Ref'])}>"
    return json.dumps(reference, separators=(",", ":"))
