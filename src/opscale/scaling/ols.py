"""Log-log OLS laws (statsmodels) on the pre-floor region, cluster-robust by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from opscale.scaling.fitting import LawFit
from opscale.scaling.observations import varying_terms
from opscale.scaling.report import Report
from opscale.scaling.robust import fitted_values

LAWS = {  # OLS laws, name: (regressors whose exponents are reported, fixed effect)
    "data": (["log_n"], "log_N"),
    "model": (["log_N"], "log_n"),
    "joint": (["log_n", "log_N"], None),
}


def ols_fits(frame, group: str, robust: LawFit | None, settings: dict, report: Report):
    """The OLS laws on the pre-floor region (see module doc); rows and fitted values."""
    kept, rule = pre_floor(frame, robust, settings, group, report)
    for law in applicable_laws(kept):
        result = ols(kept, law)
        rows = estimates(result, law, {"group": group}, kept, settings["confidence"])
        report.add("row", [{**r, "method": f"{r['method']}; {rule}"} for r in rows])
        report.fitted.append(frame.assign(law=law, fitted=_ols_predict(result, kept, frame, law)))


def pre_floor(frame, robust: LawFit | None, settings: dict, group: str, report: Report):
    """Models in the pre-floor region (robust prediction >= floor_factor x floor)."""
    if robust is None or not robust.law.floor:
        return frame, "pre-floor rule not applied (no robust fit)"
    factor = settings["floor_factor"]
    floor = float(robust.law.split(robust.theta)[0])
    inside = fitted_values(robust, frame) >= factor * floor
    kept = frame[inside]
    if len(varying_terms(kept)) < len(varying_terms(frame)):
        return frame, f"all models (the pre-floor region, err >= {factor:g} E, is too small)"
    reason = f"floor region: predicted err < {factor:g} x fitted floor E = {floor:.3g}"
    report.add(
        "excluded",
        [
            {"group": group, "model": model, "fits": "OLS", "reason": reason}
            for model in frame.loc[~inside, "label"]
        ],
    )
    return kept, f"pre-floor region: {int(inside.sum())} of {len(frame)} models"


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
            "n_obs": int(result.nobs),
            "n_clusters": group["seed"].nunique(),
            "r_squared": result.rsquared,
            "method": "OLS, cluster-robust by seed" if clustered else "OLS, HC1 (one seed)",
        }
        for term in LAWS[law][0]
    ]
