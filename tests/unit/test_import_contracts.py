"""The import contracts `make lint` checks (pyproject.toml, lint-imports) hold, and break when a
forbidden import or a new cycle is planted in a copy of the code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
LAYER = Path("layers/booking_durability/python")
#: Where each root package of the contracts lives, relative to the repository.
PACKAGE_FOLDERS = {
    LAYER: ["booking_durability"],
    Path("."): ["stacks"],
    Path("scripts"): ["layer_assets", "devstack", "operations"],
}

DOMAIN_REACHES_FOR = "The routers and the domain never reach for wiring, an adapter or an entry point"
LAYERED = "The layer's packages depend downwards only"
ACYCLIC = "The layer's packages import one another without cycles, at every depth"
LAYER_APART = "The layer never imports the stacks, the layers' build, the local stack or the operator tools"
STACKS_APART = "The stacks import of the layer only the name modules they share with it"
WIRING_PRIVATE = "Only the functions' entry points use their wiring"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the code under ``root`` (a copy of the repository's packages)."""
    paths = [str(root / folder) for folder in PACKAGE_FOLDERS]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The contracts and every package they name, copied (without caches) under ``tmp_path``."""
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for folder, packages in PACKAGE_FOLDERS.items():
        for package in packages:
            shutil.copytree(
                ROOT / folder / package,
                tmp_path / folder / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
    return tmp_path


def plant(root: Path, module: Path, statement: str) -> None:
    with (root / module).open("a", encoding="utf-8") as file:
        file.write(f"\n{statement}\n")


def test_the_copied_code_keeps_every_contract(copy: Path) -> None:
    # Given the repository's packages as they are, Then lint-imports passes over them
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 kept, 0 broken" in done.stdout


BD = LAYER / "booking_durability"


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # a router reaching for its function's wiring
        (BD / "api/reservations.py", "import booking_durability.wiring.reservations_api", DOMAIN_REACHES_FOR),
        # domain logic calling an adapter's concrete module
        (BD / "emails/requests.py", "import booking_durability.adapters.email_queue", DOMAIN_REACHES_FOR),
        # a batch loop importing wiring: the cycle with the domain is back
        (BD / "notifications/consumer.py", "import booking_durability.wiring.notifier", LAYERED),
        # a base module reaching up into a domain package
        (BD / "times.py", "import booking_durability.reservations.holds", LAYERED),
        # a new cycle inside a package: models and providers would import each other
        (BD / "emails/models.py", "import booking_durability.emails.providers.base", ACYCLIC),
        # operator tooling pulled into the layer
        (BD / "reservations/catalog.py", "import operations.selection", LAYER_APART),
        # the stacks importing more of the runtime than the shared name modules
        (Path("stacks/function.py"), "import booking_durability.settings", STACKS_APART),
        # a shared name module no longer dependency-free, so the stacks would load the layer's base
        (BD / "metric_names.py", "import booking_durability.errors", LAYERED),
        # the local stack reaching into a function's wiring
        (Path("scripts/devstack/files.py"), "import booking_durability.wiring.email_api", WIRING_PRIVATE),
    ],
)
def test_a_planted_import_breaks_its_contract(copy: Path, module: Path, statement: str, broken: str) -> None:
    # Given the copy with one import planted
    plant(copy, module, statement)
    # When lint-imports checks it
    done = lint_imports(copy)
    # Then it fails, naming the contract broken
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0, output
    assert f"{broken} BROKEN" in output
