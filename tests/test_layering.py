"""The package's layers: lower layers never import upper ones, no cycles, every module alone.

Layers, lowest first (a module may import its own layer and those below):

0. registries and settings: config, layout, rng, the registries Snakemake reads at parse
   time (figures, the analyses' registry, the problems' registry), the point-file schema;
1. data, models and files: problems, models, measures, grid, cube, theory, tables;
2. jobs and statistics: train, reuse, status, jobs, the scaling package;
3. reports: the analyses, plots, fit.md, the report page, compare and export;
4. entry points: the fit stage, the command line.

Imports are read from the source (``ast``), function-level ones included. The analyses'
registry loads its modules by name (``importlib``): those edges are exempt from the layer
rule (a registry names what is above it) but count for cycles.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SRC = REPO / "src"
# (layer, module names; "x.*" means every module below package x, not x itself)
LAYERS = [
    ("registries and settings", ["opscale", "opscale.config", "opscale.layout", "opscale.rng"]),
    ("registries and settings", ["opscale.plugins"]),
    ("registries and settings", ["opscale.schema", "opscale.figures", "opscale.analyses"]),
    ("registries and settings", ["opscale.problems.registry"]),
    ("data, models and files", ["opscale.problems", "opscale.problems.*", "opscale.models"]),
    ("data, models and files", ["opscale.models.*", "opscale.ensemble", "opscale.evaluate"]),
    ("data, models and files", ["opscale.measures", "opscale.measures.*", "opscale.grid"]),
    ("data, models and files", ["opscale.resources"]),
    ("data, models and files", ["opscale.cube", "opscale.theory", "opscale.tables"]),
    ("jobs and statistics", ["opscale.train", "opscale.reuse", "opscale.status", "opscale.jobs"]),
    ("jobs and statistics", ["opscale.progress"]),
    ("jobs and statistics", ["opscale.scaling", "opscale.scaling.*", "opscale.adaptive"]),
    ("reports", ["opscale.analyses.*", "opscale.plots", "opscale.markdown", "opscale.page"]),
    ("reports", ["opscale.compare"]),
    ("entry points", ["opscale.fit", "opscale.cli"]),
]
ORDER = list(dict.fromkeys(name for name, _ in LAYERS))


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((SRC / "opscale").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> int:
    """The layer of `module`: an exact name wins over a ``package.*`` pattern."""
    exact = [name for name, members in LAYERS if module in members]
    wild = [
        name
        for name, members in LAYERS
        for m in members
        if m.endswith(".*") and module.startswith(m[:-1])
    ]
    if not exact and not wild:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return ORDER.index((exact or wild)[0])


def imports(module: str, path: Path, known: dict) -> set[str]:
    """The opscale modules `module` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "opscale"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opscale"):
            for alias in node.names:  # `from opscale import cube` imports a module
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return {m for m in found if m != module}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def registry_edges() -> dict[str, set[str]]:
    """Modules a registry loads by name at run time (importlib)."""
    from opscale.analyses import ANALYSES

    return {"opscale.analyses": {a.module for a in ANALYSES.values()}}


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_lower_layers_never_import_upper_ones():
    wrong = [
        f"{name} ({ORDER[layer(name)]}) imports {other} ({ORDER[layer(other)]})"
        for name, targets in graph().items()
        for other in targets
        if layer(other) > layer(name)
    ]
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_cycles():
    edges = graph()
    for name, targets in registry_edges().items():
        edges[name] = edges[name] | targets
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_every_module_imports_in_isolation():
    # Each module on its own, every opscale module forgotten first (third-party ones stay
    # loaded, so this takes seconds): a module that works only after another was
    # imported fails here.
    script = (
        "import importlib, sys\n"
        f"names = {sorted(modules())!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'opscale']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as error:\n"
        "        failed.append(f'{name}: {type(error).__name__}: {error}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    _python_succeeds(script)


def test_the_workflow_parses_with_the_registries_alone():
    # Snakemake imports config, layout, grid and the registries at parse time, in every
    # DAG build and cluster job: none of them may pull in torch, xarray or matplotlib.
    script = (
        "import sys\n"
        "import opscale.config, opscale.layout, opscale.grid, opscale.figures\n"
        "import opscale.analyses, opscale.problems.registry, opscale.resources\n"
        "heavy = {'torch', 'xarray', 'matplotlib', 'scipy', 'pandas'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    _python_succeeds(script)


def _python_succeeds(script: str) -> None:
    """Run `script` in a fresh interpreter; fail with its output unless it exits 0."""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr
