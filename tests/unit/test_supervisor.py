"""The local stack's supervisor (``devstack/supervisor.py``) as the one way a component's output
reaches `make run`'s console: each line of a child's stdout and stderr as ``<component> | <line>``,
EMF metric blobs to the metrics file, a dying child's last lines before the news of its death,
and nothing left running once it stops. The children are small Python programs."""

from __future__ import annotations

import io
import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.supervisor import Component, Output, StackFailed, Supervisor, is_metric_blob
from tests.e2e.harness import pid_alive

READY = "child ready"
EMF = {
    "_aws": {
        "Timestamp": 1796662557221,
        "CloudWatchMetrics": [
            {
                "Namespace": "BookingDurability",
                "Dimensions": [["service"]],
                "Metrics": [{"Name": "EmailSent", "Unit": "Count"}],
            }
        ],
    },
    "service": "email-consumer",
    "EmailSent": [1.0],
}
HANDLER_LINE = {"level": "INFO", "message": "email sent", "service": "email-consumer", "cold_start": True}


def child(name: str, program: str, **options: object) -> Component:
    """A component running ``program``, ready once it printed ``READY`` (to stderr)."""
    code = textwrap.dedent(program)
    return Component(name, [sys.executable, "-c", code], ready_line=READY, **options)  # type: ignore[arg-type]


class SlowOutput(Output):
    """An output that takes its time over ``slow``'s lines, as a busy console might: whatever the
    supervisor says about that component must still come after them."""

    def __init__(self, stream: io.StringIO, slow: str) -> None:
        super().__init__(stream)
        self.slow = slow

    def line(self, text: str, component: str | None = None) -> None:
        if component == self.slow:
            time.sleep(0.5)
        super().line(text, component)


@pytest.fixture
def console() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def supervisor(console: io.StringIO, tmp_path: Path) -> Iterator[Supervisor]:
    output = Output(console, metrics_file=tmp_path / "metrics.jsonl")
    running = Supervisor(cwd=str(tmp_path), output=output)
    yield running
    running.stop_all()
    output.close()


def lines(console: io.StringIO) -> list[str]:
    return console.getvalue().splitlines()


def watching(
    supervisor: Supervisor, stop: threading.Event, console: io.StringIO
) -> tuple[threading.Thread, list[tuple[BaseException, list[str]]]]:
    """``supervisor.watch`` on a thread of its own; what it raised, once it returns, with the
    console's lines at that moment."""
    raised: list[tuple[BaseException, list[str]]] = []

    def watch() -> None:
        try:
            supervisor.watch(stop, poll_seconds=0.05)
        except BaseException as error:
            raised.append((error, lines(console)))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, raised


def wait_until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_line_of_both_streams_carries_its_component_and_metrics_go_to_their_file(
    supervisor: Supervisor, console: io.StringIO, tmp_path: Path
) -> None:
    # Given a worker whose handler prints a Powertools JSON line and an EMF blob to stdout, and
    # whose own lines (a traceback among them) go to stderr
    worker = child(
        "email_worker",
        f"""
        import json, sys, traceback
        print({json.dumps(json.dumps(HANDLER_LINE))})
        print({json.dumps(json.dumps(EMF, separators=(",", ":")))})
        try:
            raise ValueError("boom")
        except ValueError:
            print("ERROR invocation failed:\\n" + traceback.format_exc().rstrip(), file=sys.stderr)
        print({READY!r}, file=sys.stderr, flush=True)
        sys.stdout.write("no newline at the end")
        """,
    )

    # When the supervisor runs it, to its end
    supervisor.start(worker)
    wait_until(lambda: "no newline at the end" in console.getvalue())

    # Then every line it printed is `email_worker | <line>`, the handler's JSON unchanged after it
    printed = lines(console)
    assert printed
    assert all(line.startswith("email_worker | ") for line in printed), printed
    assert f"email_worker | {json.dumps(HANDLER_LINE)}" in printed
    # And each line of the traceback is prefixed: none reaches the console bare
    assert "email_worker | ERROR invocation failed:" in printed
    assert "email_worker | Traceback (most recent call last):" in printed
    assert "email_worker | ValueError: boom" in printed
    # And the EMF blob is in the metrics file, as printed, and not on the console
    assert not [line for line in printed if "_aws" in line]
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [EMF]


def test_a_dying_components_last_lines_come_before_its_restart_is_announced(tmp_path: Path) -> None:
    # Given a component whose last words (the second unterminated) are slow to reach the console
    console = io.StringIO()
    supervisor = Supervisor(cwd=str(tmp_path), output=SlowOutput(console, slow="dying"))
    dying = child(
        "dying",
        f"""
        import sys
        print({READY!r}, file=sys.stderr, flush=True)
        print("ERROR the handler failed to load", file=sys.stderr, flush=True)
        sys.stdout.write("last words")
        sys.exit(3)
        """,
    )
    stop = threading.Event()
    try:
        supervisor.start(dying)
        # When it exits and the supervisor notices
        thread, raised = watching(supervisor, stop, console)
        wait_until(lambda: "restarting" in console.getvalue())
    finally:
        stop.set()
        supervisor.stop_all()
    thread.join(timeout=10)

    # Then its last lines were relayed, and before the supervisor said it exited
    printed = lines(console)
    said = next(i for i, line in enumerate(printed) if "exited with code 3" in line)
    assert printed.index("dying | ERROR the handler failed to load") < said
    assert printed.index("dying | last words") < said
    assert printed[said].startswith("local_stack | dying (pid ")
    assert raised == []


