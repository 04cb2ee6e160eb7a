"""The domain layer holds the functions' code and nothing else: no operator tooling, no local-stack
or build module, and no module that no function loads (dead room in every cold start's asset)."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

from layer_assets.build import ensure_domain_layer

ROOT = Path(__file__).resolve().parents[2]
LAMBDAS = ROOT / "lambdas"
#: The packages that live beside the layer and must never ship in it.
NOT_IN_THE_LAYER = ("operations", "devstack", "layer_assets", "stacks")
#: Of those, the tooling under scripts/ (the stacks share names with the layer on purpose: a
#: construct is named after the function or table it makes).
TOOLING = ("operations", "devstack", "layer_assets")
#: Modules of the layer no entry point loads, each with why it ships anyway.
UNLOADED_BY_DESIGN = {
    "booking_durability.stack_outputs": (
        "the stack's output names, shared with stacks/ and the operator tools as the one place they "
        "are spelled; standard library only"
    ),
}


@pytest.fixture(scope="module")
def layer_modules(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The dotted name of every module the built domain layer holds."""
    built = ensure_domain_layer(
        layer_dir=tmp_path_factory.mktemp("layer") / "domain", python_version="3.13", compiler=None
    )
    site = built.layer_dir / "python"
    modules = set()
    for path in site.rglob("*.py"):
        parts = path.relative_to(site).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("booking_durability", cache_dir=None)


def entry_points() -> list[str]:
    """``booking_durability.entrypoints.<function>`` for every folder of lambdas/."""
    return sorted(
        f"booking_durability.entrypoints.{folder.name}"
        for folder in LAMBDAS.iterdir()
        if (folder / "handler.py").is_file()
    )


def closure(graph: grimp.ImportGraph, module: str) -> set[str]:
    """What importing ``module`` may load: what it imports, at any depth and in any function body,
    with every package on the way (importing a module runs its packages' ``__init__``)."""
    loaded = {module} | graph.find_upstream_modules(module)
    return loaded | {".".join(name.split(".")[:i]) for name in loaded for i in range(1, name.count(".") + 1)}


def test_every_function_runs_its_entry_point(graph: grimp.ImportGraph) -> None:
    # Given each function's handler, Then it is its entry point's, imported from the layer
    for entry_point in entry_points():
        function = entry_point.rsplit(".", 1)[1]
        source = (LAMBDAS / function / "handler.py").read_text(encoding="utf-8")
        assert f"from {entry_point} import handler" in source
        assert entry_point in graph.modules


def test_the_layer_holds_no_operator_tool_local_stack_or_build_module(layer_modules: set[str]) -> None:
    # Given the built layer's modules, Then each is the domain package's
    assert layer_modules
    assert {module.split(".")[0] for module in layer_modules} == {"booking_durability"}
    for package in NOT_IN_THE_LAYER:
        # Then no part of the layer is named like a package that lives beside it
        assert not [module for module in layer_modules if package in module.split(".")]
    for package in TOOLING:
        # And no module of the tooling was copied in under another folder
        names = {path.stem for path in (ROOT / "scripts" / package).glob("*.py")} - {"__init__"}
        assert names
        assert not {module.rsplit(".", 1)[-1] for module in layer_modules} & names, package


def test_every_module_of_the_layer_is_loaded_by_some_function(
    layer_modules: set[str], graph: grimp.ImportGraph
) -> None:
    # Given what the layer holds, and what the functions' entry points may load
    assert layer_modules == set(graph.modules)
    loaded = set().union(*(closure(graph, entry_point) for entry_point in entry_points()))
    # Then every module is loaded by some function, or listed with why it ships unloaded
    assert layer_modules - loaded == set(UNLOADED_BY_DESIGN)


def test_a_module_no_function_loads_is_found(tmp_path: Path) -> None:
    # Given a package whose entry point loads one of two modules
    package = tmp_path / "roomy"
    (package / "entrypoints").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "entrypoints" / "__init__.py").write_text("")
    (package / "entrypoints" / "one.py").write_text("def handler():\n    from roomy import used\n")
    (package / "used.py").write_text("")
    (package / "dead.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        small = grimp.build_graph("roomy", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    # Then the closure of its entry point leaves out only the dead module
    assert set(small.modules) - closure(small, "roomy.entrypoints.one") == {"roomy.dead"}
