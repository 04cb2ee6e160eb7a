"""Fixtures shared by every kind of test: one synthesized CDK app per test session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.synth import synthesized_templates


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    """The CloudFormation template of every stage, from one synthesis per session."""
    return synthesized_templates()


@pytest.fixture(scope="session")
def local_template(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["local"]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
