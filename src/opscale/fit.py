"""The fit stage: every scaling-law fit of a study cube, written to fit.nc and fit.md.

A thin orchestrator. The statistics live in :mod:`opscale.scaling` (one concept per
module: observations, laws, fitting and bootstrap, the robust law, OLS, comparison,
backtest, allocation, the counts of model size and the envelope, the shape claims; its
docstring describes the methods), fit.nc's table format in
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
from pathlib import Path

import pandas as pd
import xarray as xr

from opscale import analyses, theory
from opscale import cube as cubes
from opscale.config import section_defaults
from opscale.markdown import markdown
from opscale.scaling import (
    allocation,
    backtest,
    comparison,
    convergence,
    ols,
    robust,
    shapes,
    sizes,
    slopes,
)
from opscale.scaling.observations import (
    excluded_models,
    exclusion_notes,
    groups,
    observations,
    table_groups,
    table_observations,
    varying_terms,
)
from opscale.scaling.report import Report
from opscale.tables import EXPONENTS, EXPONENTS_FILE, SIZE_N, SIZE_TABLE, exponents, tables_dataset

THEORY_AXIS = {"log_N": "model", "log_n": "data"}  # term -> the theory's axis


def fit_settings(config: dict, overrides: dict | None = None) -> dict:
    """The study's ``fit:`` settings (resolved at parse time), then `overrides`.

    A setting the config lacks (a cube made before it existed) takes the schema's default.
    """
    settings = {**section_defaults("fit"), **config.get("fit", {})}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"fit: unknown setting(s) {sorted(unknown)}; allowed: {sorted(settings)}")
    return {**settings, **overrides}


def fit_cube(
    cube_path,
    fit_path,
    table_path,
    settings: dict | None = None,
    workers: int = 1,
    exponents_path=None,
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
    exponents_path : path-like, optional
        The tidy ``exponents.csv`` (default: beside fit.nc).
    """
    fits = fit(cubes.read(cube_path), settings, workers)
    write_fit(fits, fit_path, table_path, exponents_path)
    return fits


def write_fit(fits: xr.Dataset, fit_path, table_path, exponents_path=None) -> None:
    """fit.nc, fit.md and exponents.csv (default: beside fit.nc) of a fit dataset."""
    cubes.write(fits, fit_path)
    Path(table_path).write_text(markdown(fits))
    exponents_path = exponents_path or Path(fit_path).with_name(EXPONENTS_FILE)
    exponents(fits).to_csv(exponents_path, index=False)


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
    report.add("note", exclusion_notes(cube, obs, settings["response"]))
    found = list(groups(obs, cube))
    tasks = [
        (frame, label, theory.group_config(config, paths), settings)
        for label, frame, paths in found
    ]
    _fit_groups(report, tasks if settings["scaling"] else [], workers)
    rows = pd.DataFrame(report.tables.get(EXPONENTS, []))  # every group's, theory attached
    report.add("shape", shapes.shape_rows(rows, settings["confidence"]))
    paths = {label: group_paths for label, _, group_paths in found}
    report.add("invariance", shapes.invariance_rows(rows, paths))
    for name in settings["analyses"]:
        for table_name, frame in analyses.load(name).analyse(cube, settings).items():
            report.add(f"{name}_{table_name}", frame.to_dict("records"))
    ds = _dataset(report, settings, cube.attrs["config"], cube.attrs.get("axes", "{}"), excluded)
    for law, grid in _fitted_grids(report.fitted, cube):
        ds[f"fitted_{law}"] = grid.assign_attrs(
            long_name=f"{settings['response']} predicted by the {law} law", units="1"
        )
    return ds


def fit_table(
    frame: pd.DataFrame,
    size: str,
    data: str,
    error: str,
    seed: str | None = None,
    groups: tuple[str, ...] = (),
    workers: int = 1,
    name: str = "table",
    **settings,
) -> xr.Dataset:
    """Every fit of a long-format table of runs, as ``fit`` gives for a cube.

    Parameters
    ----------
    frame : DataFrame
        One row per run; any number of runs per (size, data) pair, irregular pairs.
    size, data, error : str
        Columns of the model size N, the data size n and the error (any positive error,
        e.g. a loss with an irreducible part: the law's floor E takes it).
    seed : str, optional
        Column of the seed (runs of one seed are one cluster); none: independent runs.
    groups : tuple of str
        Columns fitted apart (one law per combination of their values).
    **settings
        ``fit:`` settings (e.g. ``bootstrap=200``); the schema's defaults otherwise.
    """
    settings = fit_settings({}, settings)
    obs, excluded, notes = table_observations(frame, size, data, error, seed, groups)
    report = Report()
    report.add("excluded", excluded)
    report.add("note", notes)
    tasks = [(rows, label, None, settings) for label, rows, _ in table_groups(obs, groups)]
    _fit_groups(report, tasks, workers)
    source = {"size": size, "data": data, "error": error, "seed": seed, "groups": list(groups)}
    config = json.dumps({"study": name, "table": source})
    counts = {"not finite and positive": len(excluded)}
    return _dataset(report, settings, config, "{}", counts, response=f"log({error})")


