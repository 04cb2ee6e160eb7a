"""README's "Running against `make run`" holds for the running stack: its ``stack.json`` example
names the keys the stack writes, and its Python sample, run with nothing but ``LOCAL_DIR`` (no
AWS variable, no credentials of the shell), publishes an email the stack delivers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO_ROOT, RunningStack, eventually

pytestmark = pytest.mark.e2e

SECTION = "### Running against `make run`"


def samples(language: str) -> list[str]:
    """The fenced ``language`` blocks of the README's section on running against ``make run``."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def test_the_readmes_stack_json_example_names_what_the_stack_writes(running_stack: RunningStack) -> None:
    [example] = samples("json")
    described = running_stack.stack_json()

    shown = {key for key in json.loads(example) if key != "..."}
    assert shown <= set(described)
    assert set(json.loads(example)["queues"]) <= set(described["queues"])
    assert set(json.loads(example)["tables"]) <= set(described["tables"])


def test_the_readmes_python_sample_publishes_an_email_the_stack_delivers(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    # Given the README's Python sample, and an environment with only the stack's LOCAL_DIR
    [sample] = samples("python")
    script = tmp_path / "sample.py"
    script.write_text(sample, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "LOCAL_DIR": str(running_stack.local_dir)}

    # When it runs
    ran = subprocess.run(
        [sys.executable, str(script)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )

    # Then it sent one message to the email queue, and the stack delivered it
    assert ran.returncode == 0, ran.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", ran.stdout)
    booking_id = re.search(r'"booking_id": "([^"]+)"', sample)
    assert booking_id is not None
    path = f"/v1/emails/{booking_id[1]}/booking_confirmed"

    def status() -> str | None:
        answer = running_stack.api("GET", path, params={"revision": 0})
        return str(answer.body["status"]) if answer.status == 200 else None

    assert eventually(lambda: status() == "sent", timeout=60, what="the sample's email sent")
