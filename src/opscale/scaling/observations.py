"""Observations of a cube: one row per trained model, its group, and what was left out.

The fits are per *group*: one combination of the swept axes that are neither the data
size nor a model size (e.g. one input dimension). A row holds the response ``err`` (the
unsquared ``fit.response``), ``log_err``, ``log_n``, ``log_N``, its grid ``point`` and a
readable ``label`` of the model.

A DeepONet's row also holds two other counts of its size (``model_counts``), computed
from the study config and the row's swept values (not from cube variables, so a cube
made before they existed is refitted without retraining): ``log_N_core``, the log of N
without the sensor layer (the branch's first layer, which reads u at the n_x sensors:
(n_x + 1) x its width weights and biases, ``resources.sensor_layer``), and ``log_p``, the log of
the number p of basis functions (``model.p``; null means p = width). Other models have
NaN there. ``opscale.scaling.sizes`` fits the model axis in them.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import xarray as xr

from opscale import cube as cubes
from opscale import resources
from opscale.scaling import convergence
from opscale.theory import group_config

log = logging.getLogger(__name__)
ERROR = "test_rel_l2"
DATA_AXIS = "data.n_train"
# model axes that are not a model *size*: each value is fitted apart
GROUPING_MODEL_AXES = ("model.name", "model.activation", "model.linearized", "model.shared")
TERMS = ("log_N", "log_n")  # order of the terms of the additive laws
TERM_AXIS = {"log_n": "n (training functions)", "log_N": "N (parameters)"}
DIAGNOSTICS = ("best_step", "steps_trained", "train_rel_l2")  # for scaling.convergence


def observations(cube: xr.Dataset, response: str = ERROR) -> tuple[pd.DataFrame, dict]:
    """One row per trained model with log n, log N, log error; and exclusion counts."""
    axes = cubes.axes(cube)
    wanted = (response, "n_params", "train_flops", "status", *DIAGNOSTICS)
    names = list(dict.fromkeys(v for v in wanted if v in cube))
    df = cube[names].to_dataframe().reset_index()
    gain = convergence.late_gain(cube)
    if gain is not None:  # one value per model: joined on the model's dims
        gains = gain.drop_vars([c for c in gain.coords if c not in gain.dims])
        df = df.merge(gains.to_dataframe().reset_index(), on=list(gain.dims), how="left")
    config = cubes.study_config(cube)
    n_name = next((name for name, path in axes.items() if path == DATA_AXIS), None)
    df["n"] = df[n_name] if n_name else config["data"]["n_train"]
    status = df["status"].astype(int)
    excluded = {
        "diverged": int((status == cubes.DIVERGED).sum()),
        "missing": int((status == cubes.MISSING).sum()),
    }
    df = df[(status == cubes.OK) & np.isfinite(df[response]) & (df[response] > 0)].copy()
    df["err"] = df[response]
    df["log_err"], df["log_n"] = np.log(df["err"]), np.log(df["n"].astype(float))
    df["log_N"] = np.log(df["n_params"].astype(float))
    df = model_counts(df, config, axes)
    df["point"] = df.groupby(list(axes) or ["n"], sort=False).ngroup()
    df["label"] = cubes.group_labels(df, [*axes, "seed"])  # "label": no axis is named so
    if any(excluded.values()):
        log.warning("excluded from the fits: %s", excluded)
    return df, excluded


def _counts(config: dict) -> tuple[float, float]:
    """(sensor layer, p) of the model a resolved config builds; NaN for a non-DeepONet
    or a problem whose shapes cannot be read."""
    model = config["model"]
    if model["name"] != "deeponet":
        return math.nan, math.nan
    try:
        shapes = resources.problem_shapes(config["problem"])
    except (OSError, KeyError, ValueError) as error:
        log.warning("no sensor-layer count: %s", error)
        return math.nan, float(resources.basis_functions(model))
    return float(resources.sensor_layer(model, shapes)), float(resources.basis_functions(model))


def model_counts(df: pd.DataFrame, config: dict, axes: dict) -> pd.DataFrame:
    """`df` with ``log_N_core`` (N without the sensor layer) and ``log_p`` (module doc).

    Counted once per combination of swept values, from `config` with those values set.
    A count that is not positive (N no larger than its sensor layer) is NaN.
    """
    names = list(axes)
    keys = list(df[names].itertuples(index=False, name=None)) if names else [()] * len(df)
    paths = list(axes.values())
    counted = {
        key: _counts(group_config(config, dict(zip(paths, map(_plain, key), strict=True))))
        for key in dict.fromkeys(keys)
    }
    layer, p = (np.array([counted[key][i] for key in keys], float) for i in (0, 1))
    core = df["n_params"].to_numpy(float) - layer
    df = df.copy()
    df["log_N_core"] = np.log(np.where(core > 0, core, np.nan))
    df["log_p"] = np.log(p)
    return df


def excluded_models(cube: xr.Dataset, response: str = ERROR) -> list[dict]:
    """Models left out of every fit, with the reason (diverged, missing, error <= 0)."""
    df = cube[[response, "status"]].to_dataframe().reset_index()
    axes = list(cubes.axes(cube))
    reasons = np.select(
        [df["status"] == cubes.DIVERGED, df["status"] == cubes.MISSING],
        ["diverged", "missing (not trained)"],
        default="error not finite and positive",
    )
    bad = (df["status"] != cubes.OK) | ~(np.isfinite(df[response]) & (df[response] > 0))
    labels = cubes.group_labels(df[bad], [*axes, "seed"])
    return [
        {"group": "all", "model": model, "fits": "all", "reason": reason}
        for model, reason in zip(labels, reasons[bad.to_numpy()], strict=True)
    ]


def exclusion_notes(cube: xr.Dataset, obs: pd.DataFrame, response: str = ERROR) -> list[dict]:
    """Notes for the groups of a cube none of whose models is left to fit, naming why.

    One row of the ``note`` table (group, step, reason) per such group, e.g. ``all 8
    models excluded: 8 have a non-finite test_rel_l2 (NaN or inf), 0 a test_rel_l2 <= 0,
    0 diverged, 0 missing (not trained); nothing to fit``.
    """
    df = cube[[response, "status"]].to_dataframe().reset_index()
    by = grouping_axes(cube)
    df["group"], df["cause"] = cubes.group_labels(df, by), _causes(df, response)
    kept = set(cubes.group_labels(obs, by))
    notes = [
        {"group": group, "step": "all fits", "reason": _all_excluded(rows["cause"], response)}
        for group, rows in df.groupby("group", sort=False)
        if group not in kept
    ]
    for note in notes:
        log.warning("%s: %s", note["group"], note["reason"])
    return notes


# Why a model is left out of every fit, in the order they are told apart (status first).
CAUSES = ("diverged", "missing", "non-finite", "not positive")


def _causes(df: pd.DataFrame, response: str) -> np.ndarray:
    """The cause (``CAUSES``) each model of `df` is left out for; '' for a kept one."""
    err = df[response].to_numpy(float)
    conditions = [
        df["status"].to_numpy() == cubes.DIVERGED,
        df["status"].to_numpy() == cubes.MISSING,
        ~np.isfinite(err),
        err <= 0,
    ]
    return np.select(conditions, CAUSES, default="")


def _all_excluded(causes: pd.Series, response: str) -> str:
    """``all 8 models excluded: 8 have a non-finite ...; nothing to fit``."""
    n = causes.value_counts().reindex(CAUSES, fill_value=0)
    return (
        f"all {len(causes)} models excluded: {n['non-finite']} have a non-finite {response} "
        f"(NaN or inf), {n['not positive']} a {response} <= 0, {n['diverged']} diverged, "
        f"{n['missing']} missing (not trained); nothing to fit"
    )


def _plain(value):
    """A NumPy scalar as a plain Python value (for config paths)."""
    return value.item() if hasattr(value, "item") else value


def grouping_axes(cube: xr.Dataset) -> list[str]:
    """Swept axes that are neither the data size nor a model size: fitted separately."""
    axes = cubes.axes(cube)
    return [
        name
        for name, path in axes.items()
        if path != DATA_AXIS and (not path.startswith("model.") or path in GROUPING_MODEL_AXES)
    ]


def groups(obs: pd.DataFrame, cube: xr.Dataset):
    """Yield (label, observations, {dotted path: value}) for every group of the cube."""
    by, axes = grouping_axes(cube), cubes.axes(cube)
    if not by:
        yield cubes.ALL_GROUP, obs, {}
        return
    for key, frame in obs.groupby(by, sort=False):
        values = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        yield cubes.group_label(values), frame, {axes[k]: _plain(v) for k, v in values.items()}


def varying_terms(frame: pd.DataFrame, minimum: int = 2) -> tuple[str, ...]:
    """The terms (log_N, log_n) with at least `minimum` distinct values in `frame`."""
    return tuple(t for t in TERMS if frame[t].nunique() >= minimum)


# ------------------------------------------------------------------ long-format tables
def table_observations(
    frame: pd.DataFrame, size: str, data: str, error: str, seed=None, by=()
) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """Observations of a long-format table: one row per run (model size, data size, error).

    Irregular (N, n) pairs, any number of runs per pair and missing cells are fine. Rows
    whose size, data size or error is not finite and positive are left out and named;
    runs that appear twice (the same values in every column used) are named in the notes
    and kept. Without a seed
    column every run is its own seed (independent runs).

    Returns
    -------
    obs : DataFrame
        The columns of ``observations`` plus `by`.
    excluded : list of dict
        Rows of the ``excluded`` table (group, model, fits, reason).
    notes : list of dict
        Rows of the ``note`` table (group, step, reason).
    """
    missing = [c for c in (size, data, error, seed, *by) if c is not None and c not in frame]
    if missing:
        raise KeyError(f"no column {', '.join(map(repr, missing))}; columns: {list(frame)}")
    df = frame[[c for c in (size, data, error, seed, *by) if c is not None]].copy()
    df["seed"] = df[seed] if seed else np.arange(len(df))
    df = df.assign(n_params=df[size], n=df[data], err=df[error])
    df["label"] = cubes.group_labels(df, [*by, size, data, "seed"])
    bad = _bad_rows(df, ("n_params", "n", "err"), (size, data, error))
    excluded = [
        {"group": "all", "model": df.at[i, "label"], "fits": "all", "reason": reason}
        for i, (_, reason) in bad.items()
    ]
    notes = _duplicates(df, [c for c in (size, data, error, seed, *by) if c is not None])
    notes += _table_exclusion_notes(df, bad, list(by))
    df = df.drop(index=list(bad))
    df["log_err"], df["log_n"] = np.log(df["err"].astype(float)), np.log(df["n"].astype(float))
    df["log_N"] = np.log(df["n_params"].astype(float))
    df["point"] = df.groupby([*by, "n_params", "n"], sort=False).ngroup()
    return df.reset_index(drop=True), excluded, notes


def _bad_rows(df: pd.DataFrame, columns, names) -> dict:
    """Row index -> (column name, why it cannot be fitted: a value not finite and positive)."""
    bad = {}
    for column, name in zip(columns, names, strict=True):
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(float)
        for i in df.index[~(np.isfinite(values) & (values > 0))]:
            reason = f"{name} = {df.at[i, column]!r} is not finite and positive"
            bad.setdefault(i, (name, reason))
    return bad


def _table_exclusion_notes(df: pd.DataFrame, bad: dict, by: list[str]) -> list[dict]:
    """Notes for the groups of a table none of whose runs is left to fit, naming why."""
    cause = pd.Series({i: name for i, (name, _) in bad.items()}, index=df.index, dtype=object)
    notes = []
    for group, rows in cause.groupby(cubes.group_labels(df, by), sort=False):
        if rows.notna().all():
            counts = ", ".join(
                f"{k} with {name} not finite and positive"
                for name, k in rows.value_counts().items()
            )
            reason = f"all {len(rows)} runs excluded: {counts}; nothing to fit"
            notes.append({"group": group, "step": "all fits", "reason": reason})
    return notes


def _duplicates(df: pd.DataFrame, columns: list[str]) -> list[dict]:
    """Notes naming the runs that appear more than once (the same values in `columns`)."""
    notes = []
    for key, rows in df[df.duplicated(columns, keep=False)].groupby(columns, sort=False):
        shared = cubes.group_label(dict(zip(columns, key, strict=True)))
        reason = f"{len(rows)} runs share {shared}; all kept, as separate runs"
        notes.append({"group": "all", "step": "table", "reason": reason})
    return notes


def table_groups(obs: pd.DataFrame, by=()):
    """Yield (label, observations, {}) for every group of a table (no config paths)."""
    if not by:
        yield cubes.ALL_GROUP, obs, {}
        return
    for key, frame in obs.groupby(list(by), sort=False):
        values = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        yield cubes.group_label(values), frame, {}
