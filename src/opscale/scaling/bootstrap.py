"""Resampling schemes of the bootstrap: which models a resample redraws, and how.

Each scheme maps (frame, fitted log err, parameters, resamples, rng) to resamples
``(rows, y)``: the
rows of the group's frame a resample holds and their log errors. A seed shares its test
set, its initialisation and its nested training data across grid points, so the seed is
the cluster:

seed
    Whole seeds are redrawn with replacement, each bringing all its models (the cluster
    bootstrap). With S seeds the deviations of the refitted parameters from the estimate
    are scaled by sqrt(S/(S-1)) t_{S-1}/z (the small-sample corrections of the
    cluster-robust CR1 variance with t(S-1) quantiles; Cameron and Miller 2015,
    MacKinnon, Nielsen and Webb 2023): without them the percentile interval of a few
    clusters is far too short. The default with replicates and at least 3 seeds.
within_point
    Seeds redrawn independently at every grid point, deviations from the point's mean
    inflated by sqrt(m/(m-1)) (Davison and Hinkley 1997, 3.3). Ignores that a seed's models
    are dependent across points; the default with 2 seeds.
residual
    Residuals of the fit (inflated by sqrt(n/(n-p))) added back to the fitted values at
    random: for unreplicated data (fewer than half of the grid points with more than one
    model), the default there, whatever the seeds.
pairs
    Models redrawn with replacement (each model its own cluster).

Where a scheme cannot apply (the seed scheme with one seed, the within-point one without
replicates) there is no interval, and the reason says why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

MIN_SEED_CLUSTERS = 3  # fewer seeds: the seed scheme's interval is not trustworthy
REPLICATED_SHARE = 0.5  # share of grid points with several models for "replicated" data


def seeds(frame: pd.DataFrame) -> int:
    return int(frame["seed"].nunique())


def replicated(frame: pd.DataFrame) -> bool:
    """Whether the data are replicated: at least ``REPLICATED_SHARE`` of the grid points
    hold more than one model (a table of single runs with a few (N, n) pairs repeated by
    chance is unreplicated: its few pairs say little about the noise)."""
    return bool((frame.groupby("point").size() > 1).mean() >= REPLICATED_SHARE)


def choose(frame: pd.DataFrame, requested: str) -> str:
    """The scheme for a group: `requested`, or by the design when it is ``auto``."""
    if requested != "auto":
        return requested
    if not replicated(frame):
        return "residual"
    return "seed" if seeds(frame) >= MIN_SEED_CLUSTERS else "within_point"


def unusable(frame: pd.DataFrame, scheme: str, n_params: int) -> str | None:
    """Why `scheme` gives no interval on `frame` (None when it does)."""
    if scheme == "seed" and seeds(frame) < 2:
        return "one seed: the seed bootstrap has nothing to redraw"
    if scheme == "within_point" and not replicated(frame):
        return (
            "fewer than half of the grid points hold more than one model: redrawing seeds "
            "within points redraws (almost) nothing"
        )
    if scheme == "residual" and len(frame) <= n_params:
        return f"{len(frame)} models for {n_params} parameters: no residual left to resample"
    return None


def correction(frame: pd.DataFrame, scheme: str, confidence: float) -> float:
    """Factor applied to the draws' deviations from the estimate (1 but for ``seed``)."""
    if scheme != "seed":
        return 1.0
    s = seeds(frame)
    quantile = 0.5 + confidence / 2
    return math.sqrt(s / (s - 1)) * stats.t.ppf(quantile, s - 1) / stats.norm.ppf(quantile)


def seed_resamples(frame, fitted, n_params, resamples, rng):
    """Whole seeds redrawn with replacement."""
    codes = frame["seed"].to_numpy()
    members = [np.flatnonzero(codes == s) for s in np.unique(codes)]
    y = frame["log_err"].to_numpy()
    for _ in range(resamples):
        picks = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[i] for i in picks])
        yield rows, y[rows]


def within_point_resamples(frame, fitted, n_params, resamples, rng):
    """Seeds redrawn within each grid point, deviations inflated by sqrt(m/(m-1))."""
    point = frame["point"].to_numpy()
    order = np.argsort(point, kind="stable")
    codes, first, sizes = np.unique(point[order], return_index=True, return_counts=True)
    where = np.searchsorted(codes, point)
    y = frame["log_err"].to_numpy()
    means = np.bincount(where, y) / sizes
    inflation = np.sqrt(sizes / np.maximum(sizes - 1, 1))
    deviations = (y - means[where])[order]
    rows = np.arange(len(y))
    for _ in range(resamples):
        picks = first[where] + rng.integers(0, sizes[where], size=len(y))
        yield rows, means[where] + inflation[where] * deviations[picks]


def residual_resamples(frame, fitted, n_params, resamples, rng):
    """Fitted values plus residuals redrawn at random (inflated by sqrt(n/(n-p)))."""
    y = frame["log_err"].to_numpy()
    residuals = (y - fitted) * math.sqrt(len(y) / max(len(y) - n_params, 1))
    rows = np.arange(len(y))
    for _ in range(resamples):
        yield rows, fitted + rng.choice(residuals, size=len(y))


def pairs_resamples(frame, fitted, n_params, resamples, rng):
    """Models redrawn with replacement."""
    y = frame["log_err"].to_numpy()
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        yield rows, y[rows]


SCHEMES = {
    "seed": seed_resamples,
    "within_point": within_point_resamples,
    "residual": residual_resamples,
    "pairs": pairs_resamples,
}
DESCRIPTIONS = {
    "seed": "whole seeds redrawn (cluster bootstrap, CR1 and t(S-1) corrected)",
    "within_point": "seeds redrawn within grid points",
    "residual": "residuals redrawn",
    "pairs": "models redrawn",
}
