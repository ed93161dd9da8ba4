"""Theory-vs-measured analyses of a study beyond the scaling-law fit, as a registry.

A study turns analyses on with ``fit: {analyses: [name, ...]}``. ``ANALYSES`` maps each
name to an ``Analysis``: the module implementing it and the names of its figures (kept
here, import-light, because Snakemake reads the figure names at parse time). The module
provides

- ``analyse(cube, settings) -> dict[str, pandas.DataFrame]``: its tables, called by the
  fit rule after the scaling-law fit; stored in fit.nc as tables ``<name>_<table>``
  (read back with ``opscale.tables.table(fits, "<name>_<table>")``);
- ``markdown(fits) -> str``: its section of fit.md, built from fit.nc alone;
- one function ``<figure>(cube, fits) -> matplotlib.figure.Figure`` per figure name,
  each with a caption ``workflow/report/<figure>.rst``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Analysis:
    """Where an analysis lives and the figures it draws."""

    module: str
    figures: tuple[str, ...] = ()


ANALYSES: dict[str, Analysis] = {
    "iteration": Analysis(
        "opscale.analyses.iteration",
        ("iteration_residuals", "iteration_error_vs_k", "iteration_rate_vs_radius"),
    ),
    "recovery": Analysis("opscale.analyses.recovery", ("recovery_probability", "recovery_rank")),
    "linearization": Analysis(
        "opscale.analyses.linearization", ("linearization_errors", "linearization_alignment")
    ),
    "calibration": Analysis("opscale.analyses.calibration", ("calibration_risk",)),
}


def load(name: str) -> ModuleType:
    """The module of analysis `name`."""
    return importlib.import_module(ANALYSES[name].module)


def figures(names: list[str]) -> dict[str, str]:
    """Figure name -> analysis name, for the analyses `names` (in their order)."""
    return {figure: name for name in names for figure in ANALYSES[name].figures}
