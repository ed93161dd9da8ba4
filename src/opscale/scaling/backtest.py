"""Extrapolation backtest: hold out the largest value of an axis and predict it."""

from __future__ import annotations

import math

import numpy as np
import statsmodels.formula.api as smf

from opscale.rng import numpy_rng
from opscale.scaling.fitting import fit_reported_law, identifiable
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import TERM_AXIS, varying_terms
from opscale.scaling.report import Report
from opscale.scaling.robust import law_identified


def backtest_rows(frame, group: str, settings: dict, report: Report) -> list[dict]:
    """Hold out the largest value of each axis; predict it from the rest (both methods)."""
    rows = []
    for term in varying_terms(frame):
        held = frame[term] == frame[term].max()
        train, test = frame[~held], frame[held]
        law = AdditiveLaw(varying_terms(train))
        reason = identifiable(train, law) if term in law.terms else "axis left with one value"
        if reason:
            report.note(group, f"backtest: hold out the largest {TERM_AXIS[term]}", reason)
            continue
        rng = numpy_rng(settings["seed"], "fit", "backtest", group, term)
        rows += _held_out(
            train, test, term, group, "robust", _robust_interval(train, test, law, settings, rng)
        )
        rows += _held_out(
            train, test, term, group, "joint OLS", _ols_interval(train, test, settings)
        )
    return rows


def _robust_interval(train, test, law, settings, rng) -> tuple[np.ndarray, ...]:
    """Prediction and prediction interval of log err (bootstrap draws + residuals)."""
    resamples = max(settings["backtest_bootstrap"], 1)
    law_fit = fit_reported_law(train, law, settings, rng, resamples=resamples)
    X = law.design(test)
    predicted = law.log_predict(law_fit.theta, X)
    if not len(law_fit.draws):  # no interval (the reason is in the robust law's rows)
        return predicted, predicted * np.nan, predicted * np.nan, "no"
    draws = law.log_predict(law_fit.draws, X)  # (resamples, models)
    inflation = math.sqrt(len(train) / max(len(train) - law.n_params, 1))
    noise = rng.choice(law_fit.residuals * inflation, size=draws.shape)
    low, high = law_fit.interval(draws + noise, settings["confidence"])
    return predicted, low, high, law_identified(law_fit)


def _ols_interval(train, test, settings) -> tuple[np.ndarray, ...]:
    """Log-linear OLS prediction with statsmodels' interval for a new observation."""
    result = smf.ols(f"log_err ~ {' + '.join(varying_terms(train))}", data=train).fit()
    frame = result.get_prediction(test).summary_frame(alpha=1 - settings["confidence"])
    return (
        frame["mean"].to_numpy(),
        frame["obs_ci_lower"].to_numpy(),
        frame["obs_ci_upper"].to_numpy(),
        "yes",
    )


def _held_out(train, test, term, group, method, interval) -> list[dict]:
    """One row per held-out grid point: median measured vs predicted, models inside PI."""
    predicted, low, high, identified = interval
    test = test.assign(pred=predicted, low=low, high=high)
    test = test.assign(inside=(test["log_err"] >= test["low"]) & (test["log_err"] <= test["high"]))
    rows = []
    for (log_N, log_n), point in test.groupby(["log_N", "log_n"], sort=True):
        measured, pred = float(point["err"].median()), float(np.exp(point["pred"].iloc[0]))
        rows.append(
            {
                "group": group,
                "held_out": TERM_AXIS[term],
                "method": method,
                "N": round(math.exp(log_N)),
                "n": round(math.exp(log_n)),
                "measured": measured,
                "predicted": pred,
                "pi_low": float(np.exp(point["low"].iloc[0])),
                "pi_high": float(np.exp(point["high"].iloc[0])),
                "rel_error": pred / measured - 1,
                "inside": int(point["inside"].sum()),
                "models": len(point),
                "train_models": len(train),
                "identified": identified,
            }
        )
    return rows
