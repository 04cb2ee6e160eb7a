"""The local stack's own lifecycle: moto dying ends it, leaving nothing behind (CONTRACT §3)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .harness import READY_TIMEOUT_SECONDS, pid_alive, processes_mentioning, start, stop

pytestmark = pytest.mark.e2e


def test_moto_dying_ends_the_stack_with_no_process_left(tmp_path: Path) -> None:
    # Given a stack of its own (the shared one must survive)
    stack = start(tmp_path)
    try:
        assert stack.ready.wait(READY_TIMEOUT_SECONDS), stack.tail()
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
