"""Every ``code`` the HTTP API can answer is in the reference's error table
(docs/reference/http-api.md, Error codes) and in openapi.json, on the answers of the operations.

The codes are read from the code, not listed here: the refusals the API maps (every
``DomainError`` and ``InfrastructureError`` the API functions import, as the resolver answers each
with its ``code``), the problems the resolver writes itself (``problem(status, "CODE", ...)``),
API Gateway's own answers (the template's gateway responses) and the local gateway's 405.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from booking_durability.api.resolver import Problem, responses
from stacks.api import GATEWAY_PROBLEMS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "booking_durability" / "python" / "booking_durability"
REFERENCE = ROOT / "docs" / "reference" / "http-api.md"
GUIDE = ROOT / "docs" / "booking-app.md"

#: Gateway response types API Gateway never gives this API: it has no authorizer, API key or WAF
#: (every method is AWS_IAM: tests/infrastructure/test_api.py).
NEVER_GIVEN = {
    "UNAUTHORIZED",
    "INVALID_API_KEY",
    "WAF_FILTERED",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "AUTHORIZER_FAILURE",
}

_REFUSALS = """
import booking_durability.entrypoints.email_api, booking_durability.entrypoints.reservations_api
from booking_durability.errors import DomainError, InfrastructureError

def below(kind):
    for sub in kind.__subclasses__():
        yield sub
        yield from below(sub)

codes = {error.code for kind in (DomainError, InfrastructureError) for error in below(kind)}
print("\\n".join(sorted(codes)))
"""


def refusal_codes() -> set[str]:
    """The codes of the refusals the API functions can raise: what they import, in a fresh process."""
    ran = subprocess.run(
        [sys.executable, "-c", _REFUSALS], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(ran.stdout.split())


def resolver_codes() -> set[str]:
    text = "".join(path.read_text() for path in (PACKAGE / "api").glob("*.py"))
    return set(re.findall(r'problem\(\s*\d{3},\s*"([A-Z_]+)"', text)) | set(
        re.findall(r'^\s*"(INTERNAL_ERROR)",$', text, flags=re.MULTILINE)
    )


def local_gateway_codes() -> set[str]:
    text = (ROOT / "scripts" / "devstack" / "api_gateway.py").read_text()
    return set(re.findall(r'^\s*"(METHOD_NOT_ALLOWED)",$', text, flags=re.MULTILINE))


def answered_codes() -> set[str]:
    gateway = {problem.code for kind, problem in GATEWAY_PROBLEMS.items() if kind not in NEVER_GIVEN}
    return refusal_codes() | resolver_codes() | gateway | local_gateway_codes()


def table_codes(text: str, heading: str) -> set[str]:
    """The codes in the second column of the table under ``heading``."""
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return {code for row in rows for code in re.findall(r"`([A-Z_]+)`", row.split("|")[2])}


def test_the_codes_are_found_where_the_api_makes_them() -> None:
    # The grep finds each kind of source, so an empty or partial read cannot pass below
    assert {"HOLD_INVALID", "BOOKING_ID_TAKEN", "STORE_UNAVAILABLE", "BUSY"} <= refusal_codes()
    assert {"INVALID_JSON", "UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE", "INTERNAL_ERROR", "NOT_FOUND"} <= (
        resolver_codes()
    )
    assert local_gateway_codes() == {"METHOD_NOT_ALLOWED"}
    assert {"FORBIDDEN", "THROTTLED", "UPSTREAM_TIMEOUT"} <= answered_codes()


def test_every_code_the_api_answers_is_in_the_references_error_table() -> None:
    documented = table_codes(REFERENCE.read_text(), "### Error codes")
    assert answered_codes() - documented == set()


def test_every_code_the_api_answers_is_on_an_answer_of_openapi_json() -> None:
    document = json.loads((ROOT / "openapi.json").read_text())
    said = " ".join(
        answer["description"]
        for route in document["paths"].values()
        for operation in route.values()
        for answer in operation["responses"].values()
    )
    assert {code for code in answered_codes() if not re.search(rf"\b{code}\b", said)} == set()


def test_every_problem_answer_of_openapi_json_names_its_codes() -> None:
    document = json.loads((ROOT / "openapi.json").read_text())
    codes = answered_codes()
    unnamed = [
        (method, path, status)
        for path, route in document["paths"].items()
        for method, operation in route.items()
        for status, answer in operation["responses"].items()
        if int(status) >= 400 and not codes & set(re.findall(r"\b[A-Z_]{4,}\b", answer["description"]))
    ]
    assert unnamed == []


def test_a_route_problem_without_its_codes_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="404"):
        responses(Problem, 200, 404)
    assert (
        "VENUE_NOT_FOUND" in responses(Problem, 200, 404, notes={404: "VENUE_NOT_FOUND"})[404]["description"]
    )


def test_the_guide_keeps_no_second_error_table_and_links_the_reference() -> None:
    guide = GUIDE.read_text()
    assert "| status | `code` |" not in guide
    assert "reference/http-api.md#error-codes" in guide
