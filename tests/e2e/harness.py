"""Driving ``scripts/local_stack.py`` from tests: start, read, stop, and look for leftovers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import boto3
import httpx
import pytest

from devstack.supervisor import SEPARATOR as LOG_SEPARATOR

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
#: Longer than API Gateway's 29 s: the local API answers (504 at worst) before a test gives up.
API_TIMEOUT_SECONDS = 40.0

_T = TypeVar("_T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie has already exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (e.g. the stack's LOCAL_DIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def eventually(check: Callable[[], _T | None], timeout: float = 20.0, what: str = "condition") -> _T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class ApiResponse(NamedTuple):
    """An HTTP answer: ``status, headers, body = ...``; ``body`` is parsed when it is JSON."""

    status: int
    headers: httpx.Headers  # case-insensitive, as HTTP headers are
    body: Any


def call_api(
    base_url: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    content: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> ApiResponse:
    """One request to a local API, as the booking app sends it (no auth locally)."""
    response = httpx.request(
        method,
        base_url + path,
        json=json,
        content=content,
        headers=headers,
        params=params,
        timeout=API_TIMEOUT_SECONDS,
    )
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    body = response.json() if is_json and response.content else response.text
    return ApiResponse(response.status_code, response.headers, body)


@dataclass
class RunningStack:
    """A running ``scripts/local_stack.py`` and everything it printed so far."""

    process: subprocess.Popen[str]
    local_dir: Path
    #: The ``LOCAL_*`` variables it was started with (its ports).
    variables: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def stack_file(self) -> Path:
        return self.local_dir / "stack.json"

    def stack_json(self) -> dict[str, Any]:
        description: dict[str, Any] = json.loads(self.stack_file.read_text())
        return description

    def output(self) -> str:
        return "\n".join(self.lines)

    def lines_of(self, component: str) -> list[str]:
        """What ``component`` printed: its lines of the log, without their ``<component> | ``."""
        prefix = f"{component}{LOG_SEPARATOR}"
        return [line.removeprefix(prefix) for line in list(self.lines) if line.startswith(prefix)]

    def handler_lines(self, component: str) -> list[dict[str, Any]]:
        """The Powertools JSON lines of the handlers ``component`` runs (a worker, ``api``...)."""
        return [json.loads(line) for line in self.lines_of(component) if line.startswith("{")]

    def metrics(self) -> list[dict[str, Any]]:
        """The EMF blobs the handlers printed, from ``metrics.jsonl``."""
        path = Path(self.stack_json()["metrics_file"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def tail(self, count: int = 60) -> str:
        return "\n".join(self.lines[-count:])

    def api(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> ApiResponse:
        """``(status, headers, body)`` of one request to the stack's API, e.g.
        ``stack.api("POST", "/v1/holds", json={...})``."""
        return call_api(
            self.stack_json()["api_url"],
            method,
            path,
            json=json,
            content=content,
            headers=headers,
            params=params,
        )

    @property
    def inbox_url(self) -> str:
        return str(self.stack_json()["inbox_url"])

    def sqs(self) -> Any:
        return self._session().client("sqs", endpoint_url=self.stack_json()["aws_endpoint_url"])

    def dynamodb(self) -> Any:
        return self._session().client("dynamodb", endpoint_url=self.stack_json()["aws_endpoint_url"])

    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=self.stack_json()["region"],
        )

    def delivered(self) -> list[Message]:
        """Every message the SMTP sink stored in the Maildir."""
        maildir = Path(self.stack_json()["maildir"])
        files = sorted([*maildir.glob("new/*"), *maildir.glob("cur/*")])
        return [message_from_bytes(path.read_bytes()) for path in files]

    def delivered_with(self, dedupe_key: str) -> list[Message]:
        return [message for message in self.delivered() if message["X-Dedupe-Key"] == dedupe_key]

    def mail_log(self) -> list[dict[str, Any]]:
        path = Path(self.stack_json()["mail_log"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def webhooks(self) -> list[dict[str, Any]]:
        """Every request the webhook sink received, in order (one JSON line each)."""
        path = Path(self.stack_json()["webhooks_file"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _relay(stack: RunningStack) -> None:
    assert stack.process.stdout is not None
    for raw in stack.process.stdout:
        line = raw.rstrip("\n")
        stack.lines.append(line)
        if line == "ready":
            stack.ready.set()


def start(local_dir: Path, **variables: str) -> RunningStack:
    """Start a stack on free ports; ``variables`` (``LOCAL_API_PORT="3000"``...) override them."""
    local = {
        "LOCAL_DIR": str(local_dir),
        "LOCAL_AWS_PORT": str(free_port()),
        "LOCAL_SMTP_PORT": str(free_port()),
        "LOCAL_API_PORT": str(free_port()),
        "LOCAL_WEBHOOK_PORT": str(free_port()),
        "LOCAL_INBOX_PORT": str(free_port()),
        **variables,
    }
    env = {**os.environ, **local}
    process = subprocess.Popen(
        [sys.executable, "scripts/local_stack.py"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own session, as a terminal's foreground job: signals come from us only.
        start_new_session=True,
    )
    stack = RunningStack(process=process, local_dir=local_dir, variables=local)
    threading.Thread(target=_relay, args=(stack,), daemon=True).start()
    return stack


def stop(stack: RunningStack) -> int:
    """SIGINT, as Ctrl-C; the whole session is killed if it does not stop in time."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
    try:
        return stack.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(stack.process.pid, signal.SIGKILL)
        stack.process.wait()
        pytest.fail(f"the local stack did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of SIGINT")
