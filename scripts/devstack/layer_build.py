"""Build the Lambda dependencies layer without Docker, and only when its inputs change.

``pip install --platform ... --only-binary=:all:`` fetches the arm64 wheels of the runtime's
dependencies (layers/booking_durability/requirements.txt) for the functions' Python version into
``.build/layers/dependencies/python``. A stamp beside the folder holds the sha256 of every input
(the requirements, the Python version, the platforms, the pip arguments and the trimming rules);
when it matches, nothing is done, so ``python app.py`` / ``npx cdk synth`` can call this on every
run.

Babel ships locale data for ~1,150 locales (36 MB); the product renders ``en`` and ``es`` only, so
everything but ``root``, ``en*`` and ``es*`` is dropped (the layer goes from ~67 MB to ~32 MB).

Usage: ``.venv/bin/python scripts/build_layer.py [--force]``
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "layers" / "booking_durability" / "requirements.txt"
LAYER_DIR = REPO_ROOT / ".build" / "layers" / "dependencies"

# Bump when the build steps below change in a way the other inputs do not capture.
BUILD_FORMAT = 1
# Babel locales the product renders (CONTRACT §1: "en" and "es", regional variants fall back).
KEPT_BABEL_LOCALE_PREFIXES = ("root", "en", "es")

#: Runs ``pip`` with the given arguments (everything after ``pip``); tests inject a fake.
Installer = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class LayerBuild:
    """The outcome of :func:`ensure_dependencies_layer`."""

    layer_dir: Path
    digest: str
    rebuilt: bool
    bytes_before_trim: int = 0
    bytes_after_trim: int = 0


def lambda_target() -> tuple[str, tuple[str, ...]]:
    """The functions' Python version and wheel platforms, from their one place: stacks/settings.py."""
    from stacks.settings import LAMBDA_PLATFORMS, LAMBDA_PYTHON_VERSION

    return LAMBDA_PYTHON_VERSION, LAMBDA_PLATFORMS


def host_target() -> tuple[str, tuple[str, ...]]:
    """This machine's Python version and wheel platforms: the same layer, built to be imported
    here (``make bench`` measures the functions' cold import over it)."""
    machine = os.uname().machine
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return version, (f"manylinux2014_{machine}", f"manylinux_2_28_{machine}")


def pip_arguments(
    requirements: Path, target: Path, python_version: str, platforms: Sequence[str]
) -> list[str]:
    """The ``pip`` arguments that fetch the layer's wheels for Lambda (arm64, CPython)."""
    args = ["install"]
    for platform in platforms:
        args += ["--platform", platform]
    args += [
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--target",
        str(target),
        "--requirement",
        str(requirements),
        # .pyc files for the build machine's Python would be dead weight on Lambda's.
        "--no-compile",
        "--disable-pip-version-check",
        "--quiet",
    ]
    return args


def input_digest(requirements_text: str, python_version: str, platforms: Sequence[str]) -> str:
    """sha256 of everything that decides the layer's content."""
    inputs = {
        "build_format": BUILD_FORMAT,
        "requirements": requirements_text,
        "python_version": python_version,
        "platforms": list(platforms),
        # The placeholders keep machine-specific paths out of the digest.
        "pip_arguments": pip_arguments(Path("<requirements>"), Path("<target>"), python_version, platforms),
        "kept_babel_locales": list(KEPT_BABEL_LOCALE_PREFIXES),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def stamp_path(layer_dir: Path) -> Path:
    # Beside the layer folder, not in it: the stamp must not end up in the layer's zip.
    return layer_dir.with_name(layer_dir.name + ".sha256")


def run_pip(args: Sequence[str]) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def ensure_dependencies_layer(
    *,
    requirements: Path = REQUIREMENTS,
    layer_dir: Path = LAYER_DIR,
    python_version: str | None = None,
    platforms: Sequence[str] | None = None,
    installer: Installer = run_pip,
    force: bool = False,
) -> LayerBuild:
    """Build ``layer_dir/python`` from ``requirements`` unless the stamp says it is up to date."""
    default_version, default_platforms = lambda_target()
    version = python_version or default_version
    wheel_platforms = tuple(platforms or default_platforms)
    digest = input_digest(requirements.read_text(encoding="utf-8"), version, wheel_platforms)
    stamp = stamp_path(layer_dir)
    # Parallel test workers and a concurrent `cdk synth` may all ask at once: one builds.
    with _exclusive(layer_dir.with_name(layer_dir.name + ".lock")):
        if not force and _stamp_matches(stamp, digest) and (layer_dir / "python").is_dir():
            return LayerBuild(layer_dir=layer_dir, digest=digest, rebuilt=False)
        return _build(requirements, layer_dir, stamp, digest, version, wheel_platforms, installer)


def _build(
    requirements: Path,
    layer_dir: Path,
    stamp: Path,
    digest: str,
    version: str,
    platforms: Sequence[str],
    installer: Installer,
) -> LayerBuild:
    # Build beside the real folder and swap at the end, so an interrupted build never leaves a
    # half-filled layer behind a valid stamp.
    staging = layer_dir.with_name(layer_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    site = staging / "python"
    site.mkdir(parents=True)
    installer(pip_arguments(requirements, site, version, platforms))
    before = _tree_size(site)
    _trim(site)
    after = _tree_size(site)

    stamp.unlink(missing_ok=True)
    shutil.rmtree(layer_dir, ignore_errors=True)
    staging.rename(layer_dir)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return LayerBuild(
        layer_dir=layer_dir, digest=digest, rebuilt=True, bytes_before_trim=before, bytes_after_trim=after
    )


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stamp_matches(stamp: Path, digest: str) -> bool:
    try:
        return stamp.read_text(encoding="utf-8").strip() == digest
    except FileNotFoundError:
        return False


def _trim(site: Path) -> None:
    """Drop what Lambda never loads: other locales' babel data, caches, console scripts."""
    locale_data = site / "babel" / "locale-data"
    if locale_data.is_dir():
        for entry in locale_data.iterdir():
            locale = entry.name.split(".", 1)[0]
            language = locale.split("_", 1)[0]
            if language not in KEPT_BABEL_LOCALE_PREFIXES:
                entry.unlink()
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(site / "bin", ignore_errors=True)


def _tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def describe(build: LayerBuild) -> str:
    """One line for a developer's terminal."""
    where = os.path.relpath(build.layer_dir, Path.cwd())
    if not build.rebuilt:
        return f"dependencies layer up to date: {where} (inputs sha256 {build.digest[:12]})"
    return (
        f"dependencies layer built: {where} ({build.bytes_before_trim / 1e6:.1f} MB installed, "
        f"{build.bytes_after_trim / 1e6:.1f} MB after trimming; inputs sha256 {build.digest[:12]})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = parser.parse_args(argv)
    print(describe(ensure_dependencies_layer(force=args.force)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
