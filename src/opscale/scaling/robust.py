"""The robust law of a group: its exponent rows, parameters and curves with bands."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from opscale.rng import numpy_rng
from opscale.scaling.fitting import LawFit, fit_law, identifiable
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
    robust = fit_law(frame, law, settings, rng)
    report.add("row", robust_rows(robust, frame, group, settings))
    report.add("parameter", parameter_rows(robust, group, settings))
    report.add("curve", curve_rows(robust, frame, group, settings))
    report.fitted.append(frame.assign(law="robust", fitted=fitted_values(robust, frame)))
    return robust


def fitted_values(law_fit: LawFit, frame) -> np.ndarray:
    """The law's fitted error of every model of `frame`."""
    return np.exp(law_fit.law.log_predict(law_fit.theta, law_fit.law.design(frame)))


def robust_rows(law_fit: LawFit, frame, group: str, settings: dict) -> list[dict]:
    """Exponent rows of the robust law (bootstrap percentile intervals)."""
    law, conf = law_fit.law, settings["confidence"]
    _, _, expo = law.split(law_fit.draws if len(law_fit.draws) else law_fit.theta[None])
    low, high = law_fit.interval(expo, conf)
    y = frame["log_err"].to_numpy()
    method = (
        f"Huber (scale {law_fit.scale:.3g}) on log err, best of {law_fit.starts} starts; "
        f"{len(law_fit.draws)} bootstrap resamples of seeds within grid points"
    )
    _, _, estimate = law.split(law_fit.theta)
    return [
        {
            "group": group,
            "law": "robust",
            "term": term,
            "exponent": float(estimate[k]),
            "std_err": float(expo[:, k].std(ddof=1)) if len(expo) > 1 else math.nan,
            "ci_low": float(low[k]),
            "ci_high": float(high[k]),
            "n_obs": len(frame),
            "n_clusters": frame["seed"].nunique(),
            "r_squared": 1 - float(law_fit.residuals @ law_fit.residuals) / _tss(y),
            "method": method,
        }
        for k, term in enumerate(law.terms)
    ]


def _tss(y: np.ndarray) -> float:
    return float(((y - y.mean()) ** 2).sum()) or math.nan


def parameter_rows(law_fit: LawFit, group: str, settings: dict) -> list[dict]:
    """Every parameter of the robust law (E, A, alpha, B, beta) with its interval."""
    law = law_fit.law
    natural = _natural(law, law_fit.theta[None])[0]
    draws = _natural(law, law_fit.draws) if len(law_fit.draws) else natural[None]
    low, high = law_fit.interval(draws, settings["confidence"])
    return [
        {
            "group": group,
            "law": "robust",
            "name": name,
            "estimate": float(natural[k]),
            "ci_low": float(low[k]),
            "ci_high": float(high[k]),
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
    draws = law_fit.draws if len(law_fit.draws) else law_fit.theta[None]
    low, high = law_fit.interval(np.exp(law_fit.law.log_predict(draws, X)), settings["confidence"])
    name = {"log_N": "N", "log_n": "n"}
    return [
        {
            "group": group,
            "x_axis": name[term],
            "other": f"{name[other]} = {math.exp(other_value):,.0f}" if other else "",
            "x": float(math.exp(xi)),
            "fitted": float(f),
            "low": float(lo),
            "high": float(hi),
        }
        for xi, f, lo, hi in zip(x, fitted, low, high, strict=True)
    ]
