"""The dependencies layer build: rebuilt only when its inputs change, trimmed, no network here.

The installer is injected: a fake ``pip`` that records its arguments and writes a few files where
``--target`` points, the way pip would.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from layer_assets.build import (
    BytecodeCompiler,
    bytecode_compiler,
    describe,
    ensure_dependencies_layer,
    ensure_domain_layer,
    host_target,
    input_digest,
    stamp_path,
)
from stacks.settings import LAMBDA_PLATFORMS, LAMBDA_PYTHON_VERSION

BABEL_LOCALES = ["root", "en", "en_GB", "en_US_POSIX", "es", "es_MX", "es_419", "fr", "de_CH", "eo"]


class FakePip:
    """Installs a miniature babel (and a cache, and a console script) into ``--target``."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args: Sequence[str]) -> None:
        self.calls.append(list(args))
        if self.fail:
            raise RuntimeError("pip: network unreachable")
        target = Path(args[args.index("--target") + 1])
        locale_data = target / "babel" / "locale-data"
        locale_data.mkdir(parents=True)
        for locale in BABEL_LOCALES:
            (locale_data / f"{locale}.dat").write_bytes(b"x" * 1000)
        (target / "babel" / "global.dat").write_bytes(b"g" * 100)
        (target / "babel" / "__pycache__").mkdir()
        (target / "babel" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"c")
        (target / "bin").mkdir()
        (target / "bin" / "pybabel").write_text("#!/usr/bin/env python\n")
        # Dependencies of dependencies, each with the RECORD pip writes: one the runtime brings
        # (a package and a module), one the functions need.
        _distribution(target, "botocore-1.44.18", ["botocore/__init__.py", "botocore/data/sqs.json"])
        _distribution(target, "six-1.17.0", ["six.py"])
        _distribution(target, "jinja2-3.1.6", ["jinja2/__init__.py"])


def _distribution(target: Path, name: str, files: Sequence[str]) -> None:
    info = f"{name}.dist-info"
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_text("# module\n")
    (target / info).mkdir()
    (target / info / "METADATA").write_text(f"Name: {name}\n")
    listed = [*files, f"{info}/METADATA", f"{info}/RECORD", f"../../bin/{name}"]
    (target / info / "RECORD").write_text("".join(f"{path},,\n" for path in listed))


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("babel==2.19.0\n")
    return path


@pytest.fixture
def layer_dir(tmp_path: Path) -> Path:
    return tmp_path / ".build" / "layers" / "dependencies"


def test_first_build_fetches_arm64_wheels_for_the_functions_python(
    requirements: Path, layer_dir: Path
) -> None:
    # Given no layer yet
    pip = FakePip()
    # When the layer is ensured
    build = ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=pip)
    # Then pip ran once, for Lambda's platforms and the runtime's Python, binary wheels only
    assert build.rebuilt
    [args] = pip.calls
    platforms = [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"]
    assert platforms == list(LAMBDA_PLATFORMS) == ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]
    assert args[args.index("--implementation") + 1] == "cp"
    assert args[args.index("--python-version") + 1] == LAMBDA_PYTHON_VERSION == "3.13"
    assert "--only-binary=:all:" in args
    assert args[args.index("--requirement") + 1] == str(requirements)
    # And the packages end up where Lambda looks: /opt/python
    assert (layer_dir / "python" / "babel" / "global.dat").is_file()


def test_unchanged_inputs_skip_the_build(requirements: Path, layer_dir: Path) -> None:
    # Given a built layer
    first = ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    # When it is ensured again with the same requirements
    pip = FakePip()
    second = ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=pip)
    # Then pip is not run and the layer is left as it was
    assert pip.calls == []
    assert not second.rebuilt
    assert second.digest == first.digest
    assert (layer_dir / "python" / "babel" / "global.dat").is_file()


