"""Every answer the API gives, held to what ``openapi.json`` declares for it.

An answer is looked up by its route (the document's path template its path matches), method,
status code and content type, and its body validated against the schema declared there. Objects
are held closed: a property the document does not declare fails as much as a missing one, unless
the schema itself allows more (the problem model does, for the fields some codes add). A path
that matches no route (the resolver's own 404) is held to the problem model.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.json"
_PROBLEM_REF = "#/components/schemas/Problem"
JSON_ANSWER = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    template: str


class DocumentedAnswers:
    """``openapi.json``'s answers, and which of them the tests have given."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = _closed(document["components"])
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
            for template in document["paths"]
        ]
        #: ``(method, template, status, content type)`` of every answer checked.
        self.given: set[tuple[str, str, int, str]] = set()

    def declared(self) -> set[tuple[str, str, int, str]]:
        """Every answer the document declares: by method, route, status and content type."""
        return {
            (method.upper(), template, int(status), content_type)
            for template, operations in self.document["paths"].items()
            for method, operation in operations.items()
            for status, response in operation["responses"].items()
            for content_type in response.get("content", {})
        }

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, template in self.routes:
            if pattern.match(path) and method.lower() in self.document["paths"][template]:
                return Operation(method.upper(), template)
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: Any) -> list[str]:
        """Where the answer breaks the document (empty when it answers as declared)."""
        media_type = content_type.split(";", 1)[0].strip().lower()
        operation = self.operation(method, path)
        if operation is None:
            return self._errors({"$ref": _PROBLEM_REF}, body, f"{method} {path} (no route)")
        where = f"{operation.method} {operation.template} {status} {media_type}"
        responses = self.document["paths"][operation.template][method.lower()]["responses"]
        response = responses.get(str(status))
        if response is None:
            return [f"{where}: the document declares no {status} answer"]
        declared = response.get("content", {})
        if media_type not in declared:
            return [f"{where}: the document declares {sorted(declared)} for {status}"]
        self.given.add((operation.method, operation.template, status, media_type))
        return self._errors(declared[media_type]["schema"], body, where)

    def _errors(self, schema: dict[str, Any], body: Any, where: str) -> list[str]:
        validator = Draft202012Validator({**_closed(schema), "components": self.components})
        return [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or 'body'}: {error.message}"
            for error in validator.iter_errors(body)
        ]


@functools.cache
def documented_answers() -> DocumentedAnswers:
    return DocumentedAnswers(json.loads(DOCUMENT.read_text(encoding="utf-8")))


def _closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others, unless it says
    what others may be."""
    closed = copy.deepcopy(schema)
    pending = [closed]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            if "properties" in current and "additionalProperties" not in current:
                current["additionalProperties"] = False
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return closed
