"""Runs the local stack's processes: starts them, relays their output, restarts the ones that die.

Every component runs in its own process group (its own session), so a terminal's Ctrl-C reaches
only the supervisor, which then stops each group as a whole (children of children included) and
waits for it: nothing is left behind.

The supervisor is the one place a component's output reaches the console: it reads each child's
stdout and stderr through pipes, line by line, and hands every line to :class:`Output`, which
writes it as ``<component> | <line>`` (a Lambda handler's Powertools JSON line unchanged after
the prefix; a traceback's every line prefixed) and sends the EMF metric blobs Powertools Metrics
prints to the metrics file instead. A component that dies has its last lines relayed before the
supervisor says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: A component that lived this long before dying is restarted at once; one that dies faster is
#: restarted with a growing pause, so a crash at start-up does not spin the CPU.
STABLE_AFTER_SECONDS = 30.0
MAX_RESTART_PAUSE_SECONDS = 5.0
#: How long a stopping group gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 5.0


#: Between a component's name and its line on the console.
SEPARATOR = " | "
#: How long a dead component's pipes get to deliver its last lines before the supervisor goes on.
DRAIN_SECONDS = 2.0

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StackFailed(RuntimeError):
    """The stack cannot run (or go on running); the message says why."""


def is_metric_blob(text: str) -> bool:
    """Whether ``text`` is an EMF document (``{"_aws": {"CloudWatchMetrics": [...]}, ...}``), as
    Powertools Metrics prints one per flush. CloudWatch turns them into metrics; on a console they
    are noise between the log lines."""
    if not text.startswith("{") or '"_aws"' not in text:
        return False
    try:
        document = json.loads(text)
    except ValueError:
        return False
    aws = document.get("_aws") if isinstance(document, dict) else None
    return isinstance(aws, dict) and "CloudWatchMetrics" in aws


class Output:
    """``make run``'s standard output, one whole line at a time, from many threads.

    A component's line is written as ``<component> | <text>``; a line without a component is
    written bare (``ready``, which tools wait for exactly). With ``metrics_file``, a component's
    EMF blob is appended there instead, one a line, as printed.
    """

    def __init__(self, stream: IO[str] | None = None, *, metrics_file: Path | None = None) -> None:
        self._stream = stream or sys.stdout
        self._metrics_file = metrics_file
        self._metrics: IO[str] | None = None
        # Reentrant: the stack's signal handler writes a line from the main thread, which may be
        # interrupted inside this very method.
        self._lock = threading.RLock()

    def line(self, text: str, component: str | None = None) -> None:
        with self._lock:
            if component is not None and self._metrics_file is not None and is_metric_blob(text):
                with contextlib.suppress(OSError):  # else it is shown rather than lost
                    self._write_metric(self._metrics_file, text)
                    return
            # A console gone (a closed pipe) loses the line; the pumps must go on draining the
            # children's pipes, or a child blocks on a full one.
            with contextlib.suppress(OSError, ValueError):
                self._stream.write(f"{component}{SEPARATOR}{text}\n" if component else f"{text}\n")
                self._stream.flush()

    def _write_metric(self, path: Path, text: str) -> None:
        if self._metrics is None:
            # Opened on the first blob: by then the run has started fresh (no previous run's file).
            path.parent.mkdir(parents=True, exist_ok=True)
            self._metrics = path.open("a", encoding="utf-8")
        self._metrics.write(f"{text}\n")
        self._metrics.flush()

    def close(self) -> None:
        with self._lock:
            if self._metrics is not None:
                self._metrics.close()
                self._metrics = None


def port_accepts(host: str, port: int) -> Callable[[], bool]:
    """A readiness probe: true once something accepts TCP connections on ``host:port``."""

    def probe() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        return False

    return probe


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Fail early, and clearly, when another process (another local stack?) listens on ``port``.

    The probe binds as the servers do, with ``SO_REUSEADDR``: connections of a stack stopped a
    moment ago, left in TIME_WAIT, do not hold the port (the servers themselves will bind), and
    a process listening on it still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise StackFailed(
                f"{host}:{port} ({what}) is in use: is another local stack running? "
                "Stop it, or choose other ports with the LOCAL_*_PORT variables"
            ) from None


@dataclass(frozen=True)
class Component:
    """A long-running process of the stack.

    ``ready`` is polled until true; ``ready_line`` is a fragment of a log line the component
    prints once it is ready. Without either, a component is ready once started. ``essential``
    means its death ends the stack instead of being restarted (moto: its state dies with it);
    ``death_note`` then tells the user what that means.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    ready: Callable[[], bool] | None = None
    ready_line: str | None = None
    essential: bool = False
    death_note: str = ""


@dataclass
class _Running:
    component: Component
    process: subprocess.Popen[bytes]
    started_at: float
    ready_seen: threading.Event = field(default_factory=threading.Event)
    pumps: list[threading.Thread] = field(default_factory=list)
    announced: bool = False

    def is_ready(self) -> bool:
        if self.component.ready_line is not None and not self.ready_seen.is_set():
            return False
        return self.component.ready is None or self.component.ready()

    def drain(self) -> None:
        """Wait (briefly) for the exited process's last lines to be relayed."""
        _join(self.pumps, DRAIN_SECONDS)