def test_an_essential_components_last_lines_come_before_the_stack_fails(tmp_path: Path) -> None:
    # Given an essential component (moto) that says why it stops, slowly, and exits
    console = io.StringIO()
    supervisor = Supervisor(cwd=str(tmp_path), output=SlowOutput(console, slow="aws"))
    moto = child(
        "aws",
        f"""
        import sys
        print({READY!r}, file=sys.stderr, flush=True)
        print("ERROR out of memory", file=sys.stderr, flush=True)
        sys.exit(1)
        """,
        essential=True,
        death_note="its state is gone",
    )
    stop = threading.Event()
    try:
        supervisor.start(moto)
        # When it dies
        thread, raised = watching(supervisor, stop, console)
        thread.join(timeout=20)
    finally:
        stop.set()
        supervisor.stop_all()

    # Then the stack fails, and by then the component's last line is on the console
    [(error, printed)] = raised
    assert isinstance(error, StackFailed)
    assert "aws exited with code 1: its state is gone" in str(error)
    assert "aws | ERROR out of memory" in printed


def test_a_component_dying_while_starting_says_why_before_the_stack_fails(tmp_path: Path) -> None:
    # Given a component that fails before it is ready, saying why (slowly)
    console = io.StringIO()
    supervisor = Supervisor(cwd=str(tmp_path), output=SlowOutput(console, slow="api"))
    api = child(
        "api",
        """
        import sys
        print("ERROR cannot listen on 127.0.0.1:3000", file=sys.stderr)
        sys.exit(1)
        """,
    )
    try:
        supervisor.start(api)
        # When the stack waits for it
        with pytest.raises(StackFailed, match="api exited with code 1 while starting"):
            supervisor.wait_ready(20, threading.Event())
        # Then its reason is on the console by the time the stack fails
        assert "api | ERROR cannot listen on 127.0.0.1:3000" in lines(console)
    finally:
        supervisor.stop_all()


def test_stopping_leaves_no_process_behind_children_of_children_included(
    supervisor: Supervisor, console: io.StringIO
) -> None:
    # Given a component that started a process of its own (as the API starts its environments)
    parent = child(
        "api",
        f"""
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("grandchild", grandchild.pid, flush=True)
        print({READY!r}, file=sys.stderr, flush=True)
        time.sleep(600)
        """,
    )
    supervisor.start(parent)
    supervisor.wait_ready(20, threading.Event())
    wait_until(lambda: "grandchild" in console.getvalue())
    [grandchild] = [int(line.rsplit(" ", 1)[1]) for line in lines(console) if "grandchild" in line]
    pid = supervisor.pids()["api"]

    # When the supervisor stops everything
    supervisor.stop_all()

    # Then neither process is left (the grandchild, signalled with its group, a moment later)
    assert not pid_alive(pid)
    wait_until(lambda: not pid_alive(grandchild), timeout=10)


def test_output_writes_ready_bare_and_only_real_emf_blobs_to_the_metrics_file(tmp_path: Path) -> None:
    # Given the stack's output with a metrics file
    console = io.StringIO()
    output = Output(console, metrics_file=tmp_path / "metrics.jsonl")
    not_metrics = [
        '{"_aws": "a string"}',
        '{"message": "the \\"_aws\\" key", "level": "INFO"}',
        '{"_aws": {"Timestamp": 1}}',
        '{"_aws": {"CloudWatchMetrics": [] ',
        '["_aws"]',
    ]

    # When a component prints an EMF blob, lines that only look like one, and the stack says ready
    output.line(json.dumps(EMF), "scheduler")
    for text in not_metrics:
        output.line(text, "scheduler")
    output.line("ready")
    output.close()

    # Then only the blob is in the metrics file, the rest on the console, prefixed; `ready` bare
    assert (tmp_path / "metrics.jsonl").read_text() == json.dumps(EMF) + "\n"
    assert lines(console) == [*(f"scheduler | {text}" for text in not_metrics), "ready"]
    assert is_metric_blob(json.dumps(EMF, separators=(",", ":")))
    assert not any(is_metric_blob(text) for text in not_metrics)


def test_without_a_metrics_file_a_blob_is_a_line_like_any_other() -> None:
    console = io.StringIO()
    Output(console).line(json.dumps(EMF), "provider")
    assert lines(console) == [f"provider | {json.dumps(EMF)}"]
