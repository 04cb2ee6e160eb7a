"""The local stack's queues, tables and workers, read from the synthesized CDK template itself.

Queues and tables are created in moto server with the API, from each resource's own template
properties, so they cannot drift from what deploys. (moto's CloudFormation is not used: it
silently drops or alters properties.) Every SQS event source mapping becomes a worker spec
(see ``worker.py``) whose environment is the function's, with ``Ref``/``Fn::GetAtt`` resolved to
the local names, URLs and ARNs; every pipe from a table's stream to a queue becomes a stream
worker spec (see ``stream_worker.py``) with the pipe's own filter patterns and input template;
every scheduled rule's Lambda target becomes a schedule of the local scheduler (``scheduler.py``).

Where each function's code is: the ``aws:asset:path`` metadata the CDK writes for SAM-style
local tools. The local stack synthesizes with asset metadata on and asset staging off, so it is
the function's source folder (``lambdas/<function>/``); a relative path (staged asset) is read
from the cloud assembly folder instead.

The names in ``stack.json`` come from the functions' environment variable names, the settings
contract every function already has: ``EMAIL_QUEUE_URL`` names its queue ``email``,
``EMAIL_DLQ_URL`` ``email_dlq``, ``DELIVERIES_TABLE`` ``deliveries``. A dead-letter queue no
variable names is called after its source queue (``<name>_dlq``), and a queue no variable names
after its dead-letter queue (``notifications`` for ``notifications_dlq``); a pipe's dead-letter
queue is ``<target queue name>_pipe_dlq``. Anything else keeps its logical id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devstack import stream_worker
from devstack.schedules import Schedule
from devstack.stream_worker import StreamWorkerSpec, UnsupportedPipe, check_pattern, check_template
from devstack.worker import LOCAL_ACCOUNT_ID, FunctionSpec, QueueWorkerSpec
from stacks.settings import SCHEDULE_PERIOD_METADATA

QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
FUNCTION = "AWS::Lambda::Function"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
PIPE = "AWS::Pipes::Pipe"
EVENTS_RULE = "AWS::Events::Rule"
ASSET_PATH_METADATA = "aws:asset:path"

# CloudFormation's defaults for properties a template may leave out.
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128
DEFAULT_BATCH_SIZE = 10

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "ContentBasedDeduplication",
)
_QUEUE_VARIABLE = re.compile(r"^(?P<name>.+?)(_QUEUE)?_(URL|ARN|NAME)$")
_RATE = re.compile(r"^rate\((?P<value>[1-9][0-9]*) (?P<unit>minute|hour|day)s?\)$")
_RATE_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
_TABLE_VARIABLE = re.compile(r"^(?P<name>.+?)_TABLE(_NAME|_ARN)?$")

_T = TypeVar("_T")


class TemplateError(ValueError):
    """The template holds something the local stack cannot reproduce; the message says what."""


@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class LocalTable:
    logical_id: str
    name: str
    arn: str
    stream_arn: str | None = None


@dataclass
class LocalResources:
    """What was created, by logical id, and how the template's references resolve to it."""

    region: str
    stack_name: str
    queues: dict[str, LocalQueue] = field(default_factory=dict)
    tables: dict[str, LocalTable] = field(default_factory=dict)
    function_names: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> str:
        """A template value (literal, ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``) as a
        string; raises :class:`TemplateError` for anything that has no local counterpart."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, Mapping) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self.resolve(part) for part in parts)
            if function == "Fn::Sub" and isinstance(argument, str):
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub_variable(m.group(1)), argument)
        raise TemplateError(f"no local value for {json.dumps(value)}")

    def _sub_variable(self, name: str) -> str:
        logical_id, _, attribute = name.partition(".")
        return self._get_att(logical_id, attribute) if attribute else self._ref(name)

    def _ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id in self.queues:
            return self.queues[logical_id].url
        if logical_id in self.tables:
            return self.tables[logical_id].name
        if logical_id in self.function_names:
            return self.function_names[logical_id]
        raise TemplateError(f"no local resource for Ref {logical_id}")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        value: str | None = None
        if logical_id in self.queues:
            queue = self.queues[logical_id]
            value = {"Arn": queue.arn, "QueueName": queue.name, "QueueUrl": queue.url}.get(attribute)
        elif logical_id in self.tables:
            table = self.tables[logical_id]
            value = {"Arn": table.arn, "StreamArn": table.stream_arn}.get(attribute)
        elif logical_id in self.function_names:
            name = self.function_names[logical_id]
            arn = f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT_ID}:function:{name}"
            value = {"Arn": arn}.get(attribute)
        if value is None:
            raise TemplateError(f"no local value for Fn::GetAtt {logical_id}.{attribute}")
        return value


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        template: dict[str, Any] = json.load(file)
    return template


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """``{logical id: resource}`` of one type, in a stable order."""
    resources = template.get("Resources", {})
    return {lid: res for lid, res in sorted(resources.items()) if res.get("Type") == resource_type}


def _properties(resource: Mapping[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = resource.get("Properties", {})
    return properties


def create_resources(
    template: Mapping[str, Any], *, sqs: Any, dynamodb: Any, region: str, stack_name: str
) -> LocalResources:
    """Create every queue (dead-letter targets first) and table of ``template`` in moto."""
    resources = LocalResources(region=region, stack_name=stack_name)
    for logical_id, resource in resources_of_type(template, FUNCTION).items():
        name = _properties(resource).get("FunctionName")
        resources.function_names[logical_id] = name if isinstance(name, str) else logical_id
    _create_queues(resources_of_type(template, QUEUE), sqs, resources)
    for logical_id, resource in resources_of_type(template, TABLE).items():
        resources.tables[logical_id] = _create_table(logical_id, _properties(resource), dynamodb)
    return resources


def _dead_letter_target(properties: Mapping[str, Any]) -> str | None:
    target = properties.get("RedrivePolicy", {}).get("deadLetterTargetArn")
    if isinstance(target, Mapping) and "Fn::GetAtt" in target:
        logical_id: str = target["Fn::GetAtt"][0]
        return logical_id
    return None


def _create_queues(queues: Mapping[str, Mapping[str, Any]], sqs: Any, resources: LocalResources) -> None:
    pending = dict(queues)
    while pending:
        # A queue can be made once the queue it dead-letters to exists.
        ready = [
            lid
            for lid, res in pending.items()
            if _dead_letter_target(_properties(res)) in (None, *resources.queues)
        ]
        if not ready:
            raise TemplateError(f"queues whose dead-letter queue is missing or circular: {sorted(pending)}")
        for logical_id in ready:
            resources.queues[logical_id] = _create_queue(
                logical_id, _properties(pending.pop(logical_id)), sqs, resources
            )


def _create_queue(
    logical_id: str, properties: Mapping[str, Any], sqs: Any, resources: LocalResources
) -> LocalQueue:
    attributes = {
        name: resources.resolve(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties
    }
    name = logical_id
    if properties.get("FifoQueue"):
        attributes["FifoQueue"] = "true"
        name += ".fifo"
    redrive = properties.get("RedrivePolicy")
    if redrive is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": resources.resolve(redrive["deadLetterTargetArn"]),
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
        )
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return LocalQueue(logical_id=logical_id, name=name, url=url, arn=arn)


def _create_table(logical_id: str, properties: Mapping[str, Any], dynamodb: Any) -> LocalTable:
    request: dict[str, Any] = {
        "TableName": logical_id,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        # CloudFormation's default billing mode.
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in properties:
        request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    indexes = {
        "GlobalSecondaryIndexes": ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput"),
        "LocalSecondaryIndexes": ("IndexName", "KeySchema", "Projection"),
    }
    for kind, keys in indexes.items():
        if kind in properties:
            request[kind] = [{k: index[k] for k in keys if k in index} for index in properties[kind]]
    stream = properties.get("StreamSpecification")
    if stream is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl is not None and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=logical_id,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    return LocalTable(
        logical_id=logical_id,
        name=description["TableName"],
        arn=description["TableArn"],
        stream_arn=description.get("LatestStreamArn"),
    )


@dataclass(frozen=True)
class Names:
    """The friendly names of ``stack.json``: ``{name: queue}`` and ``{name: table}``."""

    queues: dict[str, LocalQueue]
    tables: dict[str, LocalTable]

    def queue_name(self, logical_id: str) -> str:
        return next(name for name, queue in self.queues.items() if queue.logical_id == logical_id)


def _referenced_logical_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and isinstance(argument, str):
            return argument
        if function == "Fn::GetAtt":
            return str(argument[0] if isinstance(argument, list) else argument.split(".", 1)[0])
    return None


def friendly_names(template: Mapping[str, Any], resources: LocalResources) -> Names:
    """Name queues and tables after the environment variables that point functions at them."""
    queue_names: dict[str, str] = {}
    table_names: dict[str, str] = {}
    for resource in resources_of_type(template, FUNCTION).values():
        variables = _properties(resource).get("Environment", {}).get("Variables", {})
        for variable, value in sorted(variables.items()):
            logical_id = _referenced_logical_id(value)
            if logical_id in resources.queues and (match := _QUEUE_VARIABLE.match(variable)):
                queue_names.setdefault(logical_id, match["name"].lower())
            elif logical_id in resources.tables and (match := _TABLE_VARIABLE.match(variable)):
                table_names.setdefault(logical_id, match["name"].lower())
    for logical_id, resource in resources_of_type(template, QUEUE).items():
        target = _dead_letter_target(_properties(resource))
        dlq_name = queue_names.get(target) if target is not None else None
        if logical_id not in queue_names and dlq_name is not None and dlq_name.endswith("_dlq"):
            queue_names[logical_id] = dlq_name.removesuffix("_dlq")
    for logical_id, resource in resources_of_type(template, QUEUE).items():
        source = queue_names.get(logical_id)
        target = _dead_letter_target(_properties(resource))
        if source is not None and target is not None:
            queue_names.setdefault(target, f"{source}_dlq")
    for pipe in resources_of_type(template, PIPE).values():
        target_name = queue_names.get(_referenced_logical_id(_properties(pipe).get("Target")) or "")
        for parameters in _properties(pipe).get("SourceParameters", {}).values():
            dlq = _referenced_logical_id(parameters.get("DeadLetterConfig", {}).get("Arn"))
            if target_name is not None and dlq in resources.queues:
                queue_names.setdefault(dlq, f"{target_name}_pipe_dlq")
    for logical_id in resources.queues:
        queue_names.setdefault(logical_id, logical_id)
    for logical_id in resources.tables:
        table_names.setdefault(logical_id, logical_id)
    return Names(
        queues=_by_name(queue_names, resources.queues, "queue"),
        tables=_by_name(table_names, resources.tables, "table"),
    )


def _by_name(names: Mapping[str, str], items: Mapping[str, _T], kind: str) -> dict[str, _T]:
    by_name: dict[str, _T] = {}
    for logical_id, name in sorted(names.items(), key=lambda item: item[1]):
        if name in by_name:
            raise TemplateError(f"two {kind}s would both be called {name!r} in stack.json")
        by_name[name] = items[logical_id]
    return by_name


def queue_worker_specs(
    template: Mapping[str, Any],
    resources: LocalResources,
    names: Names,
    *,
    assembly_dir: Path,
    local_environment: Mapping[str, str],
    warn: Callable[[str], None],
) -> list[QueueWorkerSpec]:
    """One worker per enabled SQS event source mapping, named ``<queue name>_worker``.

    ``local_environment`` overrides the function's own variables (endpoint, credentials, the
    local sinks' ports). Mappings on other sources are reported through ``warn`` and skipped.
    """
    functions = resources_of_type(template, FUNCTION)
    specs = []
    for logical_id, mapping in resources_of_type(template, EVENT_SOURCE_MAPPING).items():
        properties = _properties(mapping)
        if properties.get("Enabled") is False:
            continue
        source = _referenced_logical_id(properties.get("EventSourceArn"))
        if source not in resources.queues:
            warn(f"event source mapping {logical_id}: only SQS sources run locally; skipped")
            continue
        if "FilterCriteria" in properties:
            warn(f"event source mapping {logical_id}: FilterCriteria are not applied locally")
        function_id = _referenced_logical_id(properties["FunctionName"])
        if function_id not in functions:
            raise TemplateError(f"event source mapping {logical_id}: its function is not in the template")
        queue = resources.queues[source]
        specs.append(
            QueueWorkerSpec(
                name=f"{names.queue_name(source)}_worker",
                region=resources.region,
                queue_url=queue.url,
                queue_arn=queue.arn,
                function=function_spec(
                    function_id,
                    functions[function_id],
                    resources,
                    assembly_dir=assembly_dir,
                    local_environment=local_environment,
                ),
                batch_size=int(properties.get("BatchSize", DEFAULT_BATCH_SIZE)),
                batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in properties.get("FunctionResponseTypes", []),
            )
        )
    return specs


def function_spec(
    logical_id: str,
    resource: Mapping[str, Any],
    resources: LocalResources,
    *,
    assembly_dir: Path,
    local_environment: Mapping[str, str],
) -> FunctionSpec:
    properties = _properties(resource)
    if not str(properties.get("Runtime", "python")).startswith("python"):
        raise TemplateError(f"function {logical_id}: only Python functions run locally")
    asset_path = resource.get("Metadata", {}).get(ASSET_PATH_METADATA)
    if asset_path is None:
        raise TemplateError(
            f"function {logical_id} has no {ASSET_PATH_METADATA} metadata: "
            "synthesize with the context aws:cdk:enable-asset-metadata=true"
        )
    code_dir = assembly_dir / asset_path  # an absolute asset path stays as it is
    variables = properties.get("Environment", {}).get("Variables", {})
    environment = {}
    for name, value in variables.items():
        try:
            environment[name] = resources.resolve(value)
        except TemplateError as error:
            raise TemplateError(f"function {logical_id}, variable {name}: {error}") from None
    return FunctionSpec(
        name=resources.function_names[logical_id],
        handler=properties["Handler"],
        code_dir=str(code_dir),
        timeout_seconds=int(properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=int(properties.get("MemorySize", DEFAULT_MEMORY_MB)),
        environment={**environment, **local_environment},
    )


def stream_worker_specs(
    template: Mapping[str, Any],
    resources: LocalResources,
    names: Names,
    *,
    endpoint_url: str,
    state_dir: Path,
    warn: Callable[[str], None],
) -> list[StreamWorkerSpec]:
    """One stream worker per running pipe from a table's stream to a queue, named
    ``<target queue name>_stream``, its position kept in ``state_dir``.

    Its filter patterns, input template and starting position are the pipe's own. Pipes on
    other sources or targets are reported through ``warn`` and skipped; one whose filters,
    template, enrichment or target parameters could not be reproduced faithfully is a
    :class:`TemplateError`.
    """
    tables_by_stream = {table.stream_arn: table for table in resources.tables.values() if table.stream_arn}
    specs = []
    for logical_id, pipe in resources_of_type(template, PIPE).items():
        properties = _properties(pipe)
        if properties.get("DesiredState", "RUNNING") != "RUNNING":
            continue
        source = _pipe_reference(resources, properties.get("Source"))
        target = _referenced_logical_id(properties.get("Target"))
        if source not in tables_by_stream or target not in resources.queues:
            warn(f"pipe {logical_id}: only pipes from a table's stream to a queue run locally; skipped")
            continue
        if "Enrichment" in properties:
            raise TemplateError(f"pipe {logical_id}: enrichment is not emulated locally")
        stream_parameters = properties.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        target_parameters = dict(properties.get("TargetParameters", {}))
        input_template = target_parameters.pop("InputTemplate", None)
        if target_parameters:
            unsupported = sorted(target_parameters)
            raise TemplateError(f"pipe {logical_id}: target parameters {unsupported} are not emulated")
        try:
            filters = _pipe_filters(properties)
            if input_template is not None:
                if not isinstance(input_template, str):
                    raise UnsupportedPipe("the input template is not a literal string")
                check_template(input_template)
        except UnsupportedPipe as error:
            raise TemplateError(f"pipe {logical_id}: {error}") from None
        name = f"{names.queue_name(target)}_stream"
        specs.append(
            StreamWorkerSpec(
                name=name,
                region=resources.region,
                endpoint_url=endpoint_url,
                stream_arn=str(source),
                target_queue_url=resources.queues[target].url,
                state_file=str(state_dir / f"{name}.state.json"),
                starting_position=str(stream_parameters.get("StartingPosition", "TRIM_HORIZON")),
                batch_size=int(stream_parameters.get("BatchSize", stream_worker.DEFAULT_BATCH_SIZE)),
                filters=filters,
                input_template=input_template,
            )
        )
    return specs


def _pipe_reference(resources: LocalResources, value: Any) -> str | None:
    try:
        return resources.resolve(value)
    except TemplateError:
        return None


def _pipe_filters(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    filters = []
    criteria = properties.get("SourceParameters", {}).get("FilterCriteria", {})
    for index, entry in enumerate(criteria.get("Filters", [])):
        pattern = entry.get("Pattern")
        if not isinstance(pattern, str):
            raise UnsupportedPipe(f"filter {index}: its pattern is not a literal JSON string")
        try:
            parsed = json.loads(pattern)
        except ValueError:
            raise UnsupportedPipe(f"filter {index}: its pattern is not JSON") from None
        check_pattern(parsed, f"filter {index}")
        filters.append(parsed)
    return filters


def schedule_specs(
    template: Mapping[str, Any],
    resources: LocalResources,
    *,
    assembly_dir: Path,
    local_environment: Mapping[str, str],
    warn: Callable[[str], None],
) -> list[Schedule]:
    """One schedule per Lambda target of every enabled rule with a ``ScheduleExpression``.

    The period is the rule's ``SCHEDULE_PERIOD_METADATA`` when the template gives one (the
    stage's own, in seconds), else its ``rate(...)``. Rules on event patterns, ``cron(...)``
    schedules and targets other than the template's functions are reported through ``warn`` and
    skipped; a target whose input is shaped (``Input``, ``InputPath``, ``InputTransformer``) is a
    :class:`TemplateError`: the scheduler sends the schedule's own event.
    """
    functions = resources_of_type(template, FUNCTION)
    specs = []
    for logical_id, rule in resources_of_type(template, EVENTS_RULE).items():
        properties = _properties(rule)
        expression = properties.get("ScheduleExpression")
        if expression is None:
            warn(f"rule {logical_id}: only schedules run locally; skipped")
            continue
        if properties.get("State", "ENABLED") != "ENABLED":
            continue
        seconds = _period_seconds(rule, str(expression))
        if seconds is None:
            warn(f"rule {logical_id}: {expression} is not a rate; skipped")
            continue
        for target in properties.get("Targets", []):
            function_id = _referenced_logical_id(target.get("Arn"))
            if function_id not in functions:
                warn(f"rule {logical_id}: only Lambda functions of the template run locally; skipped")
                continue
            shaped = sorted({"Input", "InputPath", "InputTransformer"} & set(target))
            if shaped:
                raise TemplateError(f"rule {logical_id}: target input {shaped} is not emulated")
            specs.append(
                Schedule(
                    rule=logical_id,
                    rule_arn=f"arn:aws:events:{resources.region}:{LOCAL_ACCOUNT_ID}:rule/{logical_id}",
                    period_seconds=seconds,
                    function=function_spec(
                        function_id,
                        functions[function_id],
                        resources,
                        assembly_dir=assembly_dir,
                        local_environment=local_environment,
                    ),
                )
            )
    return specs


def _period_seconds(rule: Mapping[str, Any], expression: str) -> float | None:
    """The stage's own period from the rule's metadata, else its ``rate(...)``'s; None for a cron."""
    period = rule.get("Metadata", {}).get(SCHEDULE_PERIOD_METADATA)
    if period is not None:
        return float(period)
    rate = _RATE.match(expression)
    return None if rate is None else float(int(rate["value"]) * _RATE_SECONDS[rate["unit"]])
