"""Fitting an additive law (Huber or least squares) and bootstrapping it over seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from statsmodels.robust.scale import mad

from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import TERM_AXIS

HUBER_TUNING = 1.345


@dataclass
class LawFit:
    """A fitted additive law: estimate, bootstrap draws and what it was fitted on."""

    law: AdditiveLaw
    theta: np.ndarray
    draws: np.ndarray  # (resamples, p); empty when not bootstrapped
    scale: float  # Huber scale, log units
    residuals: np.ndarray
    starts: int

    def interval(self, values: np.ndarray, confidence: float) -> tuple[np.ndarray, ...]:
        """Percentile interval over the draws of `values` (draws, ...)."""
        tail = 100 * (1 - confidence) / 2
        return tuple(np.percentile(values, [tail, 100 - tail], axis=0))


def noise_scale(frame: pd.DataFrame) -> float:
    """Noise of log err: MAD of the models about their grid point's mean (log units)."""
    sizes = frame.groupby("point")["log_err"].transform("size").to_numpy()
    deviations = (frame["log_err"] - frame.groupby("point")["log_err"].transform("mean")).to_numpy()
    replicated = sizes > 1
    if replicated.sum() < 2:
        return 0.1  # no replicates: a tenth of an e-fold, documented default
    inflation = np.sqrt(sizes[replicated] / (sizes[replicated] - 1))
    return max(float(mad(deviations[replicated] * inflation)), 1e-6)


def least_squares(law: AdditiveLaw, X, y, x0, scale: float | None):
    """One scipy least_squares fit of log err (Huber when `scale`, else plain)."""
    low, high = law.bounds(np.exp(y))
    return optimize.least_squares(
        lambda theta: law.log_predict(theta, X) - y,
        np.clip(x0, low, high),
        jac=lambda theta: law.jacobian(theta, X),
        bounds=(low, high),
        loss="huber" if scale else "linear",
        f_scale=scale or 1.0,
        x_scale="jac",
        method="trf",
    )


def best_fit(law: AdditiveLaw, X, y, scale: float | None, refine: int):
    """The best least_squares end point from the `refine` best starts of the grid."""
    starts = law.starts(X, np.exp(y))
    costs = _cost(law.log_predict(starts, X) - y, scale)
    chosen = starts[np.argsort(costs)[:refine]]
    results = [least_squares(law, X, y, x0, scale) for x0 in chosen]
    return min(results, key=lambda r: r.cost), len(starts)


def _cost(residuals: np.ndarray, scale: float | None) -> np.ndarray:
    """least_squares' objective 0.5 sum rho((r/scale)^2) scale^2 over the last axis."""
    if not scale:
        return 0.5 * (residuals**2).sum(-1)
    z = (residuals / scale) ** 2
    return 0.5 * scale**2 * np.where(z <= 1, z, 2 * np.sqrt(z) - 1).sum(-1)


def bootstrap_targets(frame: pd.DataFrame, resamples: int, rng) -> np.ndarray:
    """Resampled log errors: seeds redrawn within each grid point, shape (resamples, models).

    Deviations from the point mean are inflated by sqrt(m/(m-1)) (m models at the point).
    """
    point = frame["point"].to_numpy()
    order = np.argsort(point, kind="stable")
    codes, first, sizes = np.unique(point[order], return_index=True, return_counts=True)
    where = np.searchsorted(codes, point)
    y = frame["log_err"].to_numpy()
    means = np.bincount(where, y) / sizes
    inflation = np.sqrt(sizes / np.maximum(sizes - 1, 1))
    deviations = (y - means[where])[order]
    picks = first[where] + rng.integers(0, sizes[where], size=(resamples, len(y)))
    return means[where] + inflation[where] * deviations[picks]


def fit_law(
    frame, law: AdditiveLaw, settings: dict, rng=None, *, robust: bool = True, resamples=None
) -> LawFit:
    """Fit `law` to a group's models; bootstrap it (``resamples`` or ``fit.bootstrap``
    times) when `rng` is given.

    Returns
    -------
    LawFit
        ``theta`` (p,), ``draws`` (resamples, p) and log residuals (models,).
    """
    X, y = law.design(frame), frame["log_err"].to_numpy()
    scale = HUBER_TUNING * noise_scale(frame) if robust else None
    result, n_starts = best_fit(law, X, y, scale, settings["refine"])
    draws = np.empty((0, law.n_params))
    resamples = settings["bootstrap"] if resamples is None else resamples
    if rng is not None and resamples > 0:
        targets = bootstrap_targets(frame, resamples, rng)
        draws = np.array([least_squares(law, X, t, result.x, scale).x for t in targets])
    return LawFit(law, result.x, draws, scale or 0.0, result.fun, n_starts)


def identifiable(frame: pd.DataFrame, law: AdditiveLaw) -> str | None:
    """Why `law` cannot be fitted to `frame` (None if it can)."""
    for term in law.terms:
        if frame[term].nunique() < 3:
            return f"{TERM_AXIS[term]} has {frame[term].nunique()} value(s); the law needs 3"
    points = frame["point"].nunique()
    if points <= law.n_params:
        return f"{points} grid points for {law.n_params} parameters; needs more points"
    if law.shape == "logarithmic" and (frame[list(law.terms)].min() <= 1.0).any():
        return "logarithmic law needs every x > e^e (where log x/log log x decreases)"
    return None
