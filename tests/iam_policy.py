"""A small IAM evaluator for identity policies made of ``Allow`` statements, as the policy
simulator decides a request: allowed when a statement's ``Action`` and ``Resource`` patterns
both match (``*`` any run of characters, ``/`` included; ``?`` one character; actions without
regard to case, resources with). Anything it does not model (``Deny``, ``NotAction``,
``NotResource``, ``Condition``) is refused outright rather than misjudged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

#: What ``Ref`` of a pseudo parameter resolves to in the requests the tests make.
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}


@cache
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (
        ".*" if part == "*" else "." if part == "?" else re.escape(part)
        for part in re.split(r"([*?])", pattern)
    )
    return re.compile("".join(parts), re.IGNORECASE if ignore_case else 0)


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def resolve(value: Any, refs: Mapping[str, str]) -> str:
    """A template expression (``Ref``, ``Fn::Join``) as a string, ``refs`` naming resources."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "Ref" in value:
        name = value["Ref"]
        return PSEUDO.get(name) or refs[name]
    if isinstance(value, Mapping) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(resolve(part, refs) for part in parts)
    raise ValueError(f"cannot resolve {value!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(
    documents: Sequence[Mapping[str, Any]], action: str, resource: str, refs: Mapping[str, str]
) -> bool:
    """Whether identity policies ``documents`` together allow ``action`` on ``resource``."""
    for document in documents:
        for statement in _as_list(document["Statement"]):
            unmodelled = {"NotAction", "NotResource", "Condition", "Principal"} & set(statement)
            if statement["Effect"] != "Allow" or unmodelled:
                raise ValueError(f"the evaluator does not model {statement}")
            if any(matches(a, action, ignore_case=True) for a in _as_list(statement["Action"])) and any(
                matches(resolve(r, refs), resource) for r in _as_list(statement["Resource"])
            ):
                return True
    return False
