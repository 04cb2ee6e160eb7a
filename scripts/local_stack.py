"""`make run`: the service on loopback, fresh each time (CONTRACT §3).

    .venv/bin/python scripts/local_stack.py

Starts moto server, synthesizes the ``local`` stage, creates its queues and tables in moto from
the template, starts the SMTP sink and one worker per SQS event source mapping (each invoking
the real Lambda handler), then writes ``$LOCAL_DIR/stack.json`` and prints ``ready``. A component
that dies is restarted and ``stack.json`` rewritten; moto dying ends the stack. Ctrl-C (or
SIGTERM, SIGHUP) stops everything and removes ``stack.json``.

Environment: ``LOCAL_AWS_PORT`` (4566), ``LOCAL_SMTP_PORT`` (1025), ``LOCAL_DIR`` (``.local``,
relative to the repository root); ``LOCAL_API_PORT`` (3000) and ``LOCAL_WEBHOOK_PORT`` (8025) are
reserved for the API and the webhook sink.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.local_resources import (
    Names,
    TemplateError,
    create_resources,
    friendly_names,
    load_template,
    queue_worker_specs,
)
from devstack.supervisor import (
    Component,
    Output,
    StackFailed,
    Supervisor,
    ensure_port_free,
    port_accepts,
    run_to_completion,
)
from devstack.worker import READY_MARKER, QueueWorkerSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
REGION = "eu-west-1"
STAGE = "local"
STACK_NAME = "BookingDurability-local"
READY_TIMEOUT_SECONDS = 60.0
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalConfig:
        return cls(
            local_dir=REPO_ROOT / env.get("LOCAL_DIR", ".local"),  # an absolute LOCAL_DIR stays as it is
            aws_port=int(env.get("LOCAL_AWS_PORT", "4566")),
            smtp_port=int(env.get("LOCAL_SMTP_PORT", "1025")),
            api_port=int(env.get("LOCAL_API_PORT", "3000")),
            webhook_port=int(env.get("LOCAL_WEBHOOK_PORT", "8025")),
        )

    @property
    def aws_endpoint_url(self) -> str:
        return f"http://{HOST}:{self.aws_port}"

    @property
    def maildir(self) -> Path:
        return self.local_dir / "maildir"

    @property
    def mail_log(self) -> Path:
        return self.local_dir / "mail-log.jsonl"

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
        """Forget the previous run: its mail, its stack.json, its synthesized template."""
        for folder in (self.maildir, self.run_dir, self.assembly_dir):
            shutil.rmtree(folder, ignore_errors=True)
        for file in (self.mail_log, self.stack_file):
            file.unlink(missing_ok=True)
        self.run_dir.mkdir(parents=True)


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
            [python, "-m", "moto.server", "-H", HOST, "-p", str(config.aws_port)],
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
    ]


def queue_worker(spec: QueueWorkerSpec, config: LocalConfig, env: Mapping[str, str]) -> Component:
    spec_file = config.run_dir / f"{spec.name}.json"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    return Component(
        spec.name,
        [sys.executable, "scripts/devstack/worker.py", str(spec_file)],
        env=env,
        ready_line=READY_MARKER,
        # The handler's own lines are its Powertools JSON: relayed as they are.
        passthrough_stdout=True,
    )


def write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class LocalStack:
    """The stack of one ``make run``: brings it up, publishes ``stack.json``, keeps it running."""

    def __init__(self, config: LocalConfig, output: Output, stop: threading.Event) -> None:
        self.config = config
        self.output = output
        self.stop = stop
        self.supervisor = Supervisor(cwd=str(REPO_ROOT), output=output, on_change=self.publish)
        self.names: Names | None = None
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
        self.supervisor.wait_ready(READY_TIMEOUT_SECONDS, self.stop)
        if self.stop.is_set():
            return
        self.publish()
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
            raise StackFailed(f"synthesizing the {STAGE} stage failed (exit code {code}); see [synth] above")
        return load_template(self.config.assembly_dir / f"{STACK_NAME}.template.json")

    def create_resources(self, template: Mapping[str, Any]) -> list[QueueWorkerSpec]:
        """Make the template's queues and tables in moto; the workers its mappings need."""
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
        return queue_worker_specs(
            template,
            resources,
            self.names,
            assembly_dir=self.config.assembly_dir,
            python_path=[str(path) for path in sorted((REPO_ROOT / "layers").glob("*/python"))],
            local_environment=function_overrides(self.config),
            warn=self.say,
        )

    def description(self) -> dict[str, Any]:
        """What ``stack.json`` says: where everything is, and which process runs what."""
        assert self.names is not None
        return {
            "aws_endpoint_url": self.config.aws_endpoint_url,
            "region": REGION,
            "queues": {name: queue.url for name, queue in self.names.queues.items()},
            "tables": {name: table.name for name, table in self.names.tables.items()},
            "maildir": str(self.config.maildir),
            "mail_log": str(self.config.mail_log),
            "processes": self.supervisor.pids(),
        }

    def publish(self) -> None:
        write_json_atomically(self.config.stack_file, self.description())
        self.published = True

    def close(self) -> None:
        """Stop every process; a stack.json naming dead processes would only mislead."""
        self.supervisor.stop_all()
        if self.published:  # else it may be another stack's, still running on these ports
            self.config.stack_file.unlink(missing_ok=True)


def main() -> int:
    config = LocalConfig.from_env(os.environ)
    output = Output()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
