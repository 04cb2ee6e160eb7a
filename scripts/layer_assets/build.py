"""Build the Lambda layers without Docker, and only when their inputs change.

Dependencies: ``pip install --platform ... --only-binary=:all:`` fetches the arm64 wheels of the
runtime's dependencies (layers/booking_durability/requirements.txt) for the functions' Python
version into ``.build/layers/dependencies/python``. Domain: the ``booking_durability`` package is
copied from ``layers/booking_durability/python`` into ``.build/layers/domain/python``.

Both layers ship bytecode for the functions' CPython. Lambda mounts layers read-only, so a layer
without it makes every cold start compile each module it imports (about 0.4 s for the API
functions, measured on this machine). The bytecode is compiled by an interpreter of the runtime's
version found here (this one, ``python3.X`` on PATH, or pyenv's) as PEP 552 ``unchecked-hash``
files: the asset zip resets every file's time, which would void timestamp-checked bytecode, and a
layer's sources never change under it. With no such interpreter the layers are built without
bytecode, and the build says so.

A stamp beside each folder holds the sha256 of every input (the requirements or the package's
files, the Python version, the platforms, the pip arguments, the trimming rules, whether bytecode
is compiled); when it matches, nothing is done, so ``python app.py`` / ``npx cdk synth`` can call
this on every run.

Babel ships locale data for ~1,150 locales (36 MB); the product renders ``en`` and ``es`` only, so
everything but ``root``, ``en*`` and ``es*`` is dropped (the layer goes from ~67 MB to ~32 MB).
The distributions pip pulls in only as others' dependencies are dropped where no function loads
them from the layer (``DROPPED_DISTRIBUTIONS``): boto3's own (botocore and what it needs, which the
Tracer's aws-xray-sdk and Powertools ask for) come with the Lambda runtime, and a copy in the layer
would shadow them with a botocore the runtime's boto3 was never released with. That takes the
layer from ~55 MB to ~26 MB (~10 MB zipped), bytecode included.

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
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "layers" / "booking_durability" / "requirements.txt"
LAYER_DIR = REPO_ROOT / ".build" / "layers" / "dependencies"
DOMAIN_SOURCE = REPO_ROOT / "layers" / "booking_durability" / "python"
DOMAIN_LAYER_DIR = REPO_ROOT / ".build" / "layers" / "domain"

# Bump when the build steps below change in a way the other inputs do not capture.
BUILD_FORMAT = 2
# Babel locales the product renders (docs/reference/http-api.md#email-request: "en" and "es", regional
# variants fall back).
KEPT_BABEL_LOCALE_PREFIXES = ("root", "en", "es")
#: What the Lambda runtime brings with boto3: never shipped in the layer (see the docstring).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
DROPPED_DISTRIBUTIONS = RUNTIME_PROVIDED

#: Runs ``pip`` with the given arguments (everything after ``pip``); tests inject a fake.
Installer = Callable[[Sequence[str]], None]
#: Writes the bytecode of every module under a folder; tests inject a fake.
Compiler = Callable[[Path], None]
#: ``compiler="find"``: look for an interpreter of the layer's Python version (bytecode_compiler).
FIND: Literal["find"] = "find"


@dataclass(frozen=True)
class LayerBuild:
    """The outcome of :func:`ensure_dependencies_layer` or :func:`ensure_domain_layer`."""

    layer_dir: Path
    digest: str
    rebuilt: bool
    bytes_before_trim: int = 0
    bytes_after_trim: int = 0
    #: The layer holds bytecode for its Python version.
    bytecode: bool = False
    python_version: str = ""


def lambda_target() -> tuple[str, tuple[str, ...]]:
    """The functions' Python version and wheel platforms, from their one place: stacks/settings.py."""
    from stacks.settings import LAMBDA_PLATFORMS, LAMBDA_PYTHON_VERSION

    return LAMBDA_PYTHON_VERSION, LAMBDA_PLATFORMS


def host_target(version: str | None = None) -> tuple[str, tuple[str, ...]]:
    """A Python version (this interpreter's by default) and this machine's wheel platforms: the
    same layer, built to be imported here (``make bench`` measures the functions' cold import
    over it)."""
    machine = os.uname().machine
    version = version or f"{sys.version_info.major}.{sys.version_info.minor}"
    return version, (f"manylinux2014_{machine}", f"manylinux_2_28_{machine}")


