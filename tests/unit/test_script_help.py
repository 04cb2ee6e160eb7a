"""Every command the README and ``make help`` name answers ``--help`` with its usage and does
nothing else (no stack started, no bench run, no queue touched), in words an operator can follow
without anything outside the repository: no issue numbers, no contract section numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The scripts people run by hand (README "Commands", docs/runbook.md "Tools", `make help`).
COMMANDS = [
    "scripts/dlq.py",
    "scripts/import_holds.py",
    "scripts/backfill_hold_metadata.py",
    "scripts/publish_email.py",
    "scripts/demo.py",
    "scripts/local_stack.py",
    "scripts/bench.py",
    "scripts/generate_schemas.py",
    "scripts/build_layer.py",
    "scripts/devstack/mail_sink.py",
    "scripts/devstack/webhook_sink.py",
    "scripts/devstack/http_provider.py",
    "scripts/devstack/inbox.py",
]
#: A reference to a tracker or to a document the repository does not hold (a dedupe key's
#: ``...#0`` is not one).
ELSEWHERE = re.compile(r"issue|(?<!\w)#\d|\bCONTRACT\b|\N{SECTION SIGN}", re.IGNORECASE)


def help_of(script: str, *subcommand: str, local_dir: Path) -> str:
    # Should a script ignore --help and start working, it finds no stack of anyone else's and is
    # stopped with SIGTERM, which the local stack and the bench handle by stopping what they started.
    env = {**os.environ, "LOCAL_DIR": str(local_dir)}
    env.update({f"LOCAL_{name}_PORT": "1" for name in ("AWS", "API", "SMTP", "WEBHOOK", "INBOX")})
    with subprocess.Popen(
        [sys.executable, script, *subcommand, "--help"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.communicate(timeout=60)
            pytest.fail(f"{script} --help did not answer: it went to work")
    assert process.returncode == 0, err
    assert out.startswith("usage:")
    return out


@pytest.mark.parametrize("script", COMMANDS)
def test_help_shows_usage_and_points_nowhere_outside_the_repository(script: str, tmp_path: Path) -> None:
    text = help_of(script, local_dir=tmp_path)
    assert ELSEWHERE.findall(text) == []


@pytest.mark.parametrize("command", ["inspect", "redrive", "discard"])
def test_each_dlq_command_has_its_own_help(command: str, tmp_path: Path) -> None:
    text = help_of("scripts/dlq.py", command, local_dir=tmp_path)
    assert ELSEWHERE.findall(text) == []
