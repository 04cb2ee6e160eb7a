"""`make demo` (``scripts/demo.py``) against the running local stack: each step happens, and the
output says where to see it; with no stack it says so and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO_ROOT, RunningStack

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_SECONDS = 240


def demo(local_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=REPO_ROOT,
        env={"LOCAL_DIR": str(local_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=DEMO_TIMEOUT_SECONDS,
    )


def test_the_demo_runs_every_step_against_the_running_stack(running_stack: RunningStack) -> None:
    # Given the running stack, When the demo runs against it
    finished = demo(running_stack.local_dir)

    # Then every step happened
    assert finished.returncode == 0, finished.stdout + finished.stderr
    output = finished.stdout
    for step in (
        "1. an email sent",
        "2. a duplicate suppressed",
        "3. a retry",
        "4. a dead letter",
        "5. a hold confirmed after a policy change",
        "done: 5 of 5 steps happened",
    ):
        assert step in output
    assert "POST /v1/emails -> 202 sent, not queued again" in output
    assert "acknowledged it as a duplicate" in output
    assert "still one copy delivered" in output
    assert "451 then 250" in output
    assert "failure_reason provider_rejected" in output
    assert "policy_drift.recovered webhook msg_" in output
    assert "signature verified" in output
    # And each says where to see it: the Maildir, the mail log, the DLQ tool, the metrics, the
    # webhooks, the inbox, the worker's line in the stack's log
    stack = running_stack.stack_json()
    for where in (
        f"{stack['maildir']}/new/",
        stack["mail_log"],
        "scripts/dlq.py inspect",
        f"{stack['metrics_file']}: EmailDeadLettered with failure_reason provider_rejected",
        stack["webhooks_file"],
        f"{stack['inbox_url'].rstrip('/')}/messages/",
        'email_worker | {..."message":"email already sent; duplicate acknowledged"...}',
    ):
        assert where in output
    # And every path is in the stack's LOCAL_DIR, none in the default folder
    assert ".local/" not in output
    # And it prints no address
    assert "@example.test" not in output


def test_the_demo_without_a_stack_says_to_start_one_and_exits_2(tmp_path: Path) -> None:
    # Given no stack.json in LOCAL_DIR, When the demo runs
    finished = demo(tmp_path)

    # Then it stops at once, saying how to start one
    assert finished.returncode == 2
    assert "no local stack" in finished.stderr
    assert "make run" in finished.stderr
