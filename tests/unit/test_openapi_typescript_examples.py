"""The OpenAPI document serves a TypeScript app as it is: types that openapi-typescript generates
from the committed ``openapi.json`` with its default settings accept the request bodies that
README.md and docs/booking-app.md show (every ``curl ... -d`` of their shell blocks, typed as its
route's request body), and describe the answers well enough to use them (a venue read and put back,
a problem without ``detail``, validation errors, statuses).

Types are generated with openapi-typescript's default settings, which read a property that has a
``default`` as always present: the document states a request's defaults in words, and gives each
answer its own schema where the two differ (``Table-Input``, ``Table-Output``).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.typescript import BIN, GENERATED, ROOT, run

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "booking-app.md"]
WORKDIR = ROOT / ".build" / "openapi-typescript-examples"

_SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_DIAGNOSTIC = re.compile(r"^(?:\S*/)?(?P<file>[\w.-]+\.ts)\(\d+,\d+\): error (?P<text>.*)$", re.MULTILINE)

#: The helpers every case uses: a route's JSON request body and its JSON answer, by status.
PRELUDE = """\
import type { components, paths } from "./openapi.js";

type Method = "get" | "put" | "post" | "delete";
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
export type Body<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
export type Answer<P extends keyof paths, M extends Method, S extends number> =
  Operation<P, M> extends { responses: { [s in S]: { content: { "application/json": infer B } } } }
    ? B
    : never;
export type Problem = components["schemas"]["Problem"];
export type ProblemAnswer<P extends keyof paths, M extends Method, S extends number> =
  Operation<P, M> extends { responses: { [s in S]: { content: { "application/problem+json": infer B } } } }
    ? B
    : never;
export type AnswerHeaders<P extends keyof paths, M extends Method, S extends number> =
  Operation<P, M> extends { responses: { [s in S]: { headers: infer H } } } ? H : never;
export declare function read<T>(): T;
"""


@dataclass(frozen=True)
class RequestExample:
    document: str
    method: str
    route: str
    body: object

    @property
    def name(self) -> str:
        return f"{self.document} {self.method.upper()} {self.route}"


def routes() -> list[str]:
    return list(json.loads((ROOT / "openapi.json").read_text())["paths"])


def route_of(path: str) -> str:
    """The OpenAPI route a concrete path (``/v1/venues/casa``) is a request to."""
    path = path.split("?", 1)[0]
    for route in routes():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(route)), path):
            return route
    raise AssertionError(f"no route of openapi.json matches {path}")


def commands(block: str) -> list[list[str]]:
    """The block's commands as the shell splits them: continued lines and quoted newlines joined."""
    found: list[list[str]] = []
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = ""
        if words:
            found.append(words)
    return found


def curl_bodies(words: list[str]) -> list[tuple[str, str, str]]:
    """``(method, path, body)`` of each curl with a ``-d`` body in one command."""
    bodies = []
    for start, word in enumerate(words):
        if word != "curl" and not word.endswith("(curl"):
            continue
        method, path, body = "GET", None, None
        rest = iter(words[start + 1 :])
        for option in rest:
            if option in {"|", ";", "&&"}:
                break
            if option == "-X":
                method = next(rest)
            elif option in {"-d", "--data"}:
                body = next(rest)
                method = method if method != "GET" else "POST"
            elif option == "-H":
                next(rest)
            elif "/v1/" in option:
                path = option[option.index("/v1/") :]
        if body is not None and path is not None:
            bodies.append((method.lower(), path, body))
    return bodies


_STRING_OR_VARIABLE = re.compile(r'"(?:[^"\\]|\\.)*"|\$\{?\w+\}?')


def json_body(body: str) -> object:
    """A curl body as JSON: a shell variable standing where a value goes (``"party_size": $1``)
    stands for a number; inside a string it is text like any other."""
    return json.loads(
        _STRING_OR_VARIABLE.sub(lambda found: found[0] if found[0].startswith('"') else "1", body)
    )


def request_examples() -> list[RequestExample]:
    examples = []
    for document in DOCUMENTS:
        for block in _SHELL_BLOCK.findall(document.read_text(encoding="utf-8")):
            for words in commands(block):
                for method, path, body in curl_bodies(words):
                    examples.append(
                        RequestExample(
                            document.relative_to(ROOT).as_posix(), method, route_of(path), json_body(body)
                        )
                    )
    return examples


