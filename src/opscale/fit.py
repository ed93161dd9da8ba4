"""The fit stage: every scaling-law fit of a study cube, written to fit.nc and fit.md.

A thin orchestrator. The statistics live in :mod:`opscale.scaling` (one concept per
module: observations, laws, fitting and bootstrap, the robust law, OLS, comparison,
backtest, allocation; its docstring describes the methods), fit.nc's table format in
:mod:`opscale.tables`, fit.md's rendering in :mod:`opscale.markdown`, the theory's
predictions in :mod:`opscale.theory` and the analyses in :mod:`opscale.analyses`.

A step that cannot run for a group (too few values on an axis, too few grid points for
the parameters, no FLOP counts, ...) is skipped and the reason is recorded in the
``note`` table of fit.nc and in fit.md; the others go on.
"""

from __future__ import annotations

import concurrent.futures
import json
import math

import pandas as pd
import xarray as xr

from opscale import analyses, theory
from opscale import cube as cubes
from opscale.markdown import markdown
from opscale.scaling import allocation, backtest, comparison, ols, robust
from opscale.scaling.observations import excluded_models, groups, observations, varying_terms
from opscale.scaling.report import Report
from opscale.tables import EXPONENTS, tables_dataset

THEORY_AXIS = {"log_N": "model", "log_n": "data"}  # term -> the theory's axis


def fit_settings(config: dict, overrides: dict | None = None) -> dict:
    """The study's ``fit:`` settings (resolved at parse time), then `overrides`."""
    settings = dict(config["fit"])
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"fit: unknown setting(s) {sorted(unknown)}; allowed: {sorted(settings)}")
    return {**settings, **overrides}


def fit_cube(
    cube_path, fit_path, table_path, settings: dict | None = None, workers: int = 1
) -> xr.Dataset:
    """Fit a cube file; write fit.nc and the Markdown report fit.md.

    Parameters
    ----------
    cube_path, fit_path, table_path : path-like
        The study cube (input), fit.nc and fit.md (outputs).
    settings : dict, optional
        Overrides of the study's ``fit:`` settings (e.g. ``{"bootstrap": 200}``).
    workers : int
        Processes fitting groups in parallel (the result does not depend on it).
    """
    fits = fit(cubes.read(cube_path), settings, workers)
    cubes.write(fits, fit_path)
    with open(table_path, "w") as fh:
        fh.write(markdown(fits))
    return fits


def fit(cube: xr.Dataset, settings: dict | None = None, workers: int = 1) -> xr.Dataset:
    """Every fit of every group of a cube, as one dataset of tables (see module doc).

    Groups are independent (each bootstraps from its own named stream), so with
    ``workers > 1`` they are fitted in that many processes, with identical results.
    """
    config = cubes.study_config(cube)
    settings = fit_settings(config, settings)
    obs, excluded = observations(cube, settings["response"])
    report = Report()
    report.add("excluded", excluded_models(cube, settings["response"]))
    tasks = [
        (frame, label, theory.group_config(config, paths), settings)
        for label, frame, paths in groups(obs, cube)
    ]
    for group_report in _map(_fit_one_group, tasks if settings["scaling"] else [], workers):
        report.merge(group_report)
    for name in settings["analyses"]:
        for table_name, frame in analyses.load(name).analyse(cube, settings).items():
            report.add(f"{name}_{table_name}", frame.to_dict("records"))
    return _dataset(report, cube, excluded, settings)


def _fit_one_group(task: tuple) -> Report:
    """``fit_group`` of one (frame, label, config, settings) into its own report."""
    report = Report()
    fit_group(*task, report)
    return report


def _map(function, tasks: list, workers: int) -> list:
    """`function` over `tasks`, in order, in up to `workers` processes."""
    if workers <= 1 or len(tasks) <= 1:
        return [function(task) for task in tasks]
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(tasks))) as pool:
        return list(pool.map(function, tasks))


def fit_group(frame, group: str, config: dict, settings: dict, report: Report) -> None:
    """Every step for one group, each skipped (with a note) when it cannot run."""
    if not varying_terms(frame):
        report.note(group, "all fits", "neither N nor n varies: nothing to fit")
        return
    law_fit = robust.fit_robust(frame, group, settings, report)
    ols.ols_fits(frame, group, law_fit, settings, report)
    report.add("comparison", comparison.comparison_rows(frame, group, settings, report))
    report.add("backtest", backtest.backtest_rows(frame, group, settings, report))
    report.add("allocation", allocation.allocation_rows(frame, group, law_fit, settings, report))
    _attach_theory(report, group, config)


def _attach_theory(report: Report, group: str, config: dict) -> None:
    """Add the theory's exponent and the verdict to the group's exponent rows."""
    try:
        params = theory.study_parameters(config)
        by_axis = {p.axis: p for p in theory.predictions(config)}
    except (ValueError, KeyError) as error:  # a cube whose config no longer resolves
        report.note(group, "theory", f"no prediction: the problem does not resolve ({error})")
        params, by_axis = {"b": None, "d2": math.nan}, {}
    for row in report.tables.get(EXPONENTS, []):
        if row["group"] != group or "verdict" in row:
            continue
        prediction = by_axis.get(THEORY_AXIS[row["term"]])
        row.update(
            intrinsic_dim=math.nan if params["b"] is None else float(params["b"]),
            output_dim=float(params["d2"]),
            theory=prediction.theory if prediction else "",
            theory_exponent=prediction.exponent if prediction else math.nan,
            theory_formula=prediction.formula if prediction else "no prediction",
            verdict=theory.verdict(row["ci_low"], row["ci_high"], prediction.exponent)
            if prediction
            else "no prediction",
        )


def _dataset(report: Report, cube: xr.Dataset, excluded: dict, settings: dict) -> xr.Dataset:
    """fit.nc: every table, the fitted errors of every law on the grid, provenance."""
    ds = tables_dataset(report.tables)
    for law, grid in _fitted_grids(report.fitted, cube):
        ds[f"fitted_{law}"] = grid.assign_attrs(
            long_name=f"{settings['response']} predicted by the {law} law", units="1"
        )
    ds.attrs.update(
        config=cube.attrs["config"],
        axes=cube.attrs.get("axes", "{}"),
        excluded=json.dumps(excluded),
        confidence=settings["confidence"],
        settings=json.dumps(settings, sort_keys=True),
        response=f"log({settings['response']}), unsquared relative L2 error",
    )
    return ds


def _fitted_grids(fitted: list, cube: xr.Dataset):
    """(law, fitted error on the sweep grid) for every law fitted somewhere."""
    axes = list(cubes.axes(cube))
    if not fitted or not axes:
        return []
    frames = pd.concat(fitted)
    return [
        (law, f.groupby(axes)["fitted"].first().to_xarray()) for law, f in frames.groupby("law")
    ]
