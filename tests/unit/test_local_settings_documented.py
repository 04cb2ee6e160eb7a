"""The README's table of the local stack's settings (README.md#the-local-stack) names every
``LOCAL_*`` environment variable the code reads, and no other, each with its default and what it
sets; the ports', folder's and concurrency's defaults are the code's own."""

from __future__ import annotations

import ast
import re
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Where the code that may read the environment lives (tests excepted: they set, not read).
PYTHON_SOURCES = ("app.py", "scripts", "stacks", "lambdas", "layers/booking_durability/python")
SCRIPT_SOURCES = ("clients/typescript/src", "clients/typescript/scripts", "clients/typescript/e2e")
SUFFIXES = {".ts", ".mjs", ".js"}
VARIABLE = re.compile(r"LOCAL_[A-Z0-9_]+")
#: A variable as TypeScript reads it (``process.env["LOCAL_X"]``, ``process.env.LOCAL_X``).
SCRIPT_VARIABLE = re.compile(r"""(?:["'`]|env\.)(LOCAL_[A-Z0-9_]+)\b""")
TABLE_HEADER = "| variable | default | what it sets |"
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<default>[^|]+?) \| (?P<meaning>[^|]+?) \|$")


def python_files() -> Iterator[Path]:
    for source in PYTHON_SOURCES:
        path = ROOT / source
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def variables_in_python(text: str) -> set[str]:
    """Every string that is exactly a ``LOCAL_*`` name: what ``os.environ.get("LOCAL_X")``,
    ``env["LOCAL_X"]`` or a message naming the variable to set holds. A constant *named*
    ``LOCAL_SOMETHING`` is an identifier, not a string, and is not one."""
    return {
        node.value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value)
    }


def variables_read_by_the_code() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in python_files():
        for name in variables_in_python(path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    scripts = [p for s in SCRIPT_SOURCES for p in sorted((ROOT / s).rglob("*")) if p.suffix in SUFFIXES]
    for path in [ROOT / "Makefile", *scripts]:
        pattern = VARIABLE if path.name == "Makefile" else SCRIPT_VARIABLE
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(match.lastindex or 0), []).append(str(path.relative_to(ROOT)))
    return found


def readme_table() -> dict[str, tuple[str, str]]:
    """``{variable: (default, meaning)}`` from the README's settings table."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert TABLE_HEADER in lines, f"README.md has no table headed {TABLE_HEADER!r}"
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[lines.index(TABLE_HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        row = ROW.match(line)
        assert row, f"not a `| `NAME` | default | meaning |` row: {line}"
        rows[row["name"]] = (row["default"].strip("`"), row["meaning"])
    return rows


@pytest.fixture(scope="module")
def local_config() -> Any:
    return runpy.run_path(str(ROOT / "scripts" / "local_stack.py"))["LocalConfig"]


def test_the_readme_lists_every_local_variable_the_code_reads_and_no_other() -> None:
    read = variables_read_by_the_code()
    documented = readme_table()

    missing = {name: where for name, where in read.items() if name not in documented}
    assert missing == {}, f"read by the code, not in README.md's settings table: {missing}"
    assert set(documented) - set(read) == set(), "in README.md's settings table, read by no code"
    assert all(default and meaning for default, meaning in documented.values())


def test_the_readme_gives_the_codes_defaults(local_config: Any) -> None:
    defaults = local_config.from_env({})
    compared = 0
    for name, (default, _) in readme_table().items():
        changed = {
            field: value
            for field, value in vars(local_config.from_env({name: "7"})).items()
            if value != getattr(defaults, field)
        }
        for field in changed:
            value = getattr(defaults, field)
            documented = ROOT / default if isinstance(value, Path) else type(value)(default)
            assert documented == value, f"{name}: README says {default}, the code {value}"
            compared += 1
    assert compared >= 7  # the five ports, the folder and the concurrency


def test_the_check_finds_a_variable_however_it_is_read(tmp_path: Path) -> None:
    # Given code reading variables in each way the repository does, and naming constants alike
    source = (
        'import os\nLOCAL_ACCOUNT_ID = "1"\n'
        'a = os.environ.get("LOCAL_NEW_PORT", "1")\nb = env["LOCAL_OTHER"]\n'
        'ensure_port_free(host, port, "LOCAL_THIRD")\nprint(f"LOCAL_{x}")\n'
    )

    # Then each read variable is found, and no constant's name is
    assert variables_in_python(source) == {"LOCAL_NEW_PORT", "LOCAL_OTHER", "LOCAL_THIRD"}
    script = 'const a = process.env["LOCAL_TS"]; const b = process.env.LOCAL_DOT; const LOCAL_CONST = 1;'
    assert {m.group(1) for m in SCRIPT_VARIABLE.finditer(script)} == {"LOCAL_TS", "LOCAL_DOT"}
    # And the repository's own reads include the stack's folder and ports
    assert {"LOCAL_DIR", "LOCAL_AWS_PORT", "LOCAL_VERBOSE"} <= set(variables_read_by_the_code())
