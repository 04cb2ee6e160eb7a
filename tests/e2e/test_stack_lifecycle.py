"""The local stack's own lifecycle (docs/reference/local-stack.md#start-restarts-and-stopping): it starts
fresh, moto dying ends it, leaving nothing behind, and its ports are checked before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from devstack.supervisor import StackFailed, ensure_port_free

from .harness import (
    READY_TIMEOUT_SECONDS,
    eventually,
    free_port,
    pid_alive,
    processes_mentioning,
    start,
    stop,
)

pytestmark = pytest.mark.e2e


def test_a_stack_starts_fresh_and_moto_dying_ends_it_with_no_process_left(tmp_path: Path) -> None:
    # Given a stack of its own (the shared one must survive), in a folder a previous run left
    # webhooks, its webhook receiver taken down, and a worker's state in (a file no worker of this
    # run writes)
    (tmp_path / "webhooks.jsonl").write_text('{"body": "a previous run\'s"}\n')
    (tmp_path / "webhook-down").touch()
    (tmp_path / "run").mkdir()
    stale_state = tmp_path / "run" / "retired_stream.state.json"
    stale_state.write_text('{"stream_arn": "a previous run\'s", "sequence_numbers": {}}')
    stack = start(tmp_path)
    try:
        assert stack.ready.wait(READY_TIMEOUT_SECONDS), stack.tail()
        # Then it starts with none of that run's webhooks, its receiver up, none of its workers' state
        assert stack.webhooks() == []
        assert not (tmp_path / "webhook-down").exists()
        assert not stale_state.exists()
        pids = stack.stack_json()["processes"]
        # When moto dies, taking every queue, table and message with it
        os.kill(pids["aws"], signal.SIGKILL)
        # Then the stack stops, says so, and fails
        assert stack.process.wait(timeout=30) != 0
    finally:
        stop(stack)
    assert "moto" in stack.output().lower()
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids.values() if pid_alive(pid)]
    assert processes_mentioning(str(tmp_path)) == []


def test_an_api_port_in_use_stops_the_stack_at_once_saying_which(tmp_path: Path) -> None:
    # Given something listening on the API's port (another local stack, say)
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        # When a stack is started on it
        stack = start(tmp_path, LOCAL_API_PORT=str(port))
        try:
            code = stack.process.wait(timeout=30)
        finally:
            stop(stack)

    # Then it fails before starting anything, naming the variable to change
    assert code != 0
    assert "LOCAL_API_PORT" in stack.output()
    assert not stack.ready.is_set()
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LOCAL_API_PORT", "abc"), ("LOCAL_AWS_PORT", "70000"), ("LOCAL_API_CONCURRENCY", "0")],
)
def test_a_setting_that_is_no_number_in_range_stops_the_stack_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    # Given a LOCAL_* variable set to what cannot be a port or a count
    # When a stack is started with it
    stack = start(tmp_path, **{variable: value})
    try:
        code = stack.process.wait(timeout=30)
    finally:
        stop(stack)

    # Then it fails at once, in one line of its log that names the variable, with no traceback
    assert code == 1
    [line] = eventually(lambda: list(stack.lines), what="the stack's line")
    assert line.startswith(f"local_stack | cannot start: {variable} is {value!r}: a whole number from 1 to ")
    assert processes_mentioning(str(tmp_path)) == []


def _connections_left_in_time_wait(port: int) -> None:
    """Serve one connection on ``port`` and close it from the server's side first, as a stopped
    stack's servers do: the port's end of it stays in TIME_WAIT for a minute."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server's side closes first: it is the one in TIME_WAIT
            assert client.recv(1) == b""


def test_a_port_a_stopped_stack_left_in_time_wait_is_free_for_the_next_run() -> None:
    # Given a port whose only connections are in TIME_WAIT (`make run` right after Ctrl-C)
    port = free_port()
    _connections_left_in_time_wait(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # what a bind without SO_REUSEADDR trips on

    # When the stack checks it before starting, Then it is free
    ensure_port_free("127.0.0.1", port, "LOCAL_API_PORT")


def test_a_port_another_process_listens_on_is_in_use_even_with_time_wait_allowed() -> None:
    # Given a port something listens on (another local stack, say), itself reusing addresses
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()

        # When the stack checks it, Then it stops, naming the variable to change
        with pytest.raises(StackFailed, match="LOCAL_API_PORT"):
            ensure_port_free("127.0.0.1", port, "LOCAL_API_PORT")
