"""What the booking app's stacks import: exported outputs and the managed policies its role attaches."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import pytest
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_sqs as sqs

from tests.iam_policy import allows, matches

if TYPE_CHECKING:
    from tests.infrastructure.conftest import Resource, SynthesizedStage

# The route groups a caller is granted as a whole, written out here on purpose: a
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
#: The booking app's read and change policies (docs/booking-app.md): the GETs (and, by name, routes that
#: change nothing), and every other route.
ACCESS_POLICIES = ("ApiReadPolicyArn", "ApiChangePolicyArn")
EXPORTED = ("ApiUrl", "EmailQueueUrl", "PublishEmailJobsPolicyArn", *ACCESS_POLICIES, *ROUTE_GROUPS)
#: Where the tests' requests go: this API, in the stage's own stage.
API_ID = "a1b2c3d4e5"
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
    acknowledged = [
        (where.split(" ", 1)[0], where.split(" ", 1)[1], reason)
        for where, reason in stage.acknowledgements.items()
        if where.startswith(prefix)
    ]
    expected = {(method, path) for routes in ROUTE_GROUPS.values() for method, path in routes if "{" in path}
    # One acknowledgement per ARN with a path parameter in each policy granting it: its route
    # group's, and the read or the change policy ...
    assert len(acknowledged) == 2 * len(expected)
    per_policy: dict[str, set[tuple[str, str]]] = {}
    for policy, rule, reason in acknowledged:
        assert rule.startswith("Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:")
        [(method, path)] = [
            (method, path) for method, path in expected if rule.endswith(f"/{method}{_pattern(path)}]")
        ]
        per_policy.setdefault(policy, set()).add((method, path))
        # ... and a reason naming the route and its parameters
        assert f"{method} {path}" in reason
        for parameter in _PARAMETER.findall(path):
            assert parameter.strip("{}") in reason
    reads = {route for route in expected if route[0] == "GET"}
    assert per_policy[f"{prefix}ApiRead"] == reads
    assert per_policy[f"{prefix}ApiChange"] == expected - reads


# --- the read and change policies, evaluated as IAM evaluates them ------------------------------

ROUTES = sorted(route for routes in ROUTE_GROUPS.values() for route in routes)
#: What no role of the booking app may do with the read policy alone.
CHANGES = [
    ("DELETE", "/v1/bookings/{booking_id}"),  # cancel a booking
    ("DELETE", "/v1/holds/{hold_id}"),  # release a hold
    ("DELETE", "/v1/emails/{booking_id}/{email_type}"),  # cancel an email
    ("DELETE", "/v1/emails/{booking_id}"),  # cancel a booking's emails
    ("POST", "/v1/holds/{hold_id}/confirm"),
    ("POST", "/v1/holds"),
    ("POST", "/v1/emails"),
    ("PUT", "/v1/venues/{venue_id}"),
]


def _request(stage: SynthesizedStage, method: str, path: str, *, stage_name: str | None = None) -> str:
    """The execute-api ARN API Gateway authorizes a request by, its path parameters filled in."""
    concrete = _PARAMETER.sub("bk_7f3k-x", path)
    return (
        f"arn:aws:execute-api:eu-west-1:123456789012:{API_ID}/{stage_name or stage.settings.name}/"
        f"{method}{concrete}"
    )


def _allows(
    stage: SynthesizedStage, output_ids: tuple[str, ...], method: str, path: str, **request: Any
) -> bool:
    """Whether a role given only the managed policies ``output_ids`` may make the request."""
    documents = [_policy(stage, output_id)[1]["Properties"]["PolicyDocument"] for output_id in output_ids]
    refs = {stage.rest_api[0]: API_ID, stage.api_stage_id: stage.settings.name}
    return allows(documents, "execute-api:Invoke", _request(stage, method, path, **request), refs)


def test_a_role_with_the_read_policy_alone_reads_everything_and_changes_nothing(
    stage: SynthesizedStage,
) -> None:
    for method, path in ROUTES:
        assert _allows(stage, ("ApiReadPolicyArn",), method, path) is (method == "GET"), (method, path)
    for method, path in CHANGES:
        assert not _allows(stage, ("ApiReadPolicyArn",), method, path), (method, path)


def test_the_change_policy_allows_every_other_route_and_no_read(stage: SynthesizedStage) -> None:
    for method, path in ROUTES:
        assert _allows(stage, ("ApiChangePolicyArn",), method, path) is (method != "GET"), (method, path)
    assert {route for route in ROUTES if route[0] != "GET"} == set(CHANGES)


def test_read_and_change_together_allow_every_route_of_this_stage_and_nothing_else(
    stage: SynthesizedStage,
) -> None:
    both = ACCESS_POLICIES
    for method, path in ROUTES:
        assert _allows(stage, both, method, path), (method, path)
        # ... in this stage of this API only
        other_stage = "prod" if stage.settings.name != "prod" else "dev"
        assert not _allows(stage, both, method, path, stage_name=other_stage), (method, path)
    # Neither a method the API does not have, nor a path outside it
    for method, path in [
        ("PATCH", "/v1/holds/{hold_id}"),
        ("GET", "/v2/holds/{hold_id}"),
        ("POST", "/v1/venues/{venue_id}"),
    ]:
        assert not _allows(stage, both, method, path), (method, path)


def test_the_evaluator_judges_wildcards_as_iam_does() -> None:
    # A * spans "/" and any run of characters; actions ignore case, resources do not
    assert matches("arn:x:api/dev/GET/v1/venues/*", "arn:x:api/dev/GET/v1/venues/casa/versions/2")
    assert not matches("arn:x:api/dev/GET/v1/venues/*", "arn:x:api/dev/DELETE/v1/venues/casa")
    assert matches("execute-api:invoke", "execute-api:Invoke", ignore_case=True)
    assert not matches("arn:x:api/dev/get/*", "arn:x:api/dev/GET/v1/health")
    assert matches("arn:x:api/dev/GET/v1/holds/?", "arn:x:api/dev/GET/v1/holds/h")
    assert not matches("arn:x:api/dev/GET/v1/holds/?", "arn:x:api/dev/GET/v1/holds/hh")
    with pytest.raises(ValueError, match="does not model"):
        allows([{"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}], "s3:GetObject", "x", {})


def test_a_route_declared_read_only_moves_from_the_change_policy_to_the_read_policy() -> None:
    import aws_cdk as cdk

    from stacks.api import ROUTE_GROUPS as STACK_ROUTE_GROUPS
    from stacks.caller_policies import CallerPolicies
    from stacks.settings import stage_settings

    # Given a POST that changes nothing (as a lookup with its key in the body), declared read-only
    groups = {**STACK_ROUTE_GROUPS, "lookups": (("POST", "/v1/lookups"),)}
    stack = cdk.Stack(cdk.App(), "Scratch")
    api = apigateway.RestApi(stack, "Api")
    for routes in groups.values():
        for method, path in routes:
            api.root.resource_for_path(path).add_method(method)
    queue = sqs.Queue(stack, "Queue")
    policies = CallerPolicies(
        stack,
        "Policies",
        settings=stage_settings("dev"),
        rest_api=api,
        route_groups=groups,
        read_only_routes={("POST", "/v1/lookups")},
        email_queue=queue,
    )
    # Then the read policy grants it, the change policy does not
    read = json.dumps(stack.resolve(policies.read.document.to_json()))
    change = json.dumps(stack.resolve(policies.change.document.to_json()))
    assert "/POST/v1/lookups" in read
    assert "/POST/v1/lookups" not in change


@pytest.mark.parametrize(
    ("route", "complaint"),
    [
        (("POST", "/v1/lookup"), "is not a route of the API"),
        (("GET", "/v1/health"), "every GET is read-only"),
    ],
)
def test_a_read_only_route_that_is_no_route_or_a_get_fails_the_synth(
    route: tuple[str, str], complaint: str
) -> None:
    import aws_cdk as cdk

    from stacks.api import ROUTE_GROUPS as STACK_ROUTE_GROUPS
    from stacks.caller_policies import CallerPolicies
    from stacks.settings import stage_settings

    stack = cdk.Stack(cdk.App(), "Scratch")
    with pytest.raises(ValueError, match=complaint):
        CallerPolicies(
            stack,
            "Policies",
            settings=stage_settings("dev"),
            rest_api=apigateway.RestApi(stack, "Api"),
            route_groups=STACK_ROUTE_GROUPS,
            read_only_routes={route},
            email_queue=sqs.Queue(stack, "Queue"),
        )
