"""The documents stay true to the repository.

Every alarm's runbook anchor (``stacks/runbook.py``) is a heading of ``docs/runbook.md``; every
Logs Insights query the runbook names exists under ``docs/queries/`` and every query there is
named; README.md and ``docs/**/*.md`` link nothing outside the repository: no URL but loopback
ones (the local stack), no ``../shared``, no section sign or contract citation, and every
relative link resolves to a file of the repository (and, with a ``#fragment``, to a heading of
that document). README.md lists every document, the reference pages under ``docs/reference/``
included. Where the code cites a document (``docs/reference/http-api.md#confirmation`` in a
comment, ``docs/runbook.md#...`` in an alarm), that document and heading exist. No code or
document cites a section of the outside contract or an issue tracker's number, which a reader of
the repository cannot look up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from stacks.runbook import RUNBOOK, RUNBOOK_PATH, RunbookSection

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
QUERIES = DOCS / "queries"
RUNBOOK_FILE = ROOT / RUNBOOK_PATH
#: The only hosts a document may name in a URL: the local stack, on this machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Folders that exist on a developer's machine but are never part of the repository.
UNTRACKED_DIRS = frozenset({".local", ".venv", ".build", "cdk.out", "node_modules", ".git"})

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]*:[^>\s]*)>")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>()\"'`]*", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_QUERY_REFERENCE = re.compile(r"queries/([\w.-]+\.logsinsights)")
#: A document the code cites, from the repository root, with its section when one is named:
#: ``docs/runbook.md#email-dlq-not-empty``, ``README.md#quick-start`` (never ``../docs/...`` or
#: another folder's README).
_CITATION = re.compile(r"(?<![\w/.-])((?:docs/[\w./-]+?|README)\.md)(?:#([\w-]+))?")
#: Where code lives that may cite a document (the TypeScript client's sources and tests too).
SOURCE_ROOTS = ("app.py", "Makefile", "lambdas", "layers", "stacks", "scripts", "tests", "clients/typescript")
SOURCE_SUFFIXES = frozenset({".py", ".ts", ".mjs", ".json", ".toml"})
#: Marks of the external contract's sections, which no document of the repository may cite.
_CONTRACT_CITATION = re.compile(r"§|\bCONTRACT\b")
#: A number in an issue tracker ("issue 9", "Issue #12"), which the repository does not hold.
_ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, code spans removed: where Markdown makes links."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield _CODE_SPAN.sub("", line)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (as ``stacks/runbook.py`` derives its anchors)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """``(level, title)`` of every ATX heading outside code blocks."""
    fenced = False
    found = []
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchors(text: str) -> set[str]:
    """Every anchor of a document: a repeated heading gets ``-1``, ``-2``... as on GitHub."""
    seen: Counter[str] = Counter()
    result = set()
    for _, title in headings(text):
        slug = github_slug(title)
        result.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return result


def link_targets(text: str) -> list[str]:
    """Where the document's links point: inline links and images, reference definitions, autolinks."""
    targets = []
    for line in prose(text):
        targets += _INLINE_LINK.findall(line)
        targets += _AUTOLINK.findall(line)
        if match := _REFERENCE_DEFINITION.match(line):
            targets.append(match.group(1))
    return targets


def outside_references(text: str) -> list[str]:
    """What in ``text`` points outside the repository, code blocks included."""
    problems = [f"URL {url}" for url in _URL.findall(text) if urlsplit(url).hostname not in LOOPBACK_HOSTS]
    problems += [f"link {target}" for target in link_targets(text) if _SCHEME.match(target)]
    problems += [f"link {target}" for target in link_targets(text) if target.startswith("//")]
    if "../shared" in text:
        problems.append("../shared")
    return problems


def broken_links(document: Path, text: str) -> list[str]:
    """Relative links of ``document`` that name no file of the repository, or no heading there."""
    broken = []
    for target in link_targets(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # outside the repository: outside_references reports it
        path_part, _, fragment = target.partition("#")
        linked = (document.parent / unquote(path_part)).resolve() if path_part else document
        try:
            inside = linked.relative_to(ROOT)
        except ValueError:
            broken.append(f"{target} (outside the repository)")
            continue
        if not linked.exists() or (inside.parts and inside.parts[0] in UNTRACKED_DIRS):
            broken.append(f"{target} (no such file in the repository)")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text()):
            broken.append(f"{target} (no such heading)")
    return broken


def cited_documents(text: str) -> list[tuple[str, str | None]]:
    """``(path, fragment)`` of every document ``text`` cites, ``fragment`` None when it names none."""
    return [(match.group(1), match.group(2)) for match in _CITATION.finditer(text)]


