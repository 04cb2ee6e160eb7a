"""No class over 150 lines and no function over 60 outside tests/ and scripts/: a reader holds
a room of that size in mind, and one that grows past it is doing more than one thing.

Sizes are counted from the first line (a decorator's included) to the last, docstrings and
comments too: they are part of what a reader goes through.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What ships (the layer, the functions, the stacks) and the app that composes it.
SOURCES = ("layers", "lambdas", "stacks", "app.py")
MAX_CLASS_LINES = 150
MAX_FUNCTION_LINES = 60


def oversized(source: str, name: str) -> dict[str, int]:
    """Every class over :data:`MAX_CLASS_LINES` and function over :data:`MAX_FUNCTION_LINES` in
    ``source``, by qualified name (``Class.method``), with its length in lines."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                length = (child.end_lineno or child.lineno) - first + 1
                limit = MAX_CLASS_LINES if isinstance(child, ast.ClassDef) else MAX_FUNCTION_LINES
                if length > limit:
                    found[qualname] = length
                visit(child, f"{qualname}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source, name), "")
    return found


def python_files() -> list[Path]:
    files: list[Path] = []
    for entry in SOURCES:
        path = ROOT / entry
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def rooms_over_size() -> dict[str, int]:
    return {
        f"{path.relative_to(ROOT).as_posix()}::{qualname}": length
        for path in python_files()
        for qualname, length in oversized(path.read_text(encoding="utf-8"), str(path)).items()
    }


def test_the_check_measures_classes_and_functions_by_their_lines() -> None:
    # Given a class of 151 lines whose method has 61, a function of 60, and a decorated one of 61
    method = "    def long(self):\n" + "        x = 1\n" * 60
    cls = "class Big:\n" + method + "    y = 2\n" * (151 - 1 - 61)
    fits = "def fits():\n" + "    x = 1\n" * 59
    decorated = "@decorator\ndef decorated():\n" + "    x = 1\n" * 59
    # When they are measured
    found = oversized(cls + fits + decorated, "sample.py")
    # Then the class, its method and the decorated function are over, the 60-line function is not
    assert found == {"Big": 151, "Big.long": 61, "decorated": 61}


def test_no_class_or_function_is_over_its_size() -> None:
    files = python_files()
    # Given the shipped sources (the layer's package, a handler and a construct among them)
    assert {"reservations_table.py", "handler.py", "monitoring.py", "app.py"} <= {f.name for f in files}
    # Then none is over its size
    assert rooms_over_size() == {}
