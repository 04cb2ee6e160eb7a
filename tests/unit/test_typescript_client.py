"""The TypeScript client (``clients/typescript``): what it generates from the committed documents
is up to date, and its own tests pass (``node:test``, no network: fetch and SQS are test doubles).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.typescript import BIN, GENERATED, built, generate, node_tests, run

#: Run `make client` (or `make schemas`, which runs it too) to regenerate.
REGENERATE = "stale: run `make client` and commit clients/typescript/src/generated/"


def stale_files(fresh: Path, committed: Path) -> list[str]:
    """The files of ``fresh`` that ``committed`` lacks or holds with other bytes."""
    return sorted(
        path.name
        for path in fresh.iterdir()
        if not (committed / path.name).is_file() or (committed / path.name).read_bytes() != path.read_bytes()
    )


def test_the_generated_types_and_schema_copy_match_the_committed_documents(tmp_path: Path) -> None:
    # Given openapi.json and schemas/booking-email-v1.json as committed
    # When openapi-typescript (pinned, default settings) and the schema copy regenerate them
    generate(tmp_path)
    # Then the client's committed generated files are exactly what came out
    assert {path.name for path in tmp_path.iterdir()} == {"openapi.ts", "booking-email-v1.json"}
    assert stale_files(tmp_path, GENERATED) == [], REGENERATE


def test_the_staleness_check_notices_a_changed_or_missing_file(tmp_path: Path) -> None:
    # Given a copy of the committed generated files, one changed and one gone
    committed = tmp_path / "committed"
    shutil.copytree(GENERATED, committed)
    with (committed / "openapi.ts").open("a") as types:
        types.write("export type Added = string;\n")
    (committed / "booking-email-v1.json").unlink()
    # When it is compared with what generation gives
    # Then both are stale
    assert stale_files(GENERATED, committed) == ["booking-email-v1.json", "openapi.ts"]


def test_the_clients_own_tests_pass() -> None:
    # Given the client built with tsc --strict, and its tests compiled
    compiled = built()
    tests = sorted((compiled / "test").glob("*.test.js"))
    assert len(tests) >= 4, tests
    # When node's test runner runs them
    ran = node_tests(tests)
    # Then every test passed, and there were some
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr
    assert "# fail 0" in ran.stdout
    assert "# pass 0" not in ran.stdout


def test_the_packed_package_carries_the_built_client_and_no_tests() -> None:
    # Given the client built
    built()
    # When npm packs it, as the booking app would install it
    packed = run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts"])
    assert packed.returncode == 0, packed.stderr
    files = {entry["path"] for entry in json.loads(packed.stdout)[0]["files"]}
    # Then it has the entry point, its declarations, the schema the jobs are checked against and
    # the sources its source maps name, and none of the tests
    assert {
        "package.json",
        "dist/index.js",
        "dist/index.d.ts",
        "dist/generated/booking-email-v1.json",
    } <= files
    assert {"src/index.ts", "src/generated/openapi.ts"} <= files
    assert [path for path in files if path != "package.json" and not path.startswith(("dist/", "src/"))] == []


def test_the_clients_code_is_formatted_as_prettier_writes_it() -> None:
    # `npm run format --workspace clients/typescript` rewrites it so
    checked = run([str(BIN / "prettier"), "--check", "."])
    assert checked.returncode == 0, checked.stdout + checked.stderr
