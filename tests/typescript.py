"""The TypeScript client (``clients/typescript``) from pytest: building it, regenerating what it
takes from the committed documents, and running its Node tests.

Node and the client's packages come from ``make install`` (``npm ci``; the client is a workspace of
the root package, linked as ``node_modules/@booking-durability/client``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "clients" / "typescript"
GENERATED = CLIENT / "src" / "generated"
#: Where the client's tests and e2e files are compiled to (tsconfig.test.json).
COMPILED = CLIENT / ".build"
BIN = ROOT / "node_modules" / ".bin"
NODE = "node"


def run(
    command: list[str], *, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=CLIENT,
        capture_output=True,
        text=True,
        check=False,
        env=dict(env) if env else None,
        timeout=timeout,
    )


@functools.cache
def built() -> Path:
    """The client built into ``dist/`` (what the package exports) and its tests into ``.build/``;
    once per test session."""
    for config, output in (("tsconfig.json", CLIENT / "dist"), ("tsconfig.test.json", COMPILED)):
        shutil.rmtree(output, ignore_errors=True)  # nothing left over from files since removed
        compiled = run([str(BIN / "tsc"), "-p", config])
        assert compiled.returncode == 0, (
            f"tsc -p clients/typescript/{config}:\n{compiled.stdout}{compiled.stderr}"
        )
    return COMPILED


def generate(folder: Path) -> None:
    """What ``make client`` writes to ``src/generated/``, written to ``folder`` instead."""
    generated = run([NODE, "scripts/generate.mjs", str(folder)])
    assert generated.returncode == 0, generated.stdout + generated.stderr


def node_tests(
    files: list[Path], env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``node --test`` over compiled test files; the TAP report is in ``stdout``."""
    return run([NODE, "--test", *map(str, files)], env=env, timeout=timeout)


def environment_without_aws(**variables: str) -> dict[str, str]:
    """This process's environment without any AWS setting (so no real account is ever reached),
    plus ``variables``."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {**kept, **variables}