def test_changed_requirements_rebuild_the_layer(requirements: Path, layer_dir: Path) -> None:
    # Given a built layer
    first = ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    # When a pin changes
    requirements.write_text("babel==2.20.0\n")
    pip = FakePip()
    second = ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=pip)
    # Then the layer is built again, under a new stamp
    assert len(pip.calls) == 1
    assert second.rebuilt
    assert second.digest != first.digest
    assert stamp_path(layer_dir).read_text().strip() == second.digest


def test_another_python_version_rebuilds_the_layer(requirements: Path, layer_dir: Path) -> None:
    ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    pip = FakePip()
    build = ensure_dependencies_layer(
        requirements=requirements, layer_dir=layer_dir, python_version="3.15", installer=pip
    )
    assert build.rebuilt
    assert pip.calls[0][pip.calls[0].index("--python-version") + 1] == "3.15"


def test_the_same_layer_builds_for_this_machine_beside_the_lambda_one(
    requirements: Path, layer_dir: Path
) -> None:
    # Given the Lambda layer is built
    ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    # When the layer is ensured for this machine's interpreter (make bench imports over it)
    version, platforms = host_target()
    pip = FakePip()
    host_dir = layer_dir.with_name("host")
    build = ensure_dependencies_layer(
        requirements=requirements,
        layer_dir=host_dir,
        python_version=version,
        platforms=platforms,
        installer=pip,
    )
    # Then pip fetched wheels this interpreter can load, into a folder of their own, trimmed alike
    [args] = pip.calls
    assert args[args.index("--python-version") + 1] == f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = os.uname().machine
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"] == [
        f"manylinux2014_{machine}",
        f"manylinux_2_28_{machine}",
    ]
    assert build.layer_dir == host_dir
    assert build.rebuilt
    assert not (host_dir / "python" / "babel" / "locale-data" / "fr.dat").exists()
    assert (layer_dir / "python" / "babel" / "global.dat").is_file()


def test_a_failed_build_leaves_no_stamp_so_the_next_run_retries(requirements: Path, layer_dir: Path) -> None:
    # Given pip fails midway (no network, say)
    with pytest.raises(RuntimeError):
        ensure_dependencies_layer(
            requirements=requirements, layer_dir=layer_dir, installer=FakePip(fail=True)
        )
    # Then nothing claims the layer is built
    assert not stamp_path(layer_dir).exists()
    # And the next run builds it
    pip = FakePip()
    assert ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=pip).rebuilt
    assert len(pip.calls) == 1


def test_a_deleted_layer_folder_is_rebuilt_even_with_a_matching_stamp(
    requirements: Path, layer_dir: Path
) -> None:
    ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    shutil.rmtree(layer_dir)
    pip = FakePip()
    assert ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=pip).rebuilt
    assert (layer_dir / "python").is_dir()


def test_only_the_locales_the_product_renders_are_kept(requirements: Path, layer_dir: Path) -> None:
    # When the layer is built
    build = ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    # Then babel keeps root, English and Spanish (with their regional fallbacks) only
    kept = sorted(path.stem for path in (layer_dir / "python" / "babel" / "locale-data").iterdir())
    assert kept == sorted(["root", "en", "en_GB", "en_US_POSIX", "es", "es_MX", "es_419"])
    # And the build machine's caches and console scripts are gone
    assert not list((layer_dir / "python").rglob("*.cpython-311.pyc"))
    assert not (layer_dir / "python" / "bin").exists()
    assert build.bytes_after_trim < build.bytes_before_trim


def test_what_the_runtime_brings_is_left_out(requirements: Path, layer_dir: Path) -> None:
    # When the layer is built
    ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    site = layer_dir / "python"
    # Then boto3's dependencies (the runtime's copies must not be shadowed) are gone,
    # files and metadata alike, while what the functions import stays
    assert sorted(path.name for path in site.iterdir()) == ["babel", "jinja2", "jinja2-3.1.6.dist-info"]
    # And a bench that stands in for the runtime can keep boto3's
    kept = ensure_dependencies_layer(
        requirements=requirements, layer_dir=layer_dir.with_name("runtime"), installer=FakePip(), dropped=()
    )
    assert (kept.layer_dir / "python" / "botocore" / "data" / "sqs.json").is_file()
    assert (kept.layer_dir / "python" / "six.py").is_file()


