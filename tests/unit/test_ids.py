"""Every id the service makes and accepts is spelled by one pattern (``validation.ID_PATTERN``).

A booking's, a hold's and a venue's id are checked in path parameters, request and message
bodies, drift events and the DLQ tool's dedupe keys: each says ``ID_PATTERN`` and
``ID_MAX_LENGTH``, so no two places can disagree on what an id is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from booking_durability.validation import ID_CHARACTERS, ID_MAX_LENGTH, ID_PATTERN

ROOT = Path(__file__).resolve().parents[2]
#: Where the service's code lives: the layer, the functions, the stacks, the operator scripts.
CODE = ("layers", "lambdas", "stacks", "scripts")
#: The id's character class, as a pattern of a whole id or of a bounded run would spell it.
_SPELLED = re.compile(re.escape(ID_CHARACTERS) + r"(\+|\{1,)")
#: Body fields that hold a booking, hold or venue id.
ID_FIELDS = {"booking_id", "hold_id", "venue_id", "original_hold_id"}


def _properties(schema: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every (name, schema) of a property anywhere in a JSON Schema document."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        for name, value in schema.get("properties", {}).items():
            found.append((name, value))
        for value in schema.values():
            found.extend(_properties(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(_properties(value))
    return found


def _string_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The string branch of a property that may also be null."""
    [branch] = [option for option in schema.get("anyOf", [schema]) if option.get("type") == "string"]
    return branch


def test_every_id_path_parameter_is_an_id() -> None:
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    parameters = [
        parameter
        for operations in document["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["name"].endswith("_id")
    ]
    assert {parameter["name"] for parameter in parameters} == {"booking_id", "hold_id", "venue_id"}
    for parameter in parameters:
        schema = parameter["schema"]
        assert (schema["pattern"], schema["maxLength"]) == (ID_PATTERN, ID_MAX_LENGTH), parameter


def test_every_id_a_message_carries_is_an_id() -> None:
    seen = set()
    for path in sorted((ROOT / "schemas").glob("*.json")):
        for name, schema in _properties(json.loads(path.read_text(encoding="utf-8"))):
            if name in ID_FIELDS:
                string = _string_schema(schema)
                assert (string["pattern"], string["maxLength"]) == (ID_PATTERN, ID_MAX_LENGTH), (path, name)
                seen.add(name)
    assert seen == ID_FIELDS


def test_every_id_a_request_body_constrains_is_an_id() -> None:
    # Answers carry ids the service made (plain strings in the document); what a client sends is
    # held to the id's pattern.
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    constrained = [
        (name, _string_schema(schema))
        for name, schema in _properties(document)
        if name in ID_FIELDS and "pattern" in _string_schema(schema)
    ]
    assert {name for name, _ in constrained} >= {"booking_id", "venue_id"}
    for name, string in constrained:
        assert (string["pattern"], string["maxLength"]) == (ID_PATTERN, ID_MAX_LENGTH), name


def test_the_dlq_tool_reads_a_dedupe_key_with_the_ids_own_pattern() -> None:
    from operations.dead_letters import _DEDUPE_KEY

    longest = "a" * ID_MAX_LENGTH
    assert _DEDUPE_KEY.match(f"{longest}#booking_confirmed#0")
    assert not _DEDUPE_KEY.match(f"{longest}a#booking_confirmed#0")
    assert not _DEDUPE_KEY.match("b.1#booking_confirmed#0")


def test_no_code_spells_the_id_pattern_itself() -> None:
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in CODE
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _SPELLED.search(line) and path.name != "validation.py"
    ]
    assert spelled == []


def test_the_source_scan_sees_an_id_pattern_spelled_out() -> None:
    assert _SPELLED.search('ID = r"^[A-Za-z0-9_-]+$"')
    assert _SPELLED.search('re.compile(r"^([A-Za-z0-9_-]{1,128})#")')
    # A name that starts with a letter is another rule (validation's field names).
    assert not _SPELLED.search('re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")')
