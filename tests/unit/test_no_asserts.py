"""No ``assert`` statement outside the tests: ``python -O`` drops them, so a guarantee one states
would silently stop holding. A type carries it instead, or an explicit check raises."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Everything that ships or that an operator runs; tests/ is where assert belongs.
SOURCES = ("layers", "lambdas", "stacks", "scripts", "app.py")


def asserts_in(source: str, name: str) -> list[int]:
    """The line of every ``assert`` statement in ``source``."""
    return [node.lineno for node in ast.walk(ast.parse(source, name)) if isinstance(node, ast.Assert)]


def python_files() -> list[Path]:
    files: list[Path] = []
    for entry in SOURCES:
        path = ROOT / entry
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return [f for f in files if "tests" not in f.relative_to(ROOT).parts]


def test_the_check_finds_an_assert_statement_but_not_the_word() -> None:
    # Given code with an assert statement, and code merely naming one
    stated = 'def f(x):\n    """assert nothing"""\n    assert x is not None\n    return x\n'
    named = 'assertion = "assert x"\n'
    # Then only the statement is found, at its line
    assert asserts_in(stated, "stated.py") == [3]
    assert asserts_in(named, "named.py") == []


def test_no_assert_statement_outside_the_tests() -> None:
    files = python_files()
    # Given the sources (the layer's package among them: the check looks where the code is)
    assert any(f.name == "reservations_table.py" for f in files)
    # Then none states an assert
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        for line in asserts_in(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == []
