"""What the booking app's stacks import: exported outputs and the managed policies its role attaches."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.infrastructure.conftest import Resource, SynthesizedStage

# The route groups a caller is granted as a whole (issue 9), written out here on purpose: a
# route moved between groups must change this test too.
ROUTE_GROUPS = {
    "ApiEmailsPolicyArn": {
        ("POST", "/v1/emails"),
        ("GET", "/v1/emails/{booking_id}/{email_type}"),
        ("DELETE", "/v1/emails/{booking_id}/{email_type}"),
        ("DELETE", "/v1/emails/{booking_id}"),
    },
    "ApiVenuesAdminPolicyArn": {("PUT", "/v1/venues/{venue_id}")},
    "ApiVenuesReadPolicyArn": {
        ("GET", "/v1/venues/{venue_id}"),
        ("GET", "/v1/venues/{venue_id}/versions/{n}"),
    },
    "ApiHoldsPolicyArn": {
        ("POST", "/v1/holds"),
        ("GET", "/v1/holds/{hold_id}"),
        ("DELETE", "/v1/holds/{hold_id}"),
        ("POST", "/v1/holds/{hold_id}/confirm"),
    },
    "ApiBookingsPolicyArn": {("GET", "/v1/bookings/{booking_id}"), ("DELETE", "/v1/bookings/{booking_id}")},
    "ApiServicePolicyArn": {("GET", "/v1/health"), ("GET", "/v1/openapi.json")},
}
EXPORTED = ("ApiUrl", "EmailQueueUrl", "PublishEmailJobsPolicyArn", *ROUTE_GROUPS)
_PARAMETER = re.compile(r"\{[^}]+\}")


def _policy(stage: SynthesizedStage, output_id: str) -> tuple[str, Resource]:
    """The managed policy whose ARN output ``output_id`` exports."""
    policy_id = stage.template_json["Outputs"][output_id]["Value"]["Ref"]
    policy = stage.resources[policy_id]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return policy_id, policy


def _statements(policy: Resource) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _granted_routes(stage: SynthesizedStage, policy: Resource) -> set[tuple[str, str]]:
    """``(method, path pattern)`` of each execute-api ARN, checked to name this API's stage."""
    granted = set()
    for statement in _statements(policy):
        assert (statement["Effect"], _as_list(statement["Action"])) == ("Allow", ["execute-api:Invoke"])
        for arn in _as_list(statement["Resource"]):
            parts = arn["Fn::Join"][1]
            assert {"Ref": stage.rest_api[0]} in parts
            assert {"Ref": stage.api_stage_id} in parts
            # The ARN ends "<api id>/<stage>/<METHOD>/<path>": the last literal after the stage
            tail = parts[parts.index({"Ref": stage.api_stage_id}) + 1 :]
            [suffix] = tail
            assert isinstance(suffix, str), tail
            method, _, path = suffix.removeprefix("/").partition("/")
            granted.add((method, f"/{path}"))
    return granted


def _pattern(path: str) -> str:
    return _PARAMETER.sub("*", path)


@pytest.mark.parametrize("output_id", EXPORTED)
def test_what_the_booking_app_imports_is_exported_under_a_stable_name(
    stage: SynthesizedStage, output_id: str
) -> None:
    output = stage.template_json["Outputs"][output_id]
    assert output["Export"] == {"Name": f"{stage.settings.stack_name}-{output_id}"}
    assert output.get("Description")


def test_the_exported_urls_are_the_apis_stage_and_the_email_queue(stage: SynthesizedStage) -> None:
    outputs = stage.template_json["Outputs"]
    assert outputs["EmailQueueUrl"]["Value"] == {"Ref": stage.email_queue[0]}
    api_url = outputs["ApiUrl"]["Value"]["Fn::Join"][1]
    assert {"Ref": stage.rest_api[0]} in api_url
    assert {"Ref": stage.api_stage_id} in api_url


def test_the_publish_policy_only_sends_to_the_email_queue(stage: SynthesizedStage) -> None:
    _, policy = _policy(stage, "PublishEmailJobsPolicyArn")
    # One statement: sqs:SendMessage on the email queue; no KMS (the queue uses SQS-managed keys)
    [statement] = _statements(policy)
    assert statement["Effect"] == "Allow"
    assert _as_list(statement["Action"]) == ["sqs:SendMessage"]
    assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": [stage.email_queue[0], "Arn"]}]
    assert stage.email_queue[1]["Properties"]["SqsManagedSseEnabled"] is True


@pytest.mark.parametrize("output_id", ROUTE_GROUPS)
def test_each_route_group_policy_grants_exactly_its_methods_and_paths(
    stage: SynthesizedStage, output_id: str
) -> None:
    _, policy = _policy(stage, output_id)
    assert _granted_routes(stage, policy) == {
        (method, _pattern(path)) for method, path in ROUTE_GROUPS[output_id]
    }


def test_the_route_groups_cover_every_api_method_once(stage: SynthesizedStage) -> None:
    grouped = [route for routes in ROUTE_GROUPS.values() for route in routes]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(stage.api_methods)


def test_a_request_is_allowed_by_its_own_group_policy_and_no_other(stage: SynthesizedStage) -> None:
    # Given every policy's ARN patterns, matched the way IAM does (a * spans "/" too)
    patterns = {output_id: _granted_routes(stage, _policy(stage, output_id)[1]) for output_id in ROUTE_GROUPS}
    for output_id, routes in ROUTE_GROUPS.items():
        for method, path in routes:
            # When a caller requests the route with its parameters filled in
            request = _PARAMETER.sub("casa-1", path)
            allowing = {
                other
                for other, granted in patterns.items()
                if any(m == method and fnmatchcase(request, pattern) for m, pattern in granted)
            }
            # Then only the route's own group allows it
            assert allowing == {output_id}, (method, path, allowing)


def test_the_path_parameter_wildcards_are_acknowledged_one_by_one(stage: SynthesizedStage) -> None:
    prefix = f"/{stage.settings.stack_name}/CallerPolicies/"
    acknowledged = {
        where.split(" ", 1)[1]: reason
        for where, reason in stage.acknowledgements.items()
        if where.startswith(prefix)
    }
    expected = {(method, path) for routes in ROUTE_GROUPS.values() for method, path in routes if "{" in path}
    # One acknowledgement per ARN with a path parameter, naming that ARN exactly ...
    assert len(acknowledged) == len(expected)
    for rule, reason in acknowledged.items():
        assert rule.startswith("Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:")
        [(method, path)] = [
            (method, path) for method, path in expected if rule.endswith(f"/{method}{_pattern(path)}]")
        ]
        # ... and a reason naming the route and its parameters
        assert f"{method} {path}" in reason
        for parameter in _PARAMETER.findall(path):
            assert parameter.strip("{}") in reason