def request_case(example: RequestExample) -> str:
    body = json.dumps(example.body, indent=2, ensure_ascii=False)
    route_body = f'Body<"{example.route}", "{example.method}">'
    return f'import type {{ Body }} from "./prelude.js";\n\nexport const body: {route_body} = {body};\n'


@dataclass(frozen=True)
class UsageCase:
    name: str
    code: str


USAGE_CASES = [
    UsageCase(
        "a hold request with every field",
        'const hold: Body<"/v1/holds", "post"> = { venue_id: "casa", party_size: 2, '
        'starts_at: "2031-05-01T20:00:00Z", duration_minutes: 90, zone: "main" };',
    ),
    UsageCase(
        "a confirmation's policy drift is read by field",
        'const confirmation = read<Answer<"/v1/holds/{hold_id}/confirm", "post", 200>>();\n'
        "const original: string | undefined = confirmation.policy_drift?.original_hold_id;",
    ),
    UsageCase(
        "a venue read is put back unchanged (GET then PUT with If-Match)",
        'const venue = read<Answer<"/v1/venues/{venue_id}", "get", 200>>();\n'
        'const again: Body<"/v1/venues/{venue_id}", "put"> = { tables: venue.tables, policy: venue.policy };',
    ),
    UsageCase(
        "API Gateway's own problem answer, which has no detail",
        "const refused: Problem = "
        '{ type: "about:blank", title: "Forbidden", status: 403, code: "FORBIDDEN" };',
    ),
    UsageCase(
        "a VALIDATION_FAILED problem's errors are read as loc and msg",
        "const issues = read<Problem>().errors ?? [];\n"
        "const where: (string | number)[][] = issues.map((issue) => issue.loc);\n"
        "const why: string[] = issues.map((issue) => issue.msg);",
    ),
    UsageCase(
        "a venue's ETag is read from the GET's headers, for If-Match",
        'const etag: string = read<AnswerHeaders<"/v1/venues/{venue_id}", "get", 200>>().ETag;\n'
        'const earlier: string = read<AnswerHeaders<"/v1/venues/{venue_id}/versions/{n}", "get", 200>>()'
        ".ETag;",
    ),
    UsageCase(
        "API Gateway's and the service's failures are problems on every operation",
        'const throttled: Problem = read<ProblemAnswer<"/v1/holds", "post", 429>>();\n'
        'const refused: Problem = read<ProblemAnswer<"/v1/bookings/{booking_id}", "delete", 403>>();\n'
        'const local: Problem = read<ProblemAnswer<"/v1/health", "get", 405>>();\n'
        'const failed: string | undefined = read<ProblemAnswer<"/v1/emails", "post", 500>>().error_id;\n'
        'const upstream: Problem[] = [read<ProblemAnswer<"/v1/openapi.json", "get", 502>>(), '
        'read<ProblemAnswer<"/v1/holds/{hold_id}", "get", 503>>(), '
        'read<ProblemAnswer<"/v1/emails", "post", 504>>()];',
    ),
    UsageCase(
        "an email's statuses are their enums",
        'const status: "queued" | "sending" | "sent" | "failed" | "cancelled" | "suppressed" | "expired" = '
        'read<Answer<"/v1/emails/{booking_id}/{email_type}", "get", 200>>().status;\n'
        'const cancelled: "cancelled" = '
        'read<Answer<"/v1/emails/{booking_id}/{email_type}", "delete", 200>>().status;\n'
        'const health: "ok" = read<Answer<"/v1/health", "get", 200>>().status;',
    ),
    UsageCase(
        "a hold's, a booking's and a confirmation's status are their enums",
        'const hold: "held" | "confirmed" | "released" | "superseded" | "expired" = '
        'read<Answer<"/v1/holds/{hold_id}", "get", 200>>().status;\n'
        'const booking: "confirmed" | "cancelled" = '
        'read<Answer<"/v1/bookings/{booking_id}", "get", 200>>().status;\n'
        'const confirmed: "confirmed" = read<Answer<"/v1/holds/{hold_id}/confirm", "post", 200>>().status;',
    ),
    UsageCase(
        "a hold's selection snapshot is read by field",
        'const snapshot = read<Answer<"/v1/holds/{hold_id}", "get", 200>>().selection_snapshot;\n'
        "const tables: { id: string; capacity: number }[] = snapshot?.tables ?? [];\n"
        "const zone: string | null | undefined = snapshot?.zone;",
    ),
]


