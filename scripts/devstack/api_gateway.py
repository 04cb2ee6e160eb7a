"""API Gateway (REST API, Lambda proxy integrations) as the local stack plays it, from the template.

The routes are the template's own: every ``AWS::ApiGateway::Method`` whose integration is
``AWS_PROXY``, on the path its ``AWS::ApiGateway::Resource`` chain spells (``PathPart`` after
``PathPart`` from the API's root, e.g. ``/v1/holds/{hold_id}/confirm``), served by the function
its integration URI names. Nothing here knows the service's routes.

What API Gateway answers by itself (an unknown route, a body too large, a function that fails)
is the template's ``AWS::ApiGateway::GatewayResponse`` of that type, as deployed; the problem
documents below are only for a template that defines none. Locally there is no authorization,
so an unknown route is ``RESOURCE_NOT_FOUND`` (404) where AWS, with IAM on every method, says
``MISSING_AUTHENTICATION_TOKEN`` (403); a known path with another method is a local-only 405
with ``Allow``, where AWS says 403 too.

Pure functions and data only: :mod:`devstack.api_server` does the serving.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from devstack.local_resources import (
    FUNCTION,
    LocalResources,
    TemplateError,
    _properties,
    function_spec,
    resources_of_type,
)
from devstack.worker import LOCAL_ACCOUNT_ID, FunctionSpec

REST_API = "AWS::ApiGateway::RestApi"
RESOURCE = "AWS::ApiGateway::Resource"
METHOD = "AWS::ApiGateway::Method"
STAGE = "AWS::ApiGateway::Stage"
DEPLOYMENT = "AWS::ApiGateway::Deployment"
GATEWAY_RESPONSE = "AWS::ApiGateway::GatewayResponse"
LAMBDA_ALIAS = "AWS::Lambda::Alias"

#: API Gateway's own quotas: the largest request body, and how long it waits for an integration.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 29.0
#: What Lambda returns at most from a synchronous invocation; more is a function error.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
#: The methods API Gateway routes (``ANY`` in a template stands for all of them).
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
PROBLEM_CONTENT_TYPE = "application/problem+json"

#: Gateway response types the local gateway answers with, and the status each has when the
#: template leaves ``StatusCode`` out (API Gateway's defaults).
RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
INTEGRATION_FAILURE = "INTEGRATION_FAILURE"
INTEGRATION_TIMEOUT = "INTEGRATION_TIMEOUT"
_NATURAL_STATUS = {
    RESOURCE_NOT_FOUND: 404,
    REQUEST_TOO_LARGE: 413,
    INTEGRATION_FAILURE: 502,
    INTEGRATION_TIMEOUT: 504,
}
_MESSAGES = {
    RESOURCE_NOT_FOUND: "No route for this method and path.",
    REQUEST_TOO_LARGE: "Request body too large.",
    INTEGRATION_FAILURE: "The function failed to answer.",
    INTEGRATION_TIMEOUT: "The function did not answer in time.",
}
_FALLBACK_PROBLEMS = {
    RESOURCE_NOT_FOUND: ("Not found", "NOT_FOUND"),
    REQUEST_TOO_LARGE: ("Content too large", "PAYLOAD_TOO_LARGE"),
    INTEGRATION_FAILURE: ("Bad gateway", "BAD_GATEWAY"),
    INTEGRATION_TIMEOUT: ("Gateway timeout", "GATEWAY_TIMEOUT"),
}
_PROXY_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_HOP_BY_HOP = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding", "upgrade"})


@dataclass(frozen=True)
class ApiRoute:
    """One method on one resource, and the function its proxy integration invokes."""

    method: str  # an HTTP method, or ANY
    resource_path: str  # e.g. /v1/holds/{hold_id}/confirm
    resource_id: str  # what requestContext.resourceId says
    function: str  # a key of ApiSpec.functions


@dataclass(frozen=True)
class GatewayResponse:
    """An ``AWS::ApiGateway::GatewayResponse``: what API Gateway answers by itself."""

    status: int | None
    headers: Mapping[str, str]
    body: str


@dataclass(frozen=True)
class ApiSpec:
    """The template's REST API as the local server needs it (written to a JSON file)."""

    region: str
    api_id: str
    stage: str
    routes: Sequence[ApiRoute]
    functions: Mapping[str, FunctionSpec]
    gateway_responses: Mapping[str, GatewayResponse] = field(default_factory=dict)
    stage_variables: Mapping[str, str] | None = None
    binary_media_types: Sequence[str] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ApiSpec:
        raw = json.loads(text)
        return cls(
            **{
                **raw,
                "routes": [ApiRoute(**route) for route in raw["routes"]],
                "functions": {name: FunctionSpec(**spec) for name, spec in raw["functions"].items()},
                "gateway_responses": {
                    kind: GatewayResponse(**response) for kind, response in raw["gateway_responses"].items()
                },
            }
        )