def broken_citations(text: str) -> list[str]:
    """Citations in ``text`` that name no document of the repository, or no heading of it."""
    broken = []
    for path, fragment in cited_documents(text):
        document = ROOT / path
        if not document.is_file():
            broken.append(f"{path} (no such document)")
        elif fragment is not None and fragment not in anchors(document.read_text()):
            broken.append(f"{path}#{fragment} (no such heading)")
    return broken


def source_files() -> list[Path]:
    """The repository's code and configuration files, those of this test aside (it cites broken
    examples on purpose)."""
    found = []
    for root in (ROOT / name for name in SOURCE_ROOTS):
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            inside = path.relative_to(ROOT).parts
            if UNTRACKED_DIRS.intersection(inside) or "__pycache__" in inside or "dist" in inside:
                continue
            if path.is_file() and (path.suffix in SOURCE_SUFFIXES or path.name == "Makefile"):
                found.append(path)
    return [path for path in found if path.resolve() != Path(__file__).resolve()]


def outside_citations(text: str) -> list[str]:
    """What ``text`` cites that the repository does not hold: a section of the outside contract, or
    an issue tracker's number."""
    return _CONTRACT_CITATION.findall(text) + _ISSUE_NUMBER.findall(text)


@pytest.fixture(scope="module")
def runbook() -> str:
    return RUNBOOK_FILE.read_text()


@pytest.mark.parametrize("section", RUNBOOK.values(), ids=lambda section: section.anchor)
def test_every_alarm_has_its_runbook_section(runbook: str, section: RunbookSection) -> None:
    # Given the section an alarm's description links to
    # When the runbook's headings are read
    # Then one is titled exactly as stacks/runbook.py says, and GitHub gives it that anchor
    assert (2, section.title) in headings(runbook)
    assert github_slug(section.title) == section.anchor
    assert section.anchor in anchors(runbook)


def test_every_query_the_runbook_names_exists_and_every_query_is_named(runbook: str) -> None:
    named = set(_QUERY_REFERENCE.findall(runbook))
    present = {path.name for path in QUERIES.glob("*.logsinsights")}
    assert named, "the runbook names no query"
    assert named <= present, f"named but missing: {sorted(named - present)}"
    assert present <= named, f"in docs/queries but named nowhere: {sorted(present - named)}"


def query_output(path: Path) -> str:
    """The command of a Logs Insights query that makes its output: its ``stats``, else ``fields``."""
    commands = [
        command.strip()
        for command in "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ).split("|")
    ]
    made = [c for c in commands if c.startswith("stats ")] or [c for c in commands if c.startswith("fields ")]
    return made[-1] if made else ""


EMAIL_QUERIES = sorted(
    path for path in QUERIES.glob("*.logsinsights") if "the email consumer's" in path.read_text()
)


@pytest.mark.parametrize("query", EMAIL_QUERIES, ids=lambda path: path.name)
def test_every_email_query_keeps_the_dedupe_key_or_the_letter_in_its_output(query: Path) -> None:
    # An operator joins what a query shows to a dead letter by its dedupe key (or, for a message
    # that never validated, by the letter's DLQ message id, as scripts/dlq.py inspect --list shows)
    output = query_output(query)
    assert "dedupe_key" in output or "dlq_message_id" in output, output


def test_the_dead_letter_listings_name_the_letters_dlq_message_id() -> None:
    for name in (
        "email-dead-letters",
        "email-invalid-messages",
        "email-one-dedupe-key",
        "notifier-dead-letters",
    ):
        assert "dlq_message_id" in query_output(QUERIES / f"{name}.logsinsights"), name


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_documents_link_nothing_outside_the_repository(document: Path) -> None:
    assert outside_references(document.read_text()) == []


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve_to_files_of_the_repository(document: Path) -> None:
    assert broken_links(document, document.read_text()) == []


def test_the_readme_lists_every_document() -> None:
    # Every page under docs/, the reference pages of docs/reference/ too
    readme = ROOT / "README.md"
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in link_targets(readme.read_text())}
    assert {path.resolve() for path in DOCS.rglob("*.md")} <= linked
    assert any(path.parent.name == "reference" for path in DOCS.rglob("*.md"))


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_documents_cite_no_section_of_an_outside_contract(document: Path) -> None:
    # The documents stand on their own: a reader of the repository has no contract to look up
    assert _CONTRACT_CITATION.findall(document.read_text()) == []


def test_every_document_the_code_cites_exists_with_its_heading() -> None:
    # Given every code and configuration file of the repository
    files = source_files()
    assert any(path.name == "runbook.py" for path in files), "the alarms' runbook links are not read"
    # When each citation of a document (and of a section of it) is looked up
    broken = {str(path.relative_to(ROOT)): broken_citations(path.read_text()) for path in files}
    # Then each names a document of the repository, and a heading it has
    assert {path: problems for path, problems in broken.items() if problems} == {}


