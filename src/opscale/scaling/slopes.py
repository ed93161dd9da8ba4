"""Two named quantities per axis: the asymptotic exponent and the local log-log slope.

The *asymptotic exponent* is the additive law's exponent a in ``A x^-a``: the rate as x
grows with the other term and the floor held aside, which is what the theory's rates
describe. The *local slope* is -d log err / d log x over the sampled range: what a
log-log plot of the data shows, flattened below the exponent by a floor or the other
term. Both are given here with the local slope of the robust law (interval from its
bootstrap draws), the joint OLS slope (the empirical local slope), and the spread of the
local slope across every law of the comparison.
"""

from __future__ import annotations

import math

from opscale.scaling.fitting import LawFit
from opscale.scaling.observations import varying_terms
from opscale.scaling.report import Report
from opscale.scaling.robust import intervals


def slope_rows(frame, group: str, robust: LawFit | None, settings: dict, report: Report):
    """One row per varying term: exponent, local slopes and their spread across laws."""
    mine = [r for r in report.tables.get("comparison", []) if r["group"] == group]
    ols = {
        r["term"]: r
        for r in report.tables.get("row", [])
        if r["group"] == group and r["law"] == "joint"
    }
    rows = []
    for term in varying_terms(frame):
        spread = [
            r[f"slope_{term}"] for r in mine if math.isfinite(r.get(f"slope_{term}", math.nan))
        ]
        rows.append(
            {
                "group": group,
                "term": term,
                **_robust_columns(robust, frame, term, settings["confidence"]),
                **_ols_columns(ols.get(term)),
                "spread_low": min(spread, default=math.nan),
                "spread_high": max(spread, default=math.nan),
                "spread_laws": len(spread),
            }
        )
    return rows


def _robust_columns(robust: LawFit | None, frame, term: str, confidence: float) -> dict:
    """The robust law's exponent and mean local slope of `term`, with intervals."""
    nan = {"exponent": math.nan, "exponent_low": math.nan, "exponent_high": math.nan}
    nan |= {"local_slope": math.nan, "local_low": math.nan, "local_high": math.nan}
    if robust is None or term not in robust.law.terms:
        return {**nan, "identified": "no"}
    law, k = robust.law, robust.law.terms.index(term)
    logs = frame[list(law.terms)].to_numpy(float)
    slope = law.local_slopes(robust.theta, logs)[:, k].mean()
    draws = law.local_slopes(robust.draws, logs)[..., k].mean(-1)
    low, high = intervals(robust, draws, confidence)
    expo_low, expo_high = intervals(robust, law.split(robust.draws)[2][:, k], confidence)
    index = law.exponent_index(k)
    return {
        "exponent": float(law.split(robust.theta)[2][k]),
        "exponent_low": float(expo_low),
        "exponent_high": float(expo_high),
        "identified": "yes" if robust.identified()[index] and len(robust.draws) else "no",
        "local_slope": float(slope),
        "local_low": float(low),
        "local_high": float(high),
    }


def _ols_columns(row: dict | None) -> dict:
    if row is None:
        return {"ols_slope": math.nan, "ols_low": math.nan, "ols_high": math.nan}
    return {"ols_slope": row["exponent"], "ols_low": row["ci_low"], "ols_high": row["ci_high"]}
