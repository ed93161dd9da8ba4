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

Invariance: settings the exponents do not depend on
---------------------------------------------------
The rates depend on b and d2 only: not on the ambient dimension D of the inputs
(``problem.ambient_dim``, a deep ReLU regression on a d-dimensional subspace of R^D) nor
on the sensor count n_x (``problem.sensors``, the points where the branch net reads u).
Each claim is tested (``invariance_rows``) over the groups that differ in that setting
only (every other swept value equal; e.g. relu-subspace's groups of one d), per axis, on
the robust law's identified exponents: the difference of the exponents at the setting's
largest and smallest value, d = a_2 - a_1 (a_2 at the largest), with the interval of a
difference from the two exponents' own intervals [l_i, u_i] by the MOVER rule (Zou &
Donner 2008, Statistics in Medicine 27: 1693-1702; the two groups are fitted apart):
[d - sqrt((a_2 - l_2)^2 + (u_1 - a_1)^2), d + sqrt((u_2 - a_2)^2 + (a_1 - l_1)^2)]. With
symmetric intervals it is d +- z sqrt(se_1^2 + se_2^2); with the bootstrap's skewed ones it
keeps each side's width. Verdict "holds" when the interval contains 0, "does
not hold" when it excludes it; the row also gives the difference relative to the mean
exponent, so that a significant but small difference is seen as small, and a wide
interval as what it is (a "holds" means no difference that large was detected).
Assumption: the two exponents' errors are independent. Groups with the same seeds share
their input functions (the sensors sweep reads the same u at other points), which makes
the errors positively correlated and this interval conservative (too wide), not too
narrow. The middle values of the setting are shown in the row, not used in the interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from opscale.scaling.observations import TERM_AXIS

# (config path, symbol, statement): settings the theory's exponents do not depend on
INVARIANCE = [
    ("problem.ambient_dim", "D", "the exponent does not depend on the ambient dimension D"),
    ("problem.sensors", "n_x", "the exponent does not depend on the sensor count n_x"),
]
# per axis, the laws compared: the robust law's exponent (the claim's), and the OLS local
# slope at the other axis' values (a second look: no floor, so a tighter interval)
COMPARED_LAWS = {"log_N": ("robust", "model"), "log_n": ("robust", "data")}

MIN_DIMENSIONS = 3
CLAIMS = [  # (term, transform, claimed slope or None for "negative", statement)
    ("log_n", "identity", None, "the data exponent beta decreases with b"),
    ("log_n", "inverse", 1.0, "1/beta is linear in b with slope 1 (beta = 1/(2+b+d2))"),
    ("log_N", "inverse", 1.0, "1/alpha is linear in b with slope 1 (alpha = 1/(b+d2))"),
]


def _identified(rows: pd.DataFrame) -> pd.DataFrame:
    """The robust law's identified exponents of an exponent table."""
    return rows[(rows["law"] == "robust") & (rows.get("identified", "yes") != "no")]


def shape_rows(rows: pd.DataFrame, confidence: float) -> list[dict]:
    """One row per claim that the study's groups can test (robust law, identified only)."""
    if rows.empty or "intrinsic_dim" not in rows:
        return []
    robust = _identified(rows)
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


def invariance_rows(rows: pd.DataFrame, paths: dict) -> list[dict]:
    """One row per invariance claim, axis and set of groups that differ only in its
    setting (module doc), for the robust law's exponents and for the OLS local slopes
    (``COMPARED_LAWS``). `paths`: group label -> {dotted config path: swept value}. The
    difference's interval has the level of the exponents' intervals."""
    if rows.empty:
        return []
    found = []
    for path, symbol, statement in INVARIANCE:
        swept = {g: p for g, p in paths.items() if path in p}
        for within, members in _siblings(swept, path).items():
            for (term, law), mine in rows[rows["group"].isin(members)].groupby(
                ["term", "law"], sort=False
            ):
                if law in COMPARED_LAWS[term] and mine["group"].nunique() >= 2:
                    values = [swept[g][path] for g in mine["group"]]
                    claim = (path, symbol, statement, within)
                    found.append(_invariance(mine.assign(value=values), claim))
    return found


def _siblings(swept: dict, path: str) -> dict:
    """Groups that share every swept value but `path`'s: their shared values -> groups."""
    found: dict[str, list[str]] = {}
    for group, values in swept.items():
        others = ", ".join(f"{k} = {v}" for k, v in sorted(values.items()) if k != path)
        found.setdefault(others or "all", []).append(group)
    return {k: v for k, v in found.items() if len(v) >= 2}


def _invariance(rows: pd.DataFrame, claim: tuple) -> dict:
    path, symbol, statement, within = claim
    rows = rows.sort_values("value")
    cells = "; ".join(
        f"{symbol} = {r.value:g}: {r.exponent:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
        + ("" if r.identified != "no" else " (not identified)")
        for r in rows.itertuples()
    )
    base = {
        "statement": statement,
        "law": rows["law"].iloc[0],
        "term": rows["term"].iloc[0],
        "axis": TERM_AXIS[rows["term"].iloc[0]],
        "setting": path,
        "within": within,
        "exponents": cells,
    }
    finite = np.isfinite(rows[["ci_low", "ci_high"]].to_numpy(float)).all(axis=1)
    used = rows[(rows.get("identified", "yes") != "no") & finite]
    if used["group"].nunique() < 2:
        nan = {k: np.nan for k in ("difference", "difference_low", "difference_high")}
        reason = "not tested: fewer than 2 identified exponents with an interval"
        return {**base, "compared": "", **nan, "relative": np.nan, "verdict": reason}
    low, high = used.iloc[0], used.iloc[-1]
    difference = float(high.exponent - low.exponent)
    below = float(np.hypot(high.exponent - high.ci_low, low.ci_high - low.exponent))
    above = float(np.hypot(high.ci_high - high.exponent, low.exponent - low.ci_low))
    holds = difference - below <= 0 <= difference + above
    return {
        **base,
        "compared": f"{symbol} = {low.value:g} and {high.value:g}",
        "difference": difference,
        "difference_low": difference - below,
        "difference_high": difference + above,
        "relative": difference / float((high.exponent + low.exponent) / 2),
        "verdict": "holds" if holds else "does not hold",
    }
