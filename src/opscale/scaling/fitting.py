"""Fitting an additive law (Huber or least squares), bootstrapping it, and its bounds.

Identifiability: a parameter whose estimate sits at one of its bounds, or whose bootstrap
draws reach a bound in more than ``BOUND_SHARE`` of the resamples, has a *censored*
interval (one end is the bound, not a measurement) and is not identified: no verdict is
drawn from it. Where no resampling scheme applies, or every resample gives the same
parameters, there are no draws and the reason is kept (``LawFit.no_interval``).

A floor the data cannot tell from 0: where the floor E's interval reaches its bound 0
(censored low), ``fit_reported_law`` also bootstraps the law without a floor and every
interval spans both laws (the union of their percentile intervals; ``LawFit.source`` says
which law each draw comes from). On that boundary the law with a floor alone is not
enough: its bootstrap is inconsistent there (Andrews 2000, Econometrica 68: 399-405) and
the floor takes up part of the slowest term, biasing its exponent upwards; planted without
a floor, its nominal 95% intervals covered alpha in 0.890 of 400 replays
(benchmarks/RESULTS.md). The estimate stays the law's with a floor (E may be 0 there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import optimize
from statsmodels.robust.scale import mad

from opscale.scaling import bootstrap
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import TERM_AXIS

HUBER_TUNING = 1.345  # 95% efficiency under Gaussian noise
BOUND_SHARE = 0.025  # more draws than this at a bound: the interval is censored
MULTISTART_EVERY = 10  # every 10th resample is refitted from the full grid of starts
CENSORING = {(False, False): "", (True, False): "lower", (False, True): "upper"}
CENSORING[(True, True)] = "both"


@dataclass
class LawFit:
    """A fitted additive law: estimate, bootstrap draws, bounds and how it was fitted."""

    law: AdditiveLaw
    theta: np.ndarray
    draws: np.ndarray  # (resamples, p); empty when not bootstrapped or no interval
    scale: float  # Huber scale, log units (0: least squares)
    residuals: np.ndarray
    starts: int
    low: np.ndarray  # (p,) bounds of the parameters
    high: np.ndarray
    scale_source: str = ""
    scheme: str = ""
    no_interval: str = ""  # why there are no draws, when there are none
    # (draws,): the law each draw comes from, 0 this law, 1 the law without a floor
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def interval(self, values: np.ndarray, confidence: float) -> tuple[np.ndarray, ...]:
        """Percentile interval over the draws of `values` (draws, ...); where the draws
        come from two laws, the union of each law's interval."""
        tail = 100 * (1 - confidence) / 2
        source = self.source if len(self.source) == len(values) else np.zeros(len(values))
        ends = [
            np.percentile(values[source == k], [tail, 100 - tail], axis=0)
            for k in np.unique(source)
        ]
        return np.min([e[0] for e in ends], 0), np.max([e[1] for e in ends], 0)

    @property
    def spans_no_floor(self) -> bool:
        """Whether the draws include the law without a floor's (the floor censored at 0)."""
        return bool(len(self.source) and self.source.max() == 1)

    def at_bounds(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each parameter of `theta` (..., p) is at its lower / upper bound."""
        span = np.where(np.isfinite(self.high - self.low), self.high - self.low, 1.0)
        tolerance = 1e-6 * np.maximum(span, 1e-12)
        return theta <= self.low + tolerance, theta >= self.high - tolerance

    def bound_shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Share of the draws at each parameter's lower / upper bound, shape (p,) each;
        where the draws come from two laws, the larger of the two laws' shares (each
        law's interval is one part of the union)."""
        if not len(self.draws):
            return np.zeros(len(self.theta)), np.zeros(len(self.theta))
        low, high = self.at_bounds(self.draws)
        source = self.source if len(self.source) == len(self.draws) else np.zeros(len(low))
        parts = np.unique(source)
        return (
            np.max([low[source == k].mean(0) for k in parts], 0),
            np.max([high[source == k].mean(0) for k in parts], 0),
        )

    def censoring(self) -> list[str]:
        """Per parameter: "" (identified), "lower", "upper" or "both" (censored ends)."""
        at_low, at_high = self.at_bounds(self.theta)
        share_low, share_high = self.bound_shares()
        lower, upper = at_low | (share_low > BOUND_SHARE), at_high | (share_high > BOUND_SHARE)
        return [CENSORING[(bool(lo), bool(hi))] for lo, hi in zip(lower, upper, strict=True)]

    def identified(self) -> np.ndarray:
        """Whether each parameter is identified (no censored end), shape (p,)."""
        return np.array([c == "" for c in self.censoring()])


def huber_scale(frame: pd.DataFrame, law: AdditiveLaw, X, y, settings: dict):
    """The Huber scale in log units and where it comes from.

    ``fit.huber_delta`` when set; else 1.345 times the noise of log err within grid points
    (MAD of the replicates about their point's mean, inflated by sqrt(m/(m-1))); without
    replicates, 1.345 times the MAD of the residuals of a least-squares fit, inflated by
    sqrt(n/(n-p)).
    """
    if settings.get("huber_delta") is not None:
        return float(settings["huber_delta"]), "fit.huber_delta"
    replicates = replicate_scale(frame)
    if replicates is not None:
        return HUBER_TUNING * replicates, "replicates"
    first, _ = best_fit(law, X, y, None, settings["refine"], law.bounds(np.exp(y)))
    inflation = np.sqrt(len(y) / max(len(y) - law.n_params, 1))
    return HUBER_TUNING * max(float(mad(first.fun)) * inflation, 1e-6), "residuals"


def replicate_scale(frame: pd.DataFrame) -> float | None:
    """Noise of log err: MAD of the models about their grid point's mean (None: the data
    are not replicated, ``bootstrap.replicated``)."""
    if not bootstrap.replicated(frame):
        return None
    sizes = frame.groupby("point")["log_err"].transform("size").to_numpy()
    deviations = (frame["log_err"] - frame.groupby("point")["log_err"].transform("mean")).to_numpy()
    replicated = sizes > 1
    if replicated.sum() < 2:
        return None
    inflation = np.sqrt(sizes[replicated] / (sizes[replicated] - 1))
    return max(float(mad(deviations[replicated] * inflation)), 1e-6)


def least_squares(law: AdditiveLaw, X, y, x0, scale: float | None, bounds):
    """One scipy least_squares fit of log err (Huber when `scale`, else plain)."""
    low, high = bounds
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


def best_fit(law: AdditiveLaw, X, y, scale: float | None, refine: int, bounds):
    """The best least_squares end point from the `refine` best starts of the grid."""
    starts = np.clip(law.starts(X, np.exp(y)), *bounds)
    costs = _cost(law.log_predict(starts, X) - y, scale)
    chosen = starts[np.argsort(costs)[:refine]]
    results = [least_squares(law, X, y, x0, scale, bounds) for x0 in chosen]
    return min(results, key=lambda r: r.cost), len(starts)


def _cost(residuals: np.ndarray, scale: float | None) -> np.ndarray:
    """least_squares' objective 0.5 sum rho((r/scale)^2) scale^2 over the last axis."""
    if not scale:
        return 0.5 * (residuals**2).sum(-1)
    z = (residuals / scale) ** 2
    return 0.5 * scale**2 * np.where(z <= 1, z, 2 * np.sqrt(z) - 1).sum(-1)


def fit_law(
    frame, law: AdditiveLaw, settings: dict, rng=None, *, robust: bool = True, resamples=None
) -> LawFit:
    """Fit `law` to a group's models; bootstrap it (``resamples`` or ``fit.bootstrap``
    times, by ``fit.bootstrap_scheme``) when `rng` is given.

    Returns
    -------
    LawFit
        ``theta`` (p,), ``draws`` (resamples, p) and log residuals (models,).
    """
    X, y = law.design(frame), frame["log_err"].to_numpy()
    bounds = law.bounds(np.exp(y))
    scale, source = huber_scale(frame, law, X, y, settings) if robust else (None, "")
    result, n_starts = best_fit(law, X, y, scale, settings["refine"], bounds)
    empty = np.empty((0, law.n_params))
    fitted = LawFit(law, result.x, empty, scale or 0.0, result.fun, n_starts, *bounds, source)
    resamples = settings["bootstrap"] if resamples is None else resamples
    if rng is not None and resamples > 0:
        _bootstrap(fitted, frame, X, settings, resamples, rng)
    return fitted


def fit_reported_law(frame, law: AdditiveLaw, settings: dict, rng, *, resamples=None) -> LawFit:
    """`law` fitted and bootstrapped; where its floor E is censored at its lower bound 0,
    the draws of the law without a floor (E = 0) join its own (module docs)."""
    fitted = fit_law(frame, law, settings, rng, resamples=resamples)
    if not law.floor or not len(fitted.draws) or fitted.censoring()[0] not in ("lower", "both"):
        return fitted
    without = fit_law(frame, replace(law, floor=False), settings, rng, resamples=resamples)
    if len(without.draws):
        zeros = np.zeros((len(without.draws), 1))
        fitted.draws = np.vstack([fitted.draws, np.hstack([zeros, without.draws])])
        fitted.source = np.repeat([0, 1], [len(fitted.draws) - len(zeros), len(zeros)])
    return fitted


def _bootstrap(fitted: LawFit, frame, X, settings: dict, resamples: int, rng) -> None:
    """Draws of the parameters by the group's resampling scheme (or why there are none)."""
    law, scheme = fitted.law, bootstrap.choose(frame, settings["bootstrap_scheme"])
    fitted.scheme = scheme
    fitted.no_interval = bootstrap.unusable(frame, scheme, law.n_params) or ""
    if fitted.no_interval:
        return
    log_fit = law.log_predict(fitted.theta, X)
    samples = enumerate(bootstrap.SCHEMES[scheme](frame, log_fit, law.n_params, resamples, rng))
    draws = np.array([_refit(fitted, X[rows], t, k, settings) for k, (rows, t) in samples])
    factor = bootstrap.correction(frame, scheme, settings["confidence"])
    draws = np.clip(fitted.theta + factor * (draws - fitted.theta), fitted.low, fitted.high)
    if np.ptp(draws, axis=0).max() == 0:
        fitted.no_interval = "every resample gave the same parameters (a degenerate resample)"
        return
    fitted.draws = draws


def _refit(fitted: LawFit, X, y, k: int, settings: dict) -> np.ndarray:
    """One resample's parameters: from the estimate, and every 10th also from the grid."""
    law, bounds, scale = fitted.law, (fitted.low, fitted.high), fitted.scale or None
    result = least_squares(law, X, y, fitted.theta, scale, bounds)
    if k % MULTISTART_EVERY == 0:  # the law can be multimodal: look elsewhere too
        other, _ = best_fit(law, X, y, scale, settings["refine"], bounds)
        result = min(result, other, key=lambda r: r.cost)
    return result.x


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
