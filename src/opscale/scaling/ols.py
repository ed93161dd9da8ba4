"""Log-log OLS laws (statsmodels): local slopes over the sampled range, cluster-robust by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from opscale.scaling.observations import varying_terms
from opscale.scaling.report import Report

LAWS = {  # OLS laws, name: (regressors whose exponents are reported, fixed effect)
    "data": (["log_n"], "log_N"),
    "model": (["log_N"], "log_n"),
    "joint": (["log_n", "log_N"], None),
}


def ols_fits(frame, group: str, settings: dict, report: Report):
    """The OLS laws on every model of the group: rows and fitted values.

    A log-log OLS slope is the average local slope over the sampled range, not the
    asymptotic exponent of a law with a floor or a second term (it is biased towards
    zero by them): it is reported as what a log-log plot of the data shows. No subset is
    chosen from a fitted response (an earlier pre-floor rule did, and its intervals
    ignored that selection).
    """
    for law in applicable_laws(frame):
        result = ols(frame, law)
        rows = estimates(result, law, {"group": group}, frame, settings["confidence"])
        report.add(
            "row", [{**r, "method": f"{r['method']}; local slope, every model"} for r in rows]
        )
        report.fitted.append(frame.assign(law=law, fitted=_ols_predict(result, frame, frame, law)))


def applicable_laws(group: pd.DataFrame) -> list[str]:
    """OLS laws whose regressors vary in this group."""
    varies = set(varying_terms(group))
    return [law for law, (terms, _) in LAWS.items() if varies >= set(terms)]


def ols(group: pd.DataFrame, law: str):
    """OLS of log error on the law's regressors, cluster-robust by seed."""
    model = smf.ols(_formula(group, law), data=group)
    if group["seed"].nunique() < 2:
        return model.fit(cov_type="HC1")
    return model.fit(cov_type="cluster", cov_kwds={"groups": group["seed"].to_numpy()}, use_t=True)


def _formula(group: pd.DataFrame, law: str) -> str:
    terms, fixed = LAWS[law]
    rhs = " + ".join(terms)
    if fixed and group[fixed].nunique() > 1:
        rhs += f" + C({fixed})"
    return f"log_err ~ {rhs}"


def _ols_predict(result, kept, frame, law: str) -> np.ndarray:
    """Fitted errors on every model of the group (NaN where a fixed level was unseen)."""
    fixed = LAWS[law][1]
    seen = frame[fixed].isin(kept[fixed].unique()) if fixed else np.ones(len(frame), bool)
    fitted = np.full(len(frame), np.nan)
    fitted[np.asarray(seen)] = np.exp(result.predict(frame[np.asarray(seen)]))
    return fitted


def estimates(result, law: str, labels: dict, group: pd.DataFrame, confidence: float) -> list[dict]:
    """Rows of exponent estimates (exponent = -slope) with their intervals."""
    ci = result.conf_int(alpha=1 - confidence)
    clustered = result.cov_type == "cluster"
    return [
        {
            **labels,
            "law": law,
            "term": term,
            "exponent": -result.params[term],
            "std_err": result.bse[term],
            "ci_low": -ci.loc[term, 1],
            "ci_high": -ci.loc[term, 0],
            "identified": "yes",  # a linear model has no bound to reach
            "censored": "",
            "n_obs": int(result.nobs),
            "n_clusters": group["seed"].nunique(),
            "r_squared": result.rsquared,
            "method": "OLS, cluster-robust by seed" if clustered else "OLS, HC1 (one seed)",
        }
        for term in LAWS[law][0]
    ]
