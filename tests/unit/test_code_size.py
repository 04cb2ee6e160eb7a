"""The domain logic and its adapters stay in pieces a reader holds at once: no class over 150
lines, no function over 60, in the layer's ``reservations/`` and ``adapters/``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers/booking_durability/python/booking_durability"
MAX_CLASS_LINES = 150
MAX_FUNCTION_LINES = 60


def oversized(source: str, name: str) -> list[str]:
    """Each class or function of ``source`` longer than its limit, as ``name:kind:lines``."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if lines > limit:
                found.append(f"{name}:{node.name}:{lines}")
    return found


def test_a_long_function_is_found() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    assert oversized(f"def long():\n{body}", "long.py") == ["long.py:long:61"]
    assert oversized("def short():\n    return 1\n", "short.py") == []


def test_no_class_or_function_in_the_logic_and_adapters_is_too_long() -> None:
    files = sorted((PACKAGE / "reservations").glob("*.py")) + sorted((PACKAGE / "adapters").glob("*.py"))
    assert any(f.name == "reservations_table.py" for f in files)
    found = [entry for f in files for entry in oversized(f.read_text(encoding="utf-8"), f.name)]
    assert found == []