@dataclass(frozen=True)
class BytecodeCompiler:
    """``compileall`` by a CPython of the layer's version, as unchecked-hash bytecode."""

    python: Path

    def __call__(self, folder: Path) -> None:
        command = [str(self.python), "-m", "compileall", "-q", "-j", "0"]
        command += ["--invalidation-mode", "unchecked-hash", str(folder)]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=_plain_environment())
        if done.returncode != 0:
            output = done.stdout[-2000:] + done.stderr[-2000:]
            raise RuntimeError(f"compiling {folder} to bytecode failed:\n{output}")


def bytecode_compiler(version: str) -> BytecodeCompiler | None:
    """A CPython ``version`` on this machine: this interpreter, ``python<version>`` on PATH, or the
    newest pyenv install of it; None when there is none."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return BytecodeCompiler(Path(sys.executable))
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    installs = sorted(
        pyenv_root.glob(f"versions/{version}.*/bin/python{version}"),
        key=lambda path: [int(part) if part.isdigit() else -1 for part in path.parts[-3].split(".")],
        reverse=True,
    )
    on_path = shutil.which(f"python{version}")
    for candidate in ([Path(on_path)] if on_path else []) + installs:
        # A pyenv shim answers to the name without providing the version: ask the interpreter.
        asked = subprocess.run(
            [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            env=_plain_environment(),
        )
        if asked.returncode == 0 and asked.stdout.strip() == version:
            return BytecodeCompiler(candidate)
    return None


def _plain_environment() -> dict[str, str]:
    # Another CPython must not take this one's PYTHONPATH or PYTHONHOME for its own.
    return {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}


def _resolve(compiler: Compiler | Literal["find"] | None, version: str) -> Compiler | None:
    return bytecode_compiler(version) if compiler == FIND else compiler


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


def input_digest(
    requirements_text: str,
    python_version: str,
    platforms: Sequence[str],
    *,
    bytecode: bool = False,
    dropped: Sequence[str] = DROPPED_DISTRIBUTIONS,
) -> str:
    """sha256 of everything that decides the layer's content."""
    inputs = {
        "build_format": BUILD_FORMAT,
        "requirements": requirements_text,
        "python_version": python_version,
        "platforms": list(platforms),
        # The placeholders keep machine-specific paths out of the digest.
        "pip_arguments": pip_arguments(Path("<requirements>"), Path("<target>"), python_version, platforms),
        "kept_babel_locales": list(KEPT_BABEL_LOCALE_PREFIXES),
        "dropped_distributions": sorted(dropped),
        "bytecode": bytecode,
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
    compiler: Compiler | Literal["find"] | None = FIND,
    force: bool = False,
    dropped: Sequence[str] = DROPPED_DISTRIBUTIONS,
) -> LayerBuild:
    """Build ``layer_dir/python`` from ``requirements`` unless the stamp says it is up to date;
    ``dropped``: the distributions left out (the bench's stand-in for the runtime keeps boto3's)."""
    default_version, default_platforms = lambda_target()
    version = python_version or default_version
    wheel_platforms = tuple(platforms or default_platforms)
    compile_with = _resolve(compiler, version)
    digest = input_digest(
        requirements.read_text(encoding="utf-8"),
        version,
        wheel_platforms,
        bytecode=compile_with is not None,
        dropped=dropped,
    )

    def install(site: Path) -> tuple[int, int]:
        installer(pip_arguments(requirements, site, version, wheel_platforms))
        before = _tree_size(site)
        _drop_distributions(site, dropped)
        _trim(site)
        return before, _tree_size(site)

    return _ensure(layer_dir, digest, version, install, compile_with, force)


