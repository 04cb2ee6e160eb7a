"""The booking app's guide compiles: every TypeScript block of ``docs/booking-app.md`` is a file
(its first line ``// <name>.ts``), and together they pass ``tsc --strict`` as an ES module project
against the packages the guide imports (pinned in package.json, installed by ``make install``): the
service's TypeScript client (``clients/typescript``, built here first) and the CDK.

A renamed stack output, a changed SDK call or a typo in the guide fails here, not in the booking
app's build.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.typescript import built

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "booking-app.md"
TSC = ROOT / "node_modules" / ".bin" / "tsc"
#: Inside the repository, so the guide's imports resolve from its node_modules.
WORKDIR = ROOT / ".build" / "docs-typescript"

_BLOCK = re.compile(r"^```ts\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE_NAME = re.compile(r"// ([\w.-]+\.ts)\n")


def guide_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for block in _BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        named = _FILE_NAME.match(block)
        assert named, f"a TypeScript block of {GUIDE.name} does not start with `// <name>.ts`:\n{block[:200]}"
        assert named.group(1) not in files, f"two blocks are named {named.group(1)}"
        files[named.group(1)] = block
    return files


def test_every_typescript_block_of_the_guide_passes_tsc_strict() -> None:
    # Given the guide's blocks as the files they name (the guide imports them by those names)
    files = guide_files()
    assert {"booking-durability.ts", "confirmed-email.ts", "confirm.ts"} <= files.keys()
    built()  # the client the guide imports, as its package exports it
    shutil.rmtree(WORKDIR, ignore_errors=True)
    source = WORKDIR / "src"
    source.mkdir(parents=True)
    for name, text in files.items():
        (source / name).write_text(text, encoding="utf-8")
    # An ES module project, as the guide's ".js" import suffixes and top-level await assume
    (WORKDIR / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    options = {
        "strict": True,
        "noEmit": True,
        "module": "NodeNext",
        "moduleResolution": "NodeNext",
        "target": "ES2022",
        "types": ["node"],
        "skipLibCheck": True,
    }
    (WORKDIR / "tsconfig.json").write_text(json.dumps({"compilerOptions": options, "include": ["src/*.ts"]}))
    # When they are type-checked
    checked = subprocess.run(
        [str(TSC), "-p", str(WORKDIR / "tsconfig.json")], capture_output=True, text=True, check=False
    )
    # Then tsc finds nothing to say
    assert checked.returncode == 0, checked.stdout + checked.stderr