def test_no_code_or_document_cites_the_outside_contract_or_an_issue_number() -> None:
    # Given every code and configuration file of the repository, the tests', and every document
    files = [*source_files(), *documents()]
    assert any(path.relative_to(ROOT).parts[0] == "tests" for path in files), "the tests are not read"
    # When each is searched for a contract section or an issue number
    found = {str(path.relative_to(ROOT)): outside_citations(path.read_text()) for path in files}
    # Then none cites one: where a rule needs a reference, it is a document of the repository
    assert {path: marks for path, marks in found.items() if marks} == {}


def test_the_checks_catch_what_they_guard_against() -> None:
    # Given a document with an outside link, a path into ../shared, a missing file and anchor
    text = "\n".join(
        [
            "# Title",
            "See [the contract](../shared/spec/CONTRACT.md) and [AWS](https://docs.aws.amazon.com/x).",
            "Also [gone](docs/nothing-here.md), [a bad anchor](README.md#no-such-heading).",
            "Fine: [runbook](docs/runbook.md#email-dlq-not-empty), `http://127.0.0.1:3000`.",
            "```sh",
            "curl https://api.example.net/v1/health   # in a code block, still outside",
            "```",
        ]
    )
    # When the checks read it as if it were README.md
    outside = outside_references(text)
    broken = broken_links(ROOT / "README.md", text)
    # Then each problem is reported, and the loopback URL and the good link are not
    assert "../shared" in outside
    assert "URL https://docs.aws.amazon.com/x" in outside
    assert "URL https://api.example.net/v1/health" in outside
    assert "link https://docs.aws.amazon.com/x" in outside
    assert not any("127.0.0.1" in problem for problem in outside)
    assert "../shared/spec/CONTRACT.md (outside the repository)" in broken
    assert "docs/nothing-here.md (no such file in the repository)" in broken
    assert "README.md#no-such-heading (no such heading)" in broken
    assert len(broken) == 3


def test_the_citation_check_catches_a_missing_document_or_heading() -> None:
    # Given code citing documents: two that exist, two that do not, and paths that are no citation
    text = "\n".join(
        [
            "# the rule: docs/reference/http-api.md#order-of-checks; see README.md#quick-start.",
            '"""Runbook: docs/runbook.md#no-such-alarm, and docs/gone.md."""',
            'RUNBOOK = f"docs/runbook.md#{anchor}"  # no fragment of its own: the file is checked',
            "clients/typescript/README.md and ../docs/elsewhere.md are not paths from the root",
        ]
    )
    # When its citations are read and checked
    cited = cited_documents(text)
    broken = broken_citations(text)
    # Then the good ones pass, the bad ones are named, and the others are not citations at all
    assert ("docs/reference/http-api.md", "order-of-checks") in cited
    assert ("README.md", "quick-start") in cited
    assert ("docs/runbook.md", None) in cited
    assert broken == ["docs/runbook.md#no-such-alarm (no such heading)", "docs/gone.md (no such document)"]
    assert not any("elsewhere" in path or path.startswith("clients") for path, _ in cited)


def test_the_contract_check_catches_a_citation() -> None:
    assert _CONTRACT_CITATION.findall("as CONTRACT §1 point 3 says") == ["CONTRACT", "§"]
    assert _CONTRACT_CITATION.findall("what the booking app relies on (its contract)") == []


def test_the_outside_citation_check_catches_a_section_or_an_issue_number() -> None:
    assert outside_citations("the hop limit (CONTRACT §3; issue #9)") == ["CONTRACT", "§", "issue #9"]
    assert outside_citations("# --- alarms added for operations (Issue 12) ---") == ["Issue 12"]
    assert outside_citations("issues #3 and #4") == ["issues #3"]
    # A document's citation, the contract as a word, a dedupe key's number and counted issues pass
    fine = "docs/reference/http-api.md#order-of-checks, the contract's order, bk-1#x#0, 2 issues"
    assert outside_citations(fine) == []


def test_the_slug_is_the_one_github_makes() -> None:
    # Punctuation and code marks go, spaces become hyphens, case folds
    assert github_slug("The outbox pipe's permissions") == "the-outbox-pipes-permissions"
    assert github_slug("API 5xx rate high") == "api-5xx-rate-high"
    assert (
        github_slug("The email queues are replaced on stages deployed before `QueueWithDlq`")
        == "the-email-queues-are-replaced-on-stages-deployed-before-queuewithdlq"
    )
    # And a repeated heading gets a numbered anchor
    assert anchors("## Notes\n## Notes\n") == {"notes", "notes-1"}