def ensure_domain_layer(
    *,
    source: Path = DOMAIN_SOURCE,
    layer_dir: Path = DOMAIN_LAYER_DIR,
    python_version: str | None = None,
    compiler: Compiler | Literal["find"] | None = FIND,
    force: bool = False,
) -> LayerBuild:
    """The ``booking_durability`` package (``source``'s files but caches) as ``layer_dir/python``."""
    version = python_version or lambda_target()[0]
    compile_with = _resolve(compiler, version)
    files = sorted(
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    content = hashlib.sha256()
    for relative in files:
        content.update(f"{relative.as_posix()}\0".encode())
        content.update(hashlib.sha256((source / relative).read_bytes()).digest())
    inputs = {
        "build_format": BUILD_FORMAT,
        "files": content.hexdigest(),
        "python_version": version,
        "bytecode": compile_with is not None,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def copy(site: Path) -> tuple[int, int]:
        for relative in files:
            (site / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, site / relative)
        size = _tree_size(site)
        return size, size

    return _ensure(layer_dir, digest, version, copy, compile_with, force)


def _ensure(
    layer_dir: Path,
    digest: str,
    version: str,
    fill: Callable[[Path], tuple[int, int]],
    compiler: Compiler | None,
    force: bool,
) -> LayerBuild:
    stamp = stamp_path(layer_dir)
    bytecode = compiler is not None
    # Parallel test workers and a concurrent `cdk synth` may all ask at once: one builds.
    with _exclusive(layer_dir.with_name(layer_dir.name + ".lock")):
        if not force and _stamp_matches(stamp, digest) and (layer_dir / "python").is_dir():
            return LayerBuild(
                layer_dir=layer_dir, digest=digest, rebuilt=False, bytecode=bytecode, python_version=version
            )
        # Build beside the real folder and swap at the end, so an interrupted build never leaves
        # a half-filled layer behind a valid stamp.
        staging = layer_dir.with_name(layer_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        site = staging / "python"
        site.mkdir(parents=True)
        before, after = fill(site)
        if compiler is not None:
            compiler(site)

        stamp.unlink(missing_ok=True)
        shutil.rmtree(layer_dir, ignore_errors=True)
        staging.rename(layer_dir)
        stamp.write_text(digest + "\n", encoding="utf-8")
        return LayerBuild(
            layer_dir=layer_dir,
            digest=digest,
            rebuilt=True,
            bytes_before_trim=before,
            bytes_after_trim=after,
            bytecode=bytecode,
            python_version=version,
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


def _canonical(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _drop_distributions(site: Path, names: Sequence[str]) -> None:
    """Remove each installed distribution of ``names``: every file its ``RECORD`` lists (the
    packages pip put in ``site``), then folders left empty."""
    wanted = {_canonical(name) for name in names}
    for info in sorted(site.glob("*.dist-info")):
        if _canonical(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]) not in wanted:
            continue
        record = info / "RECORD"
        listed = record.read_text(encoding="utf-8").splitlines() if record.is_file() else []
        folders: set[Path] = set()
        for line in listed:
            relative = line.split(",", 1)[0]
            path = (site / relative).resolve()
            if not relative or not path.is_relative_to(site.resolve()):
                continue  # a console script pip put outside the folder, say: nothing of ours
            path.unlink(missing_ok=True)
            folders.update(parent for parent in path.parents if parent.is_relative_to(site.resolve()))
        shutil.rmtree(info, ignore_errors=True)
        for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
            if folder != site.resolve() and folder.is_dir():
                for cache in folder.glob("__pycache__"):
                    shutil.rmtree(cache, ignore_errors=True)
                if not any(folder.iterdir()):
                    folder.rmdir()


def _tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def describe(build: LayerBuild, name: str = "dependencies") -> str:
    """One line for a developer's terminal."""
    where = os.path.relpath(build.layer_dir, Path.cwd())
    if build.bytecode:
        bytecode = f"bytecode for CPython {build.python_version}"
    else:
        bytecode = (
            f"NO bytecode: no CPython {build.python_version} on this machine, so every cold start "
            "compiles what it imports"
        )
    if not build.rebuilt:
        return f"{name} layer up to date: {where} ({bytecode}; inputs sha256 {build.digest[:12]})"
    size = f"{build.bytes_before_trim / 1e6:.1f} MB"
    if build.bytes_after_trim != build.bytes_before_trim:
        size += f" installed, {build.bytes_after_trim / 1e6:.1f} MB after trimming"
    return f"{name} layer built: {where} ({size}; {bytecode}; inputs sha256 {build.digest[:12]})"


def ensure_layers(*, force: bool = False) -> list[str]:
    """Both layers of the functions, the runtime's CPython looked for once; a line for each."""
    compiler = bytecode_compiler(lambda_target()[0])
    return [
        describe(ensure_dependencies_layer(compiler=compiler, force=force)),
        describe(ensure_domain_layer(compiler=compiler, force=force), "domain"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = parser.parse_args(argv)
    for line in ensure_layers(force=args.force):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