def _spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: str,
    output: Output,
    *,
    on_line: Callable[[str], None] | None = None,
) -> tuple[subprocess.Popen[bytes], list[threading.Thread]]:
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A session of its own: the terminal's Ctrl-C reaches the supervisor only, which stops
        # the whole group itself.
        start_new_session=True,
    )
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("the component was started without its output pipes")
    pumps = [_pump(stream, output, name, on_line) for stream in (process.stdout, process.stderr)]
    return process, pumps


def _pump(
    stream: IO[bytes], output: Output, component: str, on_line: Callable[[str], None] | None
) -> threading.Thread:
    """Relay ``stream`` line by line until it ends: at the child's exit, once the pipe has given
    up its last (even unterminated) line."""

    def relay() -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                # Colour codes (werkzeug's) mean nothing in a log; a JSON line never has one raw.
                text = _ANSI_ESCAPE.sub("", raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                if on_line is not None:
                    on_line(text)
                output.line(text, component)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return thread


def _join(threads: Sequence[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # The group id is the leader's pid (start_new_session); members may outlive the leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _stop_groups(processes: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        # Also reaps stragglers of a group whose leader already exited.
        _signal_group(process, signal.SIGKILL)
    for process in processes:
        process.wait()


class Supervisor:
    """Starts components, restarts the ones that die, and stops them all.

    ``on_change`` is called (from :meth:`watch`'s thread) whenever a restarted component is
    ready again, so the caller can publish its new pid.
    """

    def __init__(self, *, cwd: str, output: Output, on_change: Callable[[], None] | None = None) -> None:
        self._cwd = cwd
        self._output = output
        self._on_change = on_change
        self._running: dict[str, _Running] = {}
        self._pending_restart: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        self._output.line(text, "local_stack")

    def start(self, component: Component) -> None:
        """Start ``component``; it is ready once :meth:`wait_ready` says so."""
        ready_seen = threading.Event()

        def on_line(text: str) -> None:
            if component.ready_line and component.ready_line in text:
                ready_seen.set()

        process, pumps = _spawn(
            component.name,
            component.argv,
            component.env,
            self._cwd,
            self._output,
            on_line=on_line if component.ready_line else None,
        )
        running = _Running(component, process, time.monotonic(), ready_seen=ready_seen, pumps=pumps)
        with self._lock:
            self._running[component.name] = running

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {name: running.process.pid for name, running in self._running.items()}

    def wait_ready(self, timeout: float, stop: threading.Event) -> None:
        """Block until every started component is ready; raise :class:`StackFailed` if one dies
        (or the wait times out) first. Returns early, without error, when ``stop`` is set."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            with self._lock:
                running = list(self._running.values())
            for item in running:
                code = item.process.poll()
                if code is not None:
                    item.drain()  # its last lines say why, above the failure
                    raise StackFailed(f"{item.component.name} exited with code {code} while starting")
            waiting = [item.component.name for item in running if not item.is_ready()]
            if not waiting:
                for item in running:
                    item.announced = True
                return
            if time.monotonic() > deadline:
                raise StackFailed(f"not ready after {timeout:.0f} s: {', '.join(waiting)}")
            stop.wait(0.1)

    def watch(self, stop: threading.Event, poll_seconds: float = 0.2) -> None:
        """Supervise until ``stop`` is set: restart what dies, publish restarts once ready.

        Raises :class:`StackFailed` when an essential component dies.
        """
        while not stop.wait(poll_seconds):
            self._check_once()

    def _check_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            running = list(self._running.values())
        for item in running:
            name = item.component.name
            code = item.process.poll()
            if code is None:
                if not item.announced and item.is_ready():
                    item.announced = True
                    self.say(f"{name} restarted, pid {item.process.pid}")
                    if self._on_change is not None:
                        self._on_change()
                continue
            if name in self._pending_restart:
                if now >= self._pending_restart[name]:
                    del self._pending_restart[name]
                    self.start(item.component)
                continue
            if item.component.essential:
                item.drain()
                note = f": {item.component.death_note}" if item.component.death_note else ""
                raise StackFailed(f"{name} exited with code {code}{note}")
            # Kill what the dead leader may have left in its group before starting afresh; its
            # last lines (a traceback, say) come before the news of its death.
            _signal_group(item.process, signal.SIGKILL)
            item.drain()
            lived = now - item.started_at
            failures = 0 if lived >= STABLE_AFTER_SECONDS else self._failures.get(name, 0) + 1
            self._failures[name] = failures
            pause = min(MAX_RESTART_PAUSE_SECONDS, 0.25 * 2**failures) if failures else 0.0
            self.say(f"{name} (pid {item.process.pid}) exited with code {code}; restarting in {pause:.1f} s")
            self._pending_restart[name] = now + pause

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every component's whole process group (newest first), waiting for each."""
        with self._lock:
            running = list(reversed(self._running.values()))
            self._running.clear()
        _stop_groups([item.process for item in running], grace)
        _join([pump for item in running for pump in item.pumps], DRAIN_SECONDS)


def run_to_completion(
    name: str,
    argv: Sequence[str],
    *,
    cwd: str,
    output: Output,
    stop: threading.Event,
    env: Mapping[str, str] | None = None,
) -> int | None:
    """Run a one-off command (the synth) with its output relayed; ``None`` if ``stop`` was set,
    in which case its process group has been stopped."""
    process, pumps = _spawn(name, argv, env, cwd, output)
    try:
        while process.poll() is None:
            if stop.wait(0.1):
                return None
        return process.returncode
    finally:
        _stop_groups([process], STOP_GRACE_SECONDS)
        _join(pumps, DRAIN_SECONDS)