@functools.cache
def diagnostics() -> dict[str, list[str]]:
    """Every case compiled by one ``tsc --strict`` run; its errors by case file."""
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    # openapi.ts as openapi-typescript writes it with its default settings: the client's committed
    # copy, which test_typescript_client.py checks is exactly that
    shutil.copy(GENERATED / "openapi.ts", WORKDIR / "openapi.ts")
    (WORKDIR / "prelude.ts").write_text(PRELUDE)
    for index, example in enumerate(request_examples()):
        (WORKDIR / f"request_{index}.ts").write_text(request_case(example))
    for index, case in enumerate(USAGE_CASES):
        (WORKDIR / f"usage_{index}.ts").write_text(
            'import type { Answer, AnswerHeaders, Body, Problem, ProblemAnswer } from "./prelude.js";\n'
            f'import {{ read }} from "./prelude.js";\n\n{case.code}\n'
        )
    (WORKDIR / "refused.ts").write_text(
        'import type { Body } from "./prelude.js";\n\n'
        'export const body: Body<"/v1/holds", "post"> = '
        '{ venue_id: "casa", party_size: "two", starts_at: "x" };\n'
    )
    (WORKDIR / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    options = {
        "strict": True,
        "noEmit": True,
        "module": "NodeNext",
        "moduleResolution": "NodeNext",
        "target": "ES2022",
        "types": [],
        "noUnusedLocals": False,
    }
    (WORKDIR / "tsconfig.json").write_text(json.dumps({"compilerOptions": options, "include": ["*.ts"]}))
    checked = run([str(BIN / "tsc"), "-p", str(WORKDIR / "tsconfig.json"), "--pretty", "false"])
    errors: dict[str, list[str]] = {}
    for found in _DIAGNOSTIC.finditer(checked.stdout):
        errors.setdefault(found["file"], []).append(found["text"])
    assert checked.returncode == 0 or errors, checked.stdout + checked.stderr
    assert not errors.get("prelude.ts"), errors
    assert not errors.get("openapi.ts"), errors
    return errors


def request_params() -> list[object]:
    return [
        pytest.param(f"request_{index}.ts", id=example.name)
        for index, example in enumerate(request_examples())
    ]


def usage_params() -> list[object]:
    return [pytest.param(f"usage_{index}.ts", id=case.name) for index, case in enumerate(USAGE_CASES)]


def test_the_documents_show_request_bodies_for_the_main_routes() -> None:
    shown = {(example.method, example.route) for example in request_examples()}
    assert {("put", "/v1/venues/{venue_id}"), ("post", "/v1/holds"), ("post", "/v1/emails")} <= shown


@pytest.mark.parametrize("case", request_params())
def test_a_documented_request_body_is_its_routes_generated_request_type(case: str) -> None:
    assert diagnostics().get(case, []) == []


@pytest.mark.parametrize("case", usage_params())
def test_the_generated_types_serve_the_apps_use_of_the_api(case: str) -> None:
    assert diagnostics().get(case, []) == []


def test_the_check_refuses_a_body_of_the_wrong_shape() -> None:
    assert any("party_size" in error or "string" in error for error in diagnostics().get("refused.ts", []))


def test_the_shell_commands_are_read_as_the_shell_reads_them(tmp_path: Path) -> None:
    block = (
        "API=http://127.0.0.1:3000\n"
        "# a comment with curl -d '{}' in it\n"
        "curl -s -X PUT $API/v1/venues/casa -H 'content-type: application/json' -d '{\n"
        '  "tables": []}\'\n'
        "HOLD=$(curl -s -X POST $API/v1/holds -H 'content-type: application/json' \\\n"
        '  -d "{\\"venue_id\\": \\"casa\\", \\"starts_at\\": \\"$WHEN\\"}" | jq -r .hold_id)\n'
        "curl -s $API/v1/holds/$HOLD\n"
    )
    found = [body for words in commands(block) for body in curl_bodies(words)]
    assert found == [
        ("put", "/v1/venues/casa", '{\n  "tables": []}'),
        ("post", "/v1/holds", '{"venue_id": "casa", "starts_at": "$WHEN"}'),
    ]
    assert route_of("/v1/holds/hld_1/confirm") == "/v1/holds/{hold_id}/confirm"
    assert json_body('{"party_size": $1, "starts_at": "$WHEN", "zone": "a\\"$b"}') == {
        "party_size": 1,
        "starts_at": "$WHEN",
        "zone": 'a"$b',
    }
