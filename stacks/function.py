"""The one Lambda function builder: every function of the service is made here, the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from booking_durability.metric_names import NAMESPACE
from stacks.settings import LAMBDA_PYTHON_VERSION, StageSettings

#: Each function's code is a folder here, ``lambdas/<function>/``.
LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
#: Where each function's entry point is: ``handler`` in its folder's ``handler.py``.
HANDLER = "handler.handler"
#: The actions the functions' code calls to publish to a queue, and to read a secret's value
#: (through the Powertools cache): nothing describes a queue or a secret first.
SEND_MESSAGE = ("sqs:SendMessage",)
READ_SECRET_VALUE = ("secretsmanager:GetSecretValue",)

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def lambda_runtime() -> lambda_.Runtime:
    """``Runtime.PYTHON_3_13``, named from the version constant the layer build targets too."""
    return getattr(lambda_.Runtime, "PYTHON_" + LAMBDA_PYTHON_VERSION.replace(".", "_"))


def log_retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]


def removal_policy(settings: StageSettings) -> RemovalPolicy:
    """What becomes of stateful resources (tables, log groups, keys) when the stack goes: kept
    on a stage that retains its data, deleted with the stack otherwise."""
    return RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY


def service_log_group(scope: Construct, construct_id: str, settings: StageSettings) -> logs.LogGroup:
    """A log group of the service: the stage's retention and removal policy."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=log_retention(settings.observability.log_retention_days),
        removal_policy=removal_policy(settings),
    )


class ServiceFunction(Construct):
    """A Python function on arm64 with its own role, log group, layers and Powertools settings.

    ``feeds_its_own_trigger`` is for a function that sends to the queue it consumes on purpose.
    The role starts empty: log writing is granted on the function's own log group, and every
    other permission is an :meth:`allow` of the exact actions the function's code calls, on the
    resources it calls them on (tests/integration/test_least_privilege.py records the calls and
    holds the role to them). The CDK's ``grant_*`` helpers grant more than the code calls (a
    table's ``grant_read_write_data`` includes ``DeleteItem``, ``Scan`` and ``BatchWriteItem``),
    so they are not used for functions.
    ``service`` is the Powertools service name: its logs' ``service`` key and its EMF metrics'
    ``service`` dimension.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        service: str,
        description: str,
        code_dir: Path,
        handler: str = HANDLER,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        timeout_seconds: int,
        memory_mb: int,
        reserved_concurrency: int,
        feeds_its_own_trigger: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        _require_handler(code_dir, handler, service)
        #: The Powertools service name: the ``service`` dimension of the function's EMF metrics.
        self.service = service
        tracing = settings.observability.tracing

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{service} ({settings.name})",
        )
        self.log_group = service_log_group(self, "Logs", settings)
        self.log_group.grant_write(self.role)

        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=lambda_runtime(),
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(code_dir), exclude=["**/__pycache__", "**/*.pyc"]),
            handler=handler,
            role=self.role,
            layers=list(layers),
            log_group=self.log_group,
            timeout=Duration.seconds(timeout_seconds),
            memory_size=memory_mb,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
            # Lambda stops a function/queue chain after ~16 rounds it takes for a runaway loop;
            # a function that re-queues on purpose (delay hops, throttle deferrals) must allow it.
            recursive_loop=lambda_.RecursiveLoop.ALLOW
            if feeds_its_own_trigger
            else lambda_.RecursiveLoop.TERMINATE,
            environment={**_powertools_environment(settings, service), **environment},
        )
        self._acknowledge_findings(tracing)

    def _acknowledge_findings(self, tracing: bool) -> None:
        Validations.of(self.function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    f"python{LAMBDA_PYTHON_VERSION} rather than the newest runtime on purpose: the "
                    "layers ship bytecode compiled by a CPython of the runtime's version, and the "
                    "build machines have none newer. Without it every cold start compiles the "
                    "modules it imports (stacks/settings.py, LAMBDA_PYTHON_VERSION)."
                ),
            )
        )
        if tracing:
            Validations.of(self.role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason=(
                        f"Active X-Ray tracing of the {self.service} function: xray:PutTraceSegments and "
                        "xray:PutTelemetryRecords support no resource-level permissions, so the "
                        "statement the Lambda construct adds must name Resource '*'."
                    ),
                )
            )

    def allow(
        self,
        actions: Sequence[str],
        *resources: str,
        conditions: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        """Let the function's role call ``actions`` on ``resources`` (only when ``conditions``
        hold, if given), and nothing else with them."""
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=sorted(actions),
                resources=list(resources),
                conditions=None if conditions is None else {k: dict(v) for k, v in conditions.items()},
            )
        )


def _powertools_environment(settings: StageSettings, service: str) -> dict[str, str]:
    """What every function's Powertools and settings read: stage, service, metrics, logs, tracing."""
    tracing = settings.observability.tracing
    return {
        "STAGE": settings.name,
        "ENABLE_TRACING": "true" if tracing else "false",
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": settings.observability.log_level,
        # Without it Powertools' tracer would try to reach an X-Ray daemon that is not there.
        "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
    }


def _require_handler(code_dir: Path, handler: str, service: str) -> None:
    """Fail the synth with the path to create, rather than deploy a function that cannot start."""
    module = code_dir / (handler.rpartition(".")[0].replace(".", "/") + ".py")
    if not module.is_file():
        raise FileNotFoundError(
            f"{module} is missing: the {service} function's handler {handler!r} lives there"
        )