def test_the_stamp_is_kept_outside_the_layer_contents(requirements: Path, layer_dir: Path) -> None:
    ensure_dependencies_layer(requirements=requirements, layer_dir=layer_dir, installer=FakePip())
    assert stamp_path(layer_dir).parent == layer_dir.parent
    assert sorted(path.name for path in layer_dir.iterdir()) == ["python"]


class FakeCompiler:
    """Records the folders it is asked to compile, and what they held then."""

    def __init__(self) -> None:
        self.folders: list[Path] = []
        self.seen: list[list[str]] = []

    def __call__(self, folder: Path) -> None:
        self.folders.append(folder)
        self.seen.append(sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.dat")))


def test_the_layer_is_compiled_for_the_runtime_after_trimming(requirements: Path, layer_dir: Path) -> None:
    # Given a CPython of the runtime's version on this machine
    compiler = FakeCompiler()
    # When the layer is built
    build = ensure_dependencies_layer(
        requirements=requirements, layer_dir=layer_dir, installer=FakePip(), compiler=compiler
    )
    # Then the trimmed folder (no other locales left to compile) was compiled before it was swapped in
    [folder] = compiler.folders
    assert folder.name == "python"
    assert folder.parent != layer_dir
    assert "babel/locale-data/fr.dat" not in compiler.seen[0]
    assert build.bytecode
    assert f"bytecode for CPython {LAMBDA_PYTHON_VERSION}" in describe(build)


def test_without_the_runtimes_cpython_the_layer_says_it_has_no_bytecode_until_one_is_found(
    requirements: Path, layer_dir: Path
) -> None:
    # Given a machine without CPython 3.13
    first = ensure_dependencies_layer(
        requirements=requirements, layer_dir=layer_dir, installer=FakePip(), compiler=None
    )
    # Then the layer is built without bytecode, and the build says what that costs
    assert not first.bytecode
    assert "NO bytecode" in describe(first)
    assert "every cold start compiles" in describe(first)
    # When a CPython 3.13 turns up, the layer is built again, compiled
    compiler = FakeCompiler()
    second = ensure_dependencies_layer(
        requirements=requirements, layer_dir=layer_dir, installer=FakePip(), compiler=compiler
    )
    assert second.rebuilt
    assert second.bytecode
    assert len(compiler.folders) == 1


def test_a_real_compile_writes_unchecked_hash_bytecode_for_its_interpreter(tmp_path: Path) -> None:
    # Given a module in a layer folder
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("ANSWER = 42\n")
    # When this interpreter compiles the folder
    BytecodeCompiler(Path(sys.executable))(tmp_path)
    # Then the bytecode is this CPython's, hash-based and never checked against the source
    tag = sys.implementation.cache_tag
    header = (tmp_path / "pkg" / "__pycache__" / f"__init__.{tag}.pyc").read_bytes()[:16]
    assert struct.unpack("<I", header[4:8])[0] == 0b01


def test_a_source_that_does_not_compile_fails_the_build_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def (:\n")
    with pytest.raises(RuntimeError, match=r"broken\.py"):
        BytecodeCompiler(Path(sys.executable))(tmp_path)


def test_the_compiler_is_this_interpreter_for_its_own_version() -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = bytecode_compiler(version)
    assert found is not None
    assert found.python == Path(sys.executable)


def test_the_compiler_is_the_newest_pyenv_install_that_answers_with_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no python3.98 on PATH, and pyenv installs of 3.98.2 and 3.98.10 (a shim-like script
    # that answers with another version sits in a 3.98.11 folder)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    for patch, answer in (("2", "3.98"), ("10", "3.98"), ("11", "3.97")):
        python = tmp_path / "pyenv" / "versions" / f"3.98.{patch}" / "bin" / "python3.98"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!/bin/sh\necho {answer}\n")
        python.chmod(0o755)
    # When the compiler for 3.98 is looked for
    found = bytecode_compiler("3.98")
    # Then it is 3.98.10's: newest by number, not by spelling, and asked rather than trusted
    assert found is not None
    assert found.python.parts[-3] == "3.98.10"
    # And a version nobody here has finds none
    assert bytecode_compiler("3.96") is None


@pytest.fixture
def package(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "booking_durability" / "__pycache__").mkdir(parents=True)
    (source / "booking_durability" / "__init__.py").write_text('"""The package."""\n')
    (source / "booking_durability" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"stale")
    (source / "booking_durability" / "templates").mkdir()
    (source / "booking_durability" / "templates" / "subject.txt").write_text("{{ subject }}\n")
    return source


def test_the_domain_layer_is_the_package_without_the_build_machines_caches(
    package: Path, tmp_path: Path
) -> None:
    layer = tmp_path / "domain"
    compiler = FakeCompiler()
    build = ensure_domain_layer(source=package, layer_dir=layer, compiler=compiler)
    files = sorted(path.relative_to(layer).as_posix() for path in layer.rglob("*") if path.is_file())
    assert files == [
        "python/booking_durability/__init__.py",
        "python/booking_durability/templates/subject.txt",
    ]
    assert build.bytecode
    assert len(compiler.folders) == 1


def test_the_domain_layer_is_rebuilt_when_a_file_changes_and_only_then(package: Path, tmp_path: Path) -> None:
    layer = tmp_path / "domain"
    first = ensure_domain_layer(source=package, layer_dir=layer, compiler=None)
    # Unchanged: nothing to do (a fresh cache of the developer's interpreter changes nothing)
    (package / "booking_durability" / "__pycache__" / "other.cpython-311.pyc").write_bytes(b"x")
    assert not ensure_domain_layer(source=package, layer_dir=layer, compiler=None).rebuilt
    # A template edited: built again, with the new text
    (package / "booking_durability" / "templates" / "subject.txt").write_text("{{ title }}\n")
    second = ensure_domain_layer(source=package, layer_dir=layer, compiler=None)
    assert second.rebuilt
    assert second.digest != first.digest
    staged = layer / "python" / "booking_durability" / "templates" / "subject.txt"
    assert staged.read_text() == "{{ title }}\n"


# The inputs' hashes of a fixed small input set, as the build has always computed them: a change to
# how the build hashes would make every unchanged synth rebuild and upload both layers again.
PINNED_DOMAIN_DIGEST = "7f6df87334ec62a9a74e1006d19249f82e96ff4d857b3ea06208993ae4d0d57d"
PINNED_DEPENDENCIES_DIGEST = "a1aefe15b1292ee23b038c775a6bc9a449703b867ffce5a38d19788c8fbc2f76"
PINNED_DEPENDENCIES_DIGEST_NO_BYTECODE = "30020c6d615a60b2efff3440cd68a38f6c4ec41f46c1f66a5af5c69fabc15ea0"


def test_the_inputs_hash_of_a_fixed_input_set_stays_what_it_was(tmp_path: Path) -> None:
    # Given a fixed miniature of the domain package
    source = tmp_path / "source"
    for relative, text in {
        "booking_durability/__init__.py": '"""Fixture."""\n',
        "booking_durability/emails/models.py": "VALUE = 1\n",
        "booking_durability/emails/welcome.txt": "Hola {{ name }}\n",
    }.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text, encoding="utf-8")
    # When the domain layer is built from it, and the dependencies layer's inputs are hashed
    domain = ensure_domain_layer(
        source=source, layer_dir=tmp_path / "out" / "domain", python_version="3.13", compiler=None
    )
    platforms = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
    # Then each hash is the pinned one
    assert domain.digest == PINNED_DOMAIN_DIGEST
    assert input_digest("pydantic==2.11.7\n", "3.13", platforms, bytecode=True) == PINNED_DEPENDENCIES_DIGEST
    assert (
        input_digest("pydantic==2.11.7\n", "3.13", platforms[:1], bytecode=False)
        == PINNED_DEPENDENCIES_DIGEST_NO_BYTECODE
    )