# --- The template -----------------------------------------------------------------------------


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("Ref"), str) and len(value) == 1:
        return str(value["Ref"])
    return None


def _get_att(value: Any) -> tuple[str, str] | None:
    if isinstance(value, Mapping) and len(value) == 1 and "Fn::GetAtt" in value:
        argument = value["Fn::GetAtt"]
        logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        return str(logical_id), str(attribute)
    return None


def _referenced_ids(value: Any) -> Iterable[str]:
    """Every logical id a template expression refers to (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``)."""
    if isinstance(value, Mapping):
        if (ref := _ref(value)) is not None:
            yield ref
            return
        if (att := _get_att(value)) is not None:
            yield att[0]
            return
        for key, item in value.items():
            if key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                if isinstance(text, str):
                    yield from (name.split(".", 1)[0] for name in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(item, list) and len(item) > 1:
                    yield from _referenced_ids(item[1])
            else:
                yield from _referenced_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _referenced_ids(item)


def _aws_style_id(logical_id: str, length: int) -> str:
    """A stable lower-case id shaped like API Gateway's (``apiId``, ``resourceId``)."""
    digest = int.from_bytes(hashlib.sha256(logical_id.encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    characters = []
    for _ in range(length):
        digest, index = divmod(digest, len(alphabet))
        characters.append(alphabet[index])
    return "".join(characters)


def _resource_paths(template: Mapping[str, Any], api_id: str) -> dict[str | None, str]:
    """``{resource logical id: path}`` for the API's resources; ``None`` is the root, ``/``."""
    parents: dict[str, tuple[str | None, str]] = {}
    for logical_id, resource in resources_of_type(template, RESOURCE).items():
        properties = _properties(resource)
        if _ref(properties.get("RestApiId")) != api_id:
            continue
        parents[logical_id] = (
            _resource_key(properties.get("ParentId"), api_id, logical_id),
            properties["PathPart"],
        )

    paths: dict[str | None, str] = {None: "/"}

    def path_of(logical_id: str | None, seen: tuple[str, ...] = ()) -> str:
        if logical_id is None or logical_id in paths:
            return paths[logical_id]  # None is the root, always known
        if logical_id in seen:
            raise TemplateError(f"API resource {logical_id} is its own ancestor")
        if logical_id not in parents:
            raise TemplateError(f"API resource {logical_id} is not a resource of the REST API")
        parent, part = parents[logical_id]
        paths[logical_id] = path_of(parent, (*seen, logical_id)).rstrip("/") + "/" + part
        return paths[logical_id]

    for logical_id in parents:
        path_of(logical_id)
    return paths


def _resource_key(value: Any, api_id: str, owner: str) -> str | None:
    """The resource a ``ParentId``/``ResourceId`` names: a resource's logical id, or ``None``
    for the API's root (``Fn::GetAtt [api, RootResourceId]``)."""
    if _get_att(value) == (api_id, "RootResourceId"):
        return None
    if (ref := _ref(value)) is not None:
        return ref
    raise TemplateError(f"{owner}: no local value for the resource {json.dumps(value)}")


def _integrated_function(method_id: str, uri: Any, template: Mapping[str, Any]) -> str:
    """The logical id of the function a Lambda proxy integration URI invokes (through an alias too)."""
    resources = template.get("Resources", {})
    for logical_id in _referenced_ids(uri):
        kind = resources.get(logical_id, {}).get("Type")
        if kind == FUNCTION:
            return logical_id
        if kind == LAMBDA_ALIAS:
            for target in _referenced_ids(_properties(resources[logical_id]).get("FunctionName")):
                if resources.get(target, {}).get("Type") == FUNCTION:
                    return target
    raise TemplateError(f"method {method_id}: its integration invokes no function of the template")


def _stage(template: Mapping[str, Any], api_id: str) -> tuple[str, dict[str, str] | None]:
    for resource in resources_of_type(template, STAGE).values():
        properties = _properties(resource)
        if _ref(properties.get("RestApiId")) == api_id:
            variables = properties.get("Variables")
            return str(properties["StageName"]), (
                {k: str(v) for k, v in variables.items()} if variables else None
            )
    for resource in resources_of_type(template, DEPLOYMENT).values():
        properties = _properties(resource)
        if _ref(properties.get("RestApiId")) == api_id and "StageName" in properties:
            return str(properties["StageName"]), None
    raise TemplateError(f"REST API {api_id} has no stage")


def _gateway_responses(template: Mapping[str, Any], api_id: str) -> dict[str, GatewayResponse]:
    responses = {}
    for resource in resources_of_type(template, GATEWAY_RESPONSE).values():
        properties = _properties(resource)
        if _ref(properties.get("RestApiId")) != api_id:
            continue
        headers = {}
        for parameter, value in properties.get("ResponseParameters", {}).items():
            name = parameter.removeprefix("gatewayresponse.header.")
            # Static values only ('quoted'); mappings from the request mean nothing locally.
            if (
                name != parameter
                and isinstance(value, str)
                and len(value) >= 2
                and value[0] == value[-1] == "'"
            ):
                headers[name] = value[1:-1]
        templates = properties.get("ResponseTemplates", {})
        body = templates.get("application/json", next(iter(templates.values()), ""))
        status = properties.get("StatusCode")
        responses[properties["ResponseType"]] = GatewayResponse(
            status=int(status) if status is not None else None, headers=headers, body=str(body)
        )
    return responses


def api_spec(
    template: Mapping[str, Any],
    resources: LocalResources,
    *,
    assembly_dir: Path,
    local_environment: Mapping[str, str],
    warn: Callable[[str], None],
) -> ApiSpec | None:
    """The template's REST API (``None`` if it has none): its routes, the functions behind them
    (with their environment resolved as the queue workers' is), its stage and gateway responses.

    Methods with another integration than ``AWS_PROXY`` (a ``MOCK`` for CORS, say) are reported
    through ``warn`` and not served.
    """
    apis = resources_of_type(template, REST_API)
    if not apis:
        return None
    if len(apis) > 1:
        raise TemplateError(f"{len(apis)} REST APIs ({', '.join(apis)}); the local stack serves one")
    ((api_id, api),) = apis.items()
    if {"Body", "BodyS3Location"} & set(_properties(api)):
        raise TemplateError(
            f"REST API {api_id} is defined by an OpenAPI body; only its resources run locally"
        )
    paths = _resource_paths(template, api_id)
    functions = resources_of_type(template, FUNCTION)
    routes = []
    specs: dict[str, FunctionSpec] = {}
    for method_id, method in resources_of_type(template, METHOD).items():
        properties = _properties(method)
        if _ref(properties.get("RestApiId")) != api_id:
            continue
        integration = properties.get("Integration", {})
        if integration.get("Type") != "AWS_PROXY":
            warn(f"method {method_id}: {integration.get('Type')} integrations are not served locally")
            continue
        function_id = _integrated_function(method_id, integration.get("Uri"), template)
        resource = _resource_key(properties.get("ResourceId"), api_id, method_id)
        if resource not in paths:
            raise TemplateError(f"method {method_id}: its resource is not a resource of the REST API")
        name = resources.function_names[function_id]
        if name not in specs:
            specs[name] = function_spec(
                function_id,
                functions[function_id],
                resources,
                assembly_dir=assembly_dir,
                local_environment=local_environment,
            )
        routes.append(
            ApiRoute(
                method=str(properties["HttpMethod"]).upper(),
                resource_path=paths[resource],
                resource_id=_aws_style_id(resource or api_id, 6),
                function=name,
            )
        )
    stage, variables = _stage(template, api_id)
    return ApiSpec(
        region=resources.region,
        api_id=_aws_style_id(api_id, 10),
        stage=stage,
        routes=sorted(routes, key=lambda route: (route.resource_path, route.method)),
        functions=specs,
        gateway_responses=_gateway_responses(template, api_id),
        stage_variables=variables,
        binary_media_types=[str(kind) for kind in _properties(api).get("BinaryMediaTypes", [])],
    )


# --- Routing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteMatch:
    route: ApiRoute
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


@dataclass
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    variable: tuple[str, _Node] | None = None  # {name}
    greedy: tuple[str, _Node] | None = None  # {name+}
    methods: dict[str, ApiRoute] = field(default_factory=dict)
    path: str = "/"


class RouteTable:
    """Finds the route of a request path as API Gateway does: a literal path part wins over a
    ``{variable}``, which wins over a greedy ``{variable+}`` (one or more parts)."""

    def __init__(self, routes: Iterable[ApiRoute]) -> None:
        self._root = _Node()
        for route in routes:
            node = self._root
            for part in _parts(route.resource_path):
                node = self._child(node, part)
            if route.method in node.methods:
                raise TemplateError(f"two {route.method} methods on {route.resource_path}")
            node.path = route.resource_path
            node.methods[route.method] = route

    @staticmethod
    def _child(node: _Node, part: str) -> _Node:
        if part.startswith("{") and part.endswith("+}"):
            if node.greedy is None:
                node.greedy = (part[1:-2], _Node())
            return node.greedy[1]
        if part.startswith("{") and part.endswith("}"):
            if node.variable is None:
                node.variable = (part[1:-1], _Node())
            elif node.variable[0] != part[1:-1]:
                raise TemplateError(f"two path variables at the same place: {node.variable[0]}, {part}")
            return node.variable[1]
        return node.static.setdefault(part, _Node())

    def resolve(self, method: str, path: str) -> RouteMatch | MethodNotAllowed | None:
        """The route for ``method`` on the (still percent-encoded) ``path``; a
        :class:`MethodNotAllowed` when the path has other methods only; ``None`` when no resource
        with methods has this path."""
        found = self._find(self._root, _parts(path), {})
        if found is None:
            return None
        node, parameters = found
        # ANY stands for API Gateway's methods only: TRACE or CONNECT reach no function.
        route = node.methods.get(method) or (node.methods.get("ANY") if method in HTTP_METHODS else None)
        if route is None:
            allowed = HTTP_METHODS if "ANY" in node.methods else tuple(sorted(node.methods))
            return MethodNotAllowed(allowed)
        return RouteMatch(route, parameters)

    def _find(
        self, node: _Node, parts: Sequence[str], parameters: dict[str, str]
    ) -> tuple[_Node, dict[str, str]] | None:
        if not parts:
            return (node, parameters) if node.methods else None
        head, rest = parts[0], parts[1:]
        if head == "":  # an empty path part (a doubled or trailing slash) matches no resource
            return None
        if head in node.static and (found := self._find(node.static[head], rest, parameters)):
            return found
        if node.variable is not None:
            name, child = node.variable
            if found := self._find(child, rest, {**parameters, name: unquote(head)}):
                return found
        if node.greedy is not None:
            name, child = node.greedy
            if child.methods:
                return child, {**parameters, name: unquote("/".join(parts))}
        return None


def _parts(path: str) -> list[str]:
    stripped = path[1:] if path.startswith("/") else path
    return stripped.split("/") if stripped else []


# --- The proxy event and the proxy response ---------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """A request as the local server received it."""

    method: str
    path: str  # percent-encoded, without the query string
    query: str
    headers: Sequence[tuple[str, str]]  # as received, in order, names as sent
    body: bytes
    source_ip: str
    received_at: datetime  # aware, UTC
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _media_type(headers: Iterable[tuple[str, str]]) -> str:
    value = next((v for k, v in headers if k.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower()


def _is_binary(media_type: str, binary_media_types: Iterable[str]) -> bool:
    for pattern in binary_media_types:
        kind = pattern.replace("~1", "/").lower()  # "image~1png" is how the console writes image/png
        if kind == "*/*" or kind == media_type:
            return True
        if kind.endswith("/*") and media_type.startswith(kind[:-1]):
            return True
    return False


def proxy_event(spec: ApiSpec, match: RouteMatch, request: HttpRequest) -> dict[str, Any]:
    """The event a Lambda proxy integration sends (payload format 1.0), as API Gateway builds it:
    ``headers`` and ``queryStringParameters`` hold each name's last value, the ``multiValue``
    ones all of them; path parameters and the query are decoded, ``path`` is not."""
    headers = _forwarded_headers(request)
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    body: str | None = None
    encoded = False
    if request.body:
        if _is_binary(_media_type(headers), spec.binary_media_types):
            body, encoded = base64.b64encode(request.body).decode("ascii"), True
        else:
            body = request.body.decode("utf-8", errors="replace")
    route = match.route
    received = request.received_at
    user_agent = single_headers.get("User-Agent") or single_headers.get("user-agent")
    return {
        "resource": route.resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": match.path_parameters or None,
        "stageVariables": dict(spec.stage_variables) if spec.stage_variables else None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": spec.api_id,
            "domainName": single_headers.get("Host") or single_headers.get("host") or "",
            "domainPrefix": spec.api_id,
            "extendedRequestId": base64.urlsafe_b64encode(uuid.UUID(request.request_id).bytes[:12]).decode(),
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": None,
            },
            "path": f"/{spec.stage}{request.path}",
            "protocol": "HTTP/1.1",
            "requestId": request.request_id,
            "requestTime": received.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(received.timestamp() * 1000),
            "resourceId": route.resource_id,
            "resourcePath": route.resource_path,
            "stage": spec.stage,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def _forwarded_headers(request: HttpRequest) -> list[tuple[str, str]]:
    """The request's headers with those API Gateway adds on the way in."""
    headers = list(request.headers)
    names = {name.lower() for name, _ in headers}
    forwarded = [(k, v) for k, v in headers if k.lower() == "x-forwarded-for"]
    headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
    chain = ", ".join([*(v for _, v in forwarded), request.source_ip])
    headers.append((forwarded[-1][0] if forwarded else "X-Forwarded-For", chain))
    if "x-forwarded-proto" not in names:
        headers.append(("X-Forwarded-Proto", "http"))
    if "x-amzn-trace-id" not in names:
        epoch = int(request.received_at.timestamp())
        headers.append(("X-Amzn-Trace-Id", f"Root=1-{epoch:08x}-{uuid.UUID(request.request_id).hex[:24]}"))
    return headers


class MalformedProxyResponse(ValueError):
    """The function's answer is not a Lambda proxy response (API Gateway answers 502)."""


@dataclass(frozen=True)
class HttpAnswer:
    """What the local server sends back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def proxy_answer(response: Any) -> HttpAnswer:
    """The HTTP answer a Lambda proxy response stands for, checked as API Gateway checks it.

    ``headers`` and ``multiValueHeaders`` are merged (a pair in both appears once); a missing
    ``Content-Type`` is ``application/json``, as API Gateway sends it.
    """
    if not isinstance(response, Mapping):
        raise MalformedProxyResponse("the response is not a JSON object")
    unknown = set(response) - _PROXY_RESPONSE_KEYS
    if unknown:
        raise MalformedProxyResponse(f"unexpected fields: {', '.join(sorted(unknown))}")
    status = response.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse("statusCode is missing or not an HTTP status")
    headers: list[tuple[str, str]] = []
    multi = response.get("multiValueHeaders") or {}
    single = response.get("headers") or {}
    if not isinstance(multi, Mapping) or not isinstance(single, Mapping):
        raise MalformedProxyResponse("headers or multiValueHeaders is not an object")
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponse("a multiValueHeaders value is not a list")
        headers.extend((str(name), _header_value(value)) for value in values)
    for name, value in single.items():
        if isinstance(value, list | Mapping):
            raise MalformedProxyResponse("a headers value is not a string")
        pair = (str(name), _header_value(value))
        if pair not in headers:
            headers.append(pair)
    headers = [(name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    body = response.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResponse("body is not a string")
    encoded = response.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise MalformedProxyResponse("isBase64Encoded is not a boolean")
    if encoded and body:
        try:
            payload = base64.b64decode(body, validate=True)
        except ValueError:
            raise MalformedProxyResponse("body is not base64 although isBase64Encoded is true") from None
    else:
        payload = (body or "").encode("utf-8")
    return HttpAnswer(status, headers, payload)


def _header_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- What API Gateway answers by itself -------------------------------------------------------


def gateway_answer(spec: ApiSpec, response_type: str, request_id: str) -> HttpAnswer:
    """API Gateway's own answer of ``response_type``: the template's gateway response for it,
    else its ``DEFAULT_4XX``/``DEFAULT_5XX``, else a problem document."""
    natural = _NATURAL_STATUS[response_type]
    configured = spec.gateway_responses.get(response_type) or spec.gateway_responses.get(
        "DEFAULT_4XX" if natural < 500 else "DEFAULT_5XX"
    )
    if configured is None:
        title, code = _FALLBACK_PROBLEMS[response_type]
        return problem_answer(natural, title, _MESSAGES[response_type], code)
    variables = {
        "$context.requestId": request_id,
        "$context.error.responseType": response_type,
        "$context.error.messageString": json.dumps(_MESSAGES[response_type]),
        "$context.error.message": _MESSAGES[response_type],
    }
    body = re.sub(
        r"\$context\.error\.messageString|\$context\.error\.message|\$context\.error\.responseType"
        r"|\$context\.requestId",
        lambda m: variables[m.group(0)],
        configured.body,
    )
    headers = list(configured.headers.items())
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpAnswer(configured.status or natural, headers, body.encode("utf-8"))


def problem_answer(
    status: int, title: str, detail: str, code: str, headers: Sequence[tuple[str, str]] = ()
) -> HttpAnswer:
    """An RFC 9457 problem document, as the service writes them
    (docs/reference/http-api.md#problem-documents)."""
    document = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    return HttpAnswer(
        status,
        [("Content-Type", PROBLEM_CONTENT_TYPE), *headers],
        json.dumps(document, separators=(",", ":")).encode("utf-8"),
    )


def method_not_allowed(allowed: Sequence[str]) -> HttpAnswer:
    """Local only: API Gateway, with IAM on every method, answers 403 for a method it lacks."""
    return problem_answer(
        405,
        "Method not allowed",
        "This path does not take this method.",
        "METHOD_NOT_ALLOWED",
        [("Allow", ", ".join(allowed))],
    )
