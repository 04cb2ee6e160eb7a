"""One name, one thing: two modules of the layer share a file name only when they are the same
part of parallel packages (each queue's consumer, say). Any other shared name makes a reader, or
an import, pick between two different things that are called alike."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "booking_durability" / "python" / "booking_durability"

# File name -> the packages (relative to the domain package) that each hold one, and why they
# are parallel. ``__init__.py`` marks every package and is no module of its own.
PARALLELS: dict[str, tuple[frozenset[str], str]] = {
    "consumer.py": (
        frozenset({"emails", "notifications"}),
        "each queue's Lambda batch loop: records to the delivery logic, a partial batch response",
    ),
    "delivery.py": (
        frozenset({"emails", "notifications"}),
        "each queue's logic for one message: an email job sent once, a drift event notified once",
    ),
    "failure_policy.py": (
        frozenset({"emails", "notifications"}),
        "each queue's pure decision on a failure: retry, defer or dead-letter, with its reasons",
    ),
    "ports.py": (
        frozenset({"emails", "reservations"}),
        "each domain's Protocols for the stores and queues its logic is handed",
    ),
    **{
        f"{function}.py": (
            frozenset({"entrypoints", "wiring", "settings"}),
            "each function's entry point, the wiring only that entry point uses, and its settings",
        )
        for function in ("drift_sweep", "email_api", "email_consumer", "notifier", "reservations_api")
    },
}


def shared_names(files: list[Path], package: Path) -> dict[str, frozenset[str]]:
    """Each file name more than one module has, with the packages holding it (``.`` for the root)."""
    where: dict[str, set[str]] = defaultdict(set)
    for path in files:
        if path.name != "__init__.py":
            where[path.name].add(path.parent.relative_to(package).as_posix())
    return {name: frozenset(places) for name, places in where.items() if len(places) > 1}


def allowed(shared: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """What of ``shared`` is no listed parallel: an empty answer is a layer of one name, one thing."""
    return {name: places for name, places in shared.items() if PARALLELS.get(name, (None,))[0] != places}


def test_the_check_refuses_a_name_shared_outside_the_listed_parallels(tmp_path: Path) -> None:
    # Given a package where emails and notifications each have a consumer (a listed parallel), and
    # the root and reservations each have errors.py, and a third package has a consumer too
    for module in ("emails/consumer.py", "notifications/consumer.py", "errors.py", "reservations/errors.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    files = sorted(tmp_path.rglob("*.py"))
    # Then only errors.py is refused
    assert allowed(shared_names(files, tmp_path)) == {"errors.py": frozenset({".", "reservations"})}
    # And a parallel spreading to a package that is not listed is refused as well
    (tmp_path / "operations").mkdir()
    (tmp_path / "operations" / "consumer.py").write_text("")
    refused = allowed(shared_names(sorted(tmp_path.rglob("*.py")), tmp_path))
    assert refused["consumer.py"] == frozenset({"emails", "notifications", "operations"})


def test_the_layers_modules_share_a_name_only_as_listed_parallels() -> None:
    files = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    # Given the layer's modules
    shared = shared_names(files, PACKAGE)
    # Then every shared name is a listed parallel, and every listed parallel is still there
    assert allowed(shared) == {}
    assert set(shared) == set(PARALLELS)
