"""Falsifiable shape claims across groups: how the exponents change with the dimension b.

A bound's rate alone cannot be contradicted by a faster decay; its *shape* across studies
can. For inputs of intrinsic dimension b and an output domain of dimension d2, the rates
(unsquared error) are alpha = 1/(b + d2) and beta = 1/(2 + b + d2), so

- the data exponent decreases with b: the slope of beta on b is negative;
- 1/alpha and 1/beta are linear in b with slope 1.

Each claim is tested over the groups of a study that differ in b (at least 3 distinct b,
identified exponents only), by weighted least squares (statsmodels WLS) with weights from
each exponent's interval (its half-width over z, by the delta method for 1/x), the slope's
interval from Student's t with (groups - 2) degrees of freedom. Verdicts: "holds" when
the interval contains the claimed slope (or lies below 0 for "decreases"), "does not
hold" when it excludes it (or lies above 0), "not shown" when it holds 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from opscale.scaling.observations import TERM_AXIS

MIN_DIMENSIONS = 3
CLAIMS = [  # (term, transform, claimed slope or None for "negative", statement)
    ("log_n", "identity", None, "the data exponent beta decreases with b"),
    ("log_n", "inverse", 1.0, "1/beta is linear in b with slope 1 (beta = 1/(2+b+d2))"),
    ("log_N", "inverse", 1.0, "1/alpha is linear in b with slope 1 (alpha = 1/(b+d2))"),
]


def shape_rows(rows: pd.DataFrame, confidence: float) -> list[dict]:
    """One row per claim that the study's groups can test (robust law, identified only)."""
    if rows.empty or "intrinsic_dim" not in rows:
        return []
    robust = rows[(rows["law"] == "robust") & (rows.get("identified", "yes") != "no")]
    robust = robust[np.isfinite(robust["intrinsic_dim"].astype(float))]
    found = []
    for term, transform, claimed, statement in CLAIMS:
        mine = robust[robust["term"] == term]
        if mine["intrinsic_dim"].nunique() >= MIN_DIMENSIONS:
            found.append(_claim(mine, transform, claimed, statement, confidence))
    return found


def _claim(rows: pd.DataFrame, transform: str, claimed, statement: str, confidence: float):
    z = stats.norm.ppf(0.5 + confidence / 2)
    value = rows["exponent"].to_numpy(float)
    se = (rows["ci_high"] - rows["ci_low"]).to_numpy(float) / (2 * z)
    if transform == "inverse":
        value, se = 1 / value, se / value**2
    b = rows["intrinsic_dim"].to_numpy(float)
    result = sm.WLS(value, sm.add_constant(b), weights=1 / np.maximum(se, 1e-12) ** 2).fit()
    low, high = result.conf_int(1 - confidence)[1]
    if claimed is None:
        verdict = "holds" if high < 0 else "does not hold" if low > 0 else "not shown (0 inside)"
    else:
        verdict = "holds" if low <= claimed <= high else "does not hold"
    return {
        "term": rows["term"].iloc[0],
        "axis": TERM_AXIS[rows["term"].iloc[0]],
        "statement": statement,
        "slope": float(result.params[1]),
        "slope_low": float(low),
        "slope_high": float(high),
        "claimed": "< 0" if claimed is None else f"{claimed:g}",
        "groups": len(rows),
        "dimensions": ", ".join(f"{v:g}" for v in sorted(set(b))),
        "verdict": verdict,
    }