def _fit_groups(report: Report, tasks: list, workers: int) -> None:
    for group_report in _map(_fit_one_group, tasks, workers):
        report.merge(group_report)


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
    if frame.empty:  # every model excluded: the observations' note names why
        return
    if not varying_terms(frame):
        report.note(group, "all fits", "neither N nor n varies: nothing to fit")
        return
    law_fit = robust.fit_robust(frame, group, settings, report)
    ols.ols_fits(frame, group, settings, report)
    report.add("comparison", comparison.comparison_rows(frame, group, settings, report))
    report.add("slope", slopes.slope_rows(frame, group, law_fit, settings, report))
    report.add("backtest", backtest.backtest_rows(frame, group, settings, report))
    report.add("allocation", allocation.allocation_rows(frame, group, law_fit, settings, report))
    sizes.size_rows(frame, group, settings, report)
    _attach_theory(report, group, config, convergence.diagnostics(frame))
    sizes.add_main_rows(report, group)


def _attach_theory(report: Report, group: str, config: dict | None, diagnosis: dict) -> None:
    """Add the theory's exponent, its assumptions, the group's convergence diagnostics and
    the verdict to the group's exponent rows and size rows (of the latter, only the counts
    in ``sizes.WITH_THEORY`` carry the theory's exponent)."""
    if config is None:  # a table states no theory
        params, by_axis = {"b": None, "d2": math.nan}, {}
    else:
        params, by_axis = _predictions(report, group, config)
    rows = [*report.tables.get(EXPONENTS, []), *report.tables.get(SIZE_TABLE, [])]
    for row in rows:
        if row["group"] != group or "verdict" in row:
            continue
        with_theory = row.get("size", SIZE_N) in sizes.WITH_THEORY
        prediction = by_axis.get(THEORY_AXIS[row["term"]]) if with_theory else None
        row.update(
            intrinsic_dim=math.nan if params["b"] is None else float(params["b"]),
            output_dim=float(params["d2"]),
            theory=prediction.theory if prediction else "",
            theory_exponent=prediction.exponent if prediction else math.nan,
            theory_formula=prediction.formula if prediction else "no prediction",
            assumptions=prediction.assumptions if prediction else "",
            **diagnosis,
            verdict=_verdict(row, prediction, diagnosis),
        )


def _predictions(report: Report, group: str, config: dict):
    """The study's parameters (b, d2) and its predictions by axis (none if unresolved)."""
    try:
        params = theory.study_parameters(config)
        by_axis = {p.axis: p for p in theory.predictions(config)}
    except (ValueError, KeyError) as error:  # a cube whose config no longer resolves
        report.note(group, "theory", f"no prediction: the problem does not resolve ({error})")
        params, by_axis = {"b": None, "d2": math.nan}, {}
    return params, by_axis


def _verdict(row: dict, prediction, diagnosis: dict) -> str:
    """The verdict on an exponent row, in order: not identified, budget-limited (data
    axis), no applicable bound, then the theory's (``theory.verdict``). An OLS row is a
    local slope, not the asymptotic exponent a bound is about: it gets none; nor does a
    row in a count of model size the theorem does not use (``opscale.scaling.sizes``)."""
    if row["law"] not in ("robust", "envelope"):
        return "local slope: no verdict (the bound is on the asymptotic exponent)"
    if not sizes.verdict_applies(row):
        return sizes.no_verdict(row)
    if row.get("identified") == "no":
        return "not identified: no verdict"
    if row["term"] == "log_n" and convergence.budget_limited(diagnosis):
        return f"budget-limited: {convergence.still_improving(diagnosis)}, not a data exponent"
    if prediction is None:
        return "no applicable bound"
    return theory.verdict(row["ci_low"], row["ci_high"], prediction)


def _dataset(report: Report, settings: dict, config: str, axes: str, excluded: dict, response=None):
    """fit.nc: every table and its provenance (the config and axes as JSON text)."""
    ds = tables_dataset(report.tables)
    ds.attrs.update(
        config=config,
        axes=axes,
        excluded=json.dumps(excluded),
        confidence=settings["confidence"],
        settings=json.dumps(settings, sort_keys=True),
        response=response or f"log({settings['response']}), unsquared relative L2 error",
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
