"""`make run`: the service on loopback, fresh each time (README.md#quick-start).

    .venv/bin/python scripts/local_stack.py

Starts moto server (its DynamoDB made atomic: ``devstack/atomic_moto.py``), synthesizes the
``local`` stage, creates its queues and tables in moto from the template, starts the SMTP sink,
the webhook sink, one worker per SQS event source mapping (each invoking the real Lambda
handler), one stream worker per pipe from a table's stream to a queue (``devstack/stream_worker.py``),
the scheduler, which runs the functions that EventBridge schedules run in AWS (the drift sweep)
on the stage's own periods (``devstack/scheduler.py``), the HTTP API (the template's REST API
routes, each invoking its real handler: see ``devstack/api_server.py``) and the inbox page
(``devstack/inbox.py``: the delivered emails, the dead letters and the webhook deliveries),
then writes ``$LOCAL_DIR/stack.json`` and prints ``ready``. A component that dies is restarted
and ``stack.json`` rewritten; moto dying ends the stack. Ctrl-C (or SIGTERM, SIGHUP) stops
everything and removes ``stack.json``.

A function whose ``WEBHOOK_URL`` is a loopback URL (the notifier, on the local stage) posts to
this run's webhook sink, on ``LOCAL_WEBHOOK_PORT``, signing with the template's ``WEBHOOK_SECRET``
and, as during a rotation, also with ``WEBHOOK_PREVIOUS_SECRET`` when ``make run`` is given one
(every component gets this process's environment, real AWS credentials aside).

Its standard output is the stack's log: every component's lines, each as ``<component> | <line>``
(a Lambda handler's Powertools JSON line unchanged after the prefix), and the one bare line
``ready``; the EMF metric blobs the handlers print go to ``$LOCAL_DIR/metrics.jsonl`` instead
(``devstack/supervisor.py``).

Environment: the ``LOCAL_*`` variables, each with its default and meaning in README.md#the-local-stack
(the ports, ``LOCAL_DIR``, ``LOCAL_API_CONCURRENCY``, ``LOCAL_VERBOSE``); a port or count that is
not a whole number in its range stops the stack before anything starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from devstack.api_gateway import ApiSpec, api_spec
from devstack.api_server import DEFAULT_CONCURRENCY
from devstack.api_server import READY_MARKER as API_READY_MARKER
from devstack.files import write_json_atomically
from devstack.local_resources import (
    Names,
    TemplateError,
    create_resources,
    friendly_names,
    load_template,
    queue_worker_specs,
    schedule_specs,
    stream_worker_specs,
)
from devstack.scheduler import READY_MARKER as SCHEDULER_READY_MARKER
from devstack.schedules import Schedule, SchedulerSpec
from devstack.stream_worker import READY_MARKER as STREAM_READY_MARKER
from devstack.stream_worker import StreamWorkerSpec
from devstack.supervisor import (
    Component,
    Output,
    StackFailed,
    Supervisor,
    ensure_port_free,
    port_accepts,
    run_to_completion,
)
from devstack.worker import READY_MARKER, FunctionSpec, QueueWorkerSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
REGION = "eu-west-1"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STAGE = "local"
STACK_NAME = "BookingDurability-local"
READY_TIMEOUT_SECONDS = 60.0
PORTS = (1, 65535)
#: Execution environments per API function: each is a process with the handler imported.
CONCURRENCY = (1, 64)
# moto accepts any credentials; these make sure no real ones are ever used by a local process.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_REAL_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")
# What the CDK writes for SAM-style local tools: where each function's code is, unstaged, so
# workers import lambdas/<function>/ itself (see devstack.local_resources).
SYNTH_CONTEXT = {
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:disable-asset-staging": True,
    "aws:cdk:enable-path-metadata": True,
}


@dataclass(frozen=True)
class LocalConfig:
    local_dir: Path
    aws_port: int = 4566
    smtp_port: int = 1025
    api_port: int = 3000
    webhook_port: int = 8025
    inbox_port: int = 8026
    api_concurrency: int = DEFAULT_CONCURRENCY

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalConfig:
        """The settings of ``env``'s ``LOCAL_*`` variables. Raises :class:`StackFailed`, naming the
        variable, for a value that is not a number in its range."""
        return cls(
            local_dir=REPO_ROOT / env.get("LOCAL_DIR", ".local"),  # an absolute LOCAL_DIR stays as it is
            aws_port=_whole_number(env, "LOCAL_AWS_PORT", 4566, *PORTS),
            smtp_port=_whole_number(env, "LOCAL_SMTP_PORT", 1025, *PORTS),
            api_port=_whole_number(env, "LOCAL_API_PORT", 3000, *PORTS),
            webhook_port=_whole_number(env, "LOCAL_WEBHOOK_PORT", 8025, *PORTS),
            inbox_port=_whole_number(env, "LOCAL_INBOX_PORT", 8026, *PORTS),
            api_concurrency=_whole_number(env, "LOCAL_API_CONCURRENCY", DEFAULT_CONCURRENCY, *CONCURRENCY),
        )

    @property
    def aws_endpoint_url(self) -> str:
        return f"http://{HOST}:{self.aws_port}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def maildir(self) -> Path:
        return self.local_dir / "maildir"

    @property
    def mail_log(self) -> Path:
        return self.local_dir / "mail-log.jsonl"

    @property
    def webhooks_file(self) -> Path:
        return self.local_dir / "webhooks.jsonl"

    @property
    def webhook_down_file(self) -> Path:
        """While it exists, the webhook sink answers 503 (a receiver outage, simulated)."""
        return self.local_dir / "webhook-down"

    @property
    def webhook_sink_url(self) -> str:
        return f"http://{HOST}:{self.webhook_port}"

    @property
    def inbox_url(self) -> str:
        return f"http://{HOST}:{self.inbox_port}/"

    @property
    def metrics_file(self) -> Path:
        """The EMF blobs the handlers print (Powertools Metrics), one a line: not on the console."""
        return self.local_dir / "metrics.jsonl"

    @property
    def stack_file(self) -> Path:
        return self.local_dir / "stack.json"

    @property
    def assembly_dir(self) -> Path:
        return self.local_dir / "cdk.out"

    @property
    def run_dir(self) -> Path:
        return self.local_dir / "run"

    def start_fresh(self) -> None:
        """Forget the previous run: its mail, webhooks and metrics, its stack.json, its synthesized
        template, its workers' state (the stream workers' positions)."""
        for folder in (self.maildir, self.run_dir, self.assembly_dir):
            shutil.rmtree(folder, ignore_errors=True)
        # A leftover webhook-down would start this run with its webhook receiver down.
        files = (
            self.mail_log,
            self.webhooks_file,
            self.webhook_down_file,
            self.metrics_file,
            self.stack_file,
        )
        for file in files:
            file.unlink(missing_ok=True)
        self.run_dir.mkdir(parents=True)


def _whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdecimal()) or not low <= int(text) <= high:
        raise StackFailed(f"{name} is {text!r}: a whole number from {low} to {high} (default {default})")
    return int(text)


def child_environment(config: LocalConfig) -> dict[str, str]:
    """Every component's environment: the local endpoint and dummy credentials, never real ones."""
    env = {k: v for k, v in os.environ.items() if k not in _REAL_AWS_VARIABLES}
    return {
        **env,
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": config.aws_endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "PYTHONUNBUFFERED": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }


def function_overrides(config: LocalConfig) -> dict[str, str]:
    """What a Lambda function's own environment gets on top, locally."""
    return {
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": config.aws_endpoint_url,
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(config.smtp_port),
    }


def servers(config: LocalConfig, env: Mapping[str, str]) -> list[Component]:
    """The stack's servers; adding one is adding a line (its readiness is its port)."""
    python = sys.executable
    return [
        Component(
            "aws",
            # moto with its DynamoDB calls serialized: conditional writes and transactions are
            # atomic, as in AWS (concurrent holds depend on it).
            [python, "-m", "devstack.atomic_moto", "-H", HOST, "-p", str(config.aws_port)],
            env=env,
            ready=port_accepts(HOST, config.aws_port),
            essential=True,
            death_note="moto server is gone, and every queue, table and message with it; start again",
        ),
        Component(
            "mail_sink",
            [
                *(python, "scripts/devstack/mail_sink.py", "--host", HOST, "--port", str(config.smtp_port)),
                *("--maildir", str(config.maildir), "--mail-log", str(config.mail_log)),
            ],
            env=env,
            ready=port_accepts(HOST, config.smtp_port),
        ),
        Component(
            "webhook_sink",
            [
                *(python, "scripts/devstack/webhook_sink.py", "--host", HOST),
                *("--port", str(config.webhook_port), "--webhooks-file", str(config.webhooks_file)),
                *("--down-file", str(config.webhook_down_file)),
            ],
            env=env,
            ready=port_accepts(HOST, config.webhook_port),
        ),
    ]


def queue_worker(spec: QueueWorkerSpec, config: LocalConfig, env: Mapping[str, str]) -> Component:
    spec_file = config.run_dir / f"{spec.name}.json"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    return Component(
        spec.name,
        [sys.executable, "scripts/devstack/worker.py", str(spec_file)],
        env=env,
        ready_line=READY_MARKER,
    )


def stream_worker(spec: StreamWorkerSpec, config: LocalConfig, env: Mapping[str, str]) -> Component:
    spec_file = config.run_dir / f"{spec.name}.json"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    return Component(
        spec.name,
        [sys.executable, "scripts/devstack/stream_worker.py", str(spec_file)],
        env=env,
        ready_line=STREAM_READY_MARKER,
    )


def scheduler(schedules: list[Schedule], config: LocalConfig, env: Mapping[str, str]) -> Component:
    spec_file = config.run_dir / "scheduler.json"
    spec_file.write_text(SchedulerSpec(REGION, schedules).to_json(), encoding="utf-8")
    return Component(
        "scheduler",
        [sys.executable, "scripts/devstack/scheduler.py", str(spec_file)],
        env=env,
        ready_line=SCHEDULER_READY_MARKER,
    )


def with_local_webhook(function: FunctionSpec, config: LocalConfig) -> FunctionSpec:
    """A function posting to a loopback webhook posts to this run's webhook sink instead (the
    template's URL names the default port); its path stays the template's."""
    url = function.environment.get("WEBHOOK_URL")
    if url is None:
        return function
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK_HOSTS:
        return function
    local = parts._replace(netloc=f"{HOST}:{config.webhook_port}").geturl()
    return replace(function, environment={**function.environment, "WEBHOOK_URL": local})


def api(spec: ApiSpec, config: LocalConfig, env: Mapping[str, str]) -> Component:
    spec_file = config.run_dir / "api.json"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    return Component(
        "api",
        [
            *(sys.executable, "scripts/devstack/api_server.py", str(spec_file)),
            *("--host", HOST, "--port", str(config.api_port), "--concurrency", str(config.api_concurrency)),
        ],
        env=env,
        ready_line=API_READY_MARKER,
    )


def inbox(names: Names, config: LocalConfig, env: Mapping[str, str]) -> Component:
    """The inbox page: the Maildir, the DLQs (read without consuming) and the webhook sink's file."""
    dlqs = [
        f"{kind}={names.queues[kind].url},{names.queues[f'{kind}_dlq'].url}"
        for kind in ("email", "notifications")
        if kind in names.queues and f"{kind}_dlq" in names.queues
    ]
    return Component(
        "inbox",
        [
            *(sys.executable, "scripts/devstack/inbox.py", "--host", HOST, "--port", str(config.inbox_port)),
            *("--maildir", str(config.maildir), "--webhooks-file", str(config.webhooks_file)),
            *("--aws-endpoint-url", config.aws_endpoint_url, "--region", REGION),
            *(argument for dlq in dlqs for argument in ("--dlq", dlq)),
        ],
        env=env,
        ready=port_accepts(HOST, config.inbox_port),
    )


class LocalStack:
    """The stack of one ``make run``: brings it up, publishes ``stack.json``, keeps it running."""

    def __init__(self, config: LocalConfig, output: Output, stop: threading.Event) -> None:
        self.config = config
        self.output = output
        self.stop = stop
        self.supervisor = Supervisor(cwd=str(REPO_ROOT), output=output, on_change=self.publish)
        self.names: Names | None = None
        self.api: ApiSpec | None = None
        self.streams: list[StreamWorkerSpec] = []
        self.schedules: list[Schedule] = []
        self.webhook_function: FunctionSpec | None = None
        self.published = False

    def say(self, text: str) -> None:
        self.output.line(text, "local_stack")

    def run(self) -> None:
        """Start everything, print ``ready``, and supervise until stopped. Raises
        :class:`StackFailed` (or :class:`TemplateError`) when the stack cannot run."""
        config = self.config
        env = child_environment(config)
        # Ports first: a second `make run` must not wipe the files of the one already running.
        ensure_port_free(HOST, config.aws_port, "LOCAL_AWS_PORT")
        ensure_port_free(HOST, config.smtp_port, "LOCAL_SMTP_PORT")
        ensure_port_free(HOST, config.api_port, "LOCAL_API_PORT")
        ensure_port_free(HOST, config.webhook_port, "LOCAL_WEBHOOK_PORT")
        ensure_port_free(HOST, config.inbox_port, "LOCAL_INBOX_PORT")
        config.start_fresh()
        for component in servers(config, env):
            self.supervisor.start(component)
        # The synth takes the longest: the servers boot meanwhile.
        template = self.synthesize(env)
        if template is None:
            return
        self.supervisor.wait_ready(READY_TIMEOUT_SECONDS, self.stop)
        if self.stop.is_set():
            return
        for spec in self.create_resources(template):
            self.supervisor.start(queue_worker(spec, config, env))
        for stream in self.streams:
            self.supervisor.start(stream_worker(stream, config, env))
        if self.schedules:
            self.supervisor.start(scheduler(self.schedules, config, env))
        else:
            self.say("the template schedules nothing: no scheduler component")
        if self.api is not None:
            self.supervisor.start(api(self.api, config, env))
        if self.names is None:
            raise RuntimeError("the inbox starts after the resources are created and named")
        self.supervisor.start(inbox(self.names, config, env))
        self.supervisor.wait_ready(READY_TIMEOUT_SECONDS, self.stop)
        if self.stop.is_set():
            return
        self.publish()
        self.say(self.where())
        self.output.line("ready")
        self.supervisor.watch(self.stop)

    def synthesize(self, env: Mapping[str, str]) -> dict[str, Any] | None:
        """The local stage's template (``None`` if stopped meanwhile)."""
        code = run_to_completion(
            "synth",
            [sys.executable, "app.py", "-c", f"stage={STAGE}", "-o", str(self.config.assembly_dir)],
            cwd=str(REPO_ROOT),
            output=self.output,
            stop=self.stop,
            env={**env, "CDK_CONTEXT_JSON": json.dumps(SYNTH_CONTEXT)},
        )
        if code is None:
            return None
        if code != 0:
            raise StackFailed(
                f"synthesizing the {STAGE} stage failed (exit code {code}); see the `synth |` lines above"
            )
        return load_template(self.config.assembly_dir / f"{STACK_NAME}.template.json")

    def create_resources(self, template: Mapping[str, Any]) -> list[QueueWorkerSpec]:
        """Make the template's queues and tables in moto; the workers its mappings need, (in
        ``self.streams``) the stream workers its pipes need, (in ``self.schedules``) what its
        scheduled rules run, and (in ``self.api``) the REST API's routes and functions."""
        import boto3  # only here: importing boto3 costs a noticeable part of a second

        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        endpoint = self.config.aws_endpoint_url
        resources = create_resources(
            template,
            sqs=session.client("sqs", endpoint_url=endpoint),
            dynamodb=session.client("dynamodb", endpoint_url=endpoint),
            region=REGION,
            stack_name=STACK_NAME,
        )
        self.names = friendly_names(template, resources)
        assembly_dir = self.config.assembly_dir
        overrides = function_overrides(self.config)
        self.api = api_spec(
            template,
            resources,
            assembly_dir=assembly_dir,
            local_environment=overrides,
            warn=self.say,
        )
        if self.api is None:
            self.say("the template has no REST API: no api component")
        else:
            functions = {name: with_local_webhook(f, self.config) for name, f in self.api.functions.items()}
            self.api = replace(self.api, functions=functions)
        workers = [
            replace(spec, function=with_local_webhook(spec.function, self.config))
            for spec in queue_worker_specs(
                template,
                resources,
                self.names,
                assembly_dir=assembly_dir,
                local_environment=overrides,
                warn=self.say,
            )
        ]
        self.streams = stream_worker_specs(
            template,
            resources,
            self.names,
            endpoint_url=endpoint,
            state_dir=self.config.run_dir,
            warn=self.say,
        )
        self.schedules = [
            replace(schedule, function=with_local_webhook(schedule.function, self.config))
            for schedule in schedule_specs(
                template,
                resources,
                assembly_dir=assembly_dir,
                local_environment=overrides,
                warn=self.say,
            )
        ]
        self.webhook_function = self._posting_to_the_sink(
            [*(spec.function for spec in workers), *(self.api.functions.values() if self.api else ())]
        )
        return workers

    def _posting_to_the_sink(self, functions: Iterable[FunctionSpec]) -> FunctionSpec | None:
        """The function that posts to the webhook sink (the notifier), if any."""
        sink = urlsplit(self.config.webhook_sink_url).netloc
        posting = [f for f in functions if urlsplit(f.environment.get("WEBHOOK_URL", "")).netloc == sink]
        if not posting:
            self.say("no function posts to the webhook sink: its requests can only come from elsewhere")
        return posting[0] if posting else None

    def description(self) -> dict[str, Any]:
        """What ``stack.json`` says: where everything is, and which process runs what."""
        if self.names is None:
            raise RuntimeError("the stack is described once its resources are created and named")
        api_url = {"api_url": self.config.api_url} if self.api is not None else {}
        return {
            **api_url,
            "aws_endpoint_url": self.config.aws_endpoint_url,
            "region": REGION,
            "queues": {name: queue.url for name, queue in self.names.queues.items()},
            "tables": {name: table.name for name, table in self.names.tables.items()},
            "maildir": str(self.config.maildir),
            "mail_log": str(self.config.mail_log),
            "webhooks_file": str(self.config.webhooks_file),
            "metrics_file": str(self.config.metrics_file),
            **self._webhook(),
            "inbox_url": self.config.inbox_url,
            "processes": self.supervisor.pids(),
        }

    def _webhook(self) -> dict[str, str | None]:
        """Where the local notifier posts (the sink when no function does), and its signing
        secret: the local stage's development secret, from the template."""
        function = self.webhook_function
        if function is None:
            return {"webhook_url": f"{self.config.webhook_sink_url}/", "webhook_secret": None}
        return {
            "webhook_url": function.environment["WEBHOOK_URL"],
            "webhook_secret": function.environment.get("WEBHOOK_SECRET"),
        }

    def where(self) -> str:
        """One line for the person watching: where to point a client, a browser and the tools."""
        api = f"API {self.config.api_url}, " if self.api is not None else ""
        return (
            f"{api}inbox page {self.config.inbox_url}, "
            f"SMTP 127.0.0.1:{self.config.smtp_port}, stack.json {self.config.stack_file}"
        )

    def publish(self) -> None:
        write_json_atomically(self.config.stack_file, self.description())
        self.published = True

    def close(self) -> None:
        """Stop every process; a stack.json naming dead processes would only mislead."""
        self.supervisor.stop_all()
        if self.published:  # else it may be another stack's, still running on these ports
            self.config.stack_file.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    # No options (the environment configures it), but --help answers rather than starting a stack.
    usage = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    usage.parse_args(argv)
    try:
        config = LocalConfig.from_env(os.environ)
    except StackFailed as failure:
        Output().line(f"cannot start: {failure}", "local_stack")
        return 1
    output = Output(metrics_file=config.metrics_file)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            output.line(f"{signal.Signals(signum).name}: stopping every component", "local_stack")
            stop.set()

    # SIGHUP too: a closed terminal must not orphan the components (they have sessions of their own).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    stack = LocalStack(config, output, stop)
    try:
        stack.run()
    except StackFailed as failure:
        stack.say(f"stopping: {failure}")
        return 1
    except TemplateError as error:
        stack.say(f"stopping: the {STAGE} template cannot run locally: {error}")
        return 1
    finally:
        stack.close()
        output.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
