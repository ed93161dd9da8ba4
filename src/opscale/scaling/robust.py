"""The robust law of a group: its exponent rows, parameters and curves with bands."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from opscale.rng import numpy_rng
from opscale.scaling.bootstrap import DESCRIPTIONS
from opscale.scaling.fitting import LawFit, fit_reported_law, identifiable
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import varying_terms
from opscale.scaling.report import Report


def fit_robust(frame, group: str, settings: dict, report: Report) -> LawFit | None:
    """The robust law of a group with its tables; None (and a note) if it cannot be fitted."""
    law = AdditiveLaw(varying_terms(frame))
    reason = identifiable(frame, law)
    if reason:
        report.note(group, "robust law", reason)
        return None
    rng = numpy_rng(settings["seed"], "fit", "bootstrap", group)
    robust = fit_reported_law(frame, law, settings, rng)
    report.add("row", robust_rows(robust, frame, group, settings))
    report.add("parameter", parameter_rows(robust, group, settings))
    report.add("curve", curve_rows(robust, frame, group, settings))
    report.fitted.append(frame.assign(law="robust", fitted=fitted_values(robust, frame)))
    return robust


def fitted_values(law_fit: LawFit, frame) -> np.ndarray:
    """The law's fitted error of every model of `frame`."""
    return np.exp(law_fit.law.log_predict(law_fit.theta, law_fit.law.design(frame)))


def robust_rows(law_fit: LawFit, frame, group: str, settings: dict) -> list[dict]:
    """Exponent rows of the robust law: bootstrap percentile intervals, censoring marked."""
    law = law_fit.law
    _, _, estimate = law.split(law_fit.theta)
    expo = law.split(law_fit.draws)[2]
    low, high = intervals(law_fit, expo, settings["confidence"])
    y = frame["log_err"].to_numpy()
    return [
        {
            "group": group,
            "law": "robust",
            "term": term,
            "exponent": float(estimate[k]),
            "std_err": float(expo[:, k].std(ddof=1)) if len(expo) > 1 else math.nan,
            "ci_low": float(low[k]),
            "ci_high": float(high[k]),
            **bound_columns(law_fit, law.exponent_index(k)),
            "n_obs": len(frame),
            "n_clusters": frame["seed"].nunique(),
            "r_squared": 1 - float(law_fit.residuals @ law_fit.residuals) / _tss(y),
            "method": method(law_fit),
        }
        for k, term in enumerate(law.terms)
    ]


def intervals(law_fit: LawFit, values: np.ndarray, confidence: float):
    """Percentile interval of `values` (draws, ...) over the draws; NaN without draws."""
    if not len(law_fit.draws):
        nan = np.full(values.shape[1:], math.nan)
        return nan, nan
    return law_fit.interval(values, confidence)


def bound_columns(law_fit: LawFit, index: int) -> dict:
    """Identified or not, which end is censored, and the draws' shares at the bounds."""
    share_low, share_high = law_fit.bound_shares()
    censored = law_fit.censoring()[index]
    return {
        "identified": "no" if censored or law_fit.no_interval else "yes",
        "censored": censored,
        "bound_low": float(law_fit.low[index]),
        "bound_high": float(law_fit.high[index]),
        "share_at_low": float(share_low[index]),
        "share_at_high": float(share_high[index]),
        "no_interval": law_fit.no_interval,
    }


def method(law_fit: LawFit) -> str:
    """How the law and its intervals were fitted, in words."""
    scale = f"Huber (scale {law_fit.scale:.3g} from {law_fit.scale_source})"
    fitted = (
        f"{scale if law_fit.scale else 'least squares'} on log err, best of {law_fit.starts} starts"
    )
    if law_fit.no_interval:
        return f"{fitted}; no interval: {law_fit.no_interval}"
    resampled = DESCRIPTIONS.get(law_fit.scheme, "no bootstrap")
    if law_fit.spans_no_floor:
        half = len(law_fit.draws) // 2
        return (
            f"{fitted}; {half} bootstrap resamples each of the law and of the law without a "
            f"floor, {resampled}; the floor E reaches 0, so each interval spans both laws"
        )
    return f"{fitted}; {len(law_fit.draws)} bootstrap resamples, {resampled}"


def law_identified(law_fit: LawFit) -> str:
    """ "yes" when every parameter of the law is identified and there is an interval."""
    return "yes" if law_fit.identified().all() and len(law_fit.draws) else "no"


def _tss(y: np.ndarray) -> float:
    return float(((y - y.mean()) ** 2).sum()) or math.nan


def parameter_rows(law_fit: LawFit, group: str, settings: dict) -> list[dict]:
    """Every parameter of the robust law (E, A, alpha, B, beta) with its interval."""
    law = law_fit.law
    natural = _natural(law, law_fit.theta[None])[0]
    low, high = intervals(law_fit, _natural(law, law_fit.draws), settings["confidence"])
    return [
        {
            "group": group,
            "law": "robust",
            "name": name,
            "estimate": float(natural[k]),
            "ci_low": float(low[k]),
            "ci_high": float(high[k]),
            **bound_columns(law_fit, k),
            "method": method(law_fit),
        }
        for k, name in enumerate(law.names)
    ]


def _natural(law: AdditiveLaw, theta: np.ndarray) -> np.ndarray:
    """Parameters with amplitudes as A (not log A), shape (draws, p)."""
    natural = np.array(theta, float, copy=True)
    natural[:, int(law.floor) :: 2] = np.exp(natural[:, int(law.floor) :: 2])
    return natural


def curve_rows(law_fit: LawFit, frame, group: str, settings: dict, points: int = 40):
    """The law and its band on a fine grid along each axis, one curve per other value."""
    rows = []
    for term in law_fit.law.terms:
        other = next((t for t in law_fit.law.terms if t != term), None)
        for other_value in sorted(frame[other].unique()) if other else [None]:
            rows += _curve(law_fit, frame, term, other, other_value, group, settings, points)
    return rows


def _curve(law_fit, frame, term, other, other_value, group, settings, points):
    x = np.linspace(frame[term].min(), frame[term].max(), points)
    grid = pd.DataFrame({term: x, **({other: other_value} if other else {})})
    X = law_fit.law.design(grid)
    fitted = np.exp(law_fit.law.log_predict(law_fit.theta, X))
    band = np.exp(law_fit.law.log_predict(law_fit.draws, X))
    low, high = intervals(law_fit, band, settings["confidence"])
    name, identified = {"log_N": "N", "log_n": "n"}, law_identified(law_fit)
    return [
        {
            "group": group,
            "x_axis": name[term],
            "other": f"{name[other]} = {math.exp(other_value):,.0f}" if other else "",
            "x": float(math.exp(xi)),
            "fitted": float(f),
            "low": float(lo),
            "high": float(hi),
            "identified": identified,
        }
        for xi, f, lo, hi in zip(x, fitted, low, high, strict=True)
    ]
