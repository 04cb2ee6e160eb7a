"""The local stack (``scripts/local_stack.py``), started once per session as ``make run`` starts it.

It runs on free loopback ports with its ``LOCAL_DIR`` in a temporary folder, so it never meets a
developer's own ``make run``. At the end it is stopped with SIGINT, as Ctrl-C does, and the
session fails if any of its processes is left behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import READY_TIMEOUT_SECONDS, RunningStack, pid_alive, processes_mentioning, start, stop


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The local stack, ready; stopped with SIGINT at the end, leaving no process behind."""
    local_dir = tmp_path_factory.mktemp("local")
    stack = start(local_dir)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not stack.ready.wait(0.2):
        if stack.process.poll() is not None or time.monotonic() > deadline:
            stop(stack)
            pytest.fail(f"the local stack did not print `ready`; its last lines:\n{stack.tail()}")

    yield stack

    pids = set(stack.stack_json()["processes"].values()) if stack.stack_file.exists() else set()
    code = stop(stack)
    assert code == 0, f"local_stack exited with {code} on SIGINT; its last lines:\n{stack.tail()}"
    left = {pid for pid in pids if pid_alive(pid)} | set(processes_mentioning(str(local_dir)))
    assert not left, f"processes left behind after SIGINT: {sorted(left)}"


@pytest.fixture(scope="session")
def local_stack(running_stack: RunningStack) -> dict[str, Any]:
    """The parsed ``stack.json`` of the running local stack, as it was when it became ready."""
    return running_stack.stack_json()
