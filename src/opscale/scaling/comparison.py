"""Alternative laws compared by AIC and BIC (Gaussian likelihood of log err)."""

from __future__ import annotations

import math

import numpy as np
import statsmodels.formula.api as smf
from statsmodels.tools import eval_measures

from opscale.scaling.fitting import fit_law, identifiable
from opscale.scaling.laws import TERM_NAMES, AdditiveLaw
from opscale.scaling.observations import varying_terms
from opscale.scaling.report import Report


def candidate_laws(terms: tuple[str, ...]) -> dict[str, AdditiveLaw]:
    """The additive alternatives compared with the product (log-linear) law."""
    return {
        "power": AdditiveLaw(terms, "power", floor=False),
        "power + floor": AdditiveLaw(terms, "power", floor=True),
        "logarithmic": AdditiveLaw(terms, "logarithmic", floor=False),
        "logarithmic + floor": AdditiveLaw(terms, "logarithmic", floor=True),
    }


def comparison_rows(frame, group: str, settings: dict, report: Report) -> list[dict]:
    """AIC and BIC of every candidate law that can be fitted (Gaussian on log err).

    Every law is fitted by least squares (AIC needs a likelihood), not by the Huber loss
    of the headline's robust law; a row names the parameters at a bound, and gives each
    term's mean local slope over the sampled models (the spread across laws).
    """
    terms = varying_terms(frame)
    product = smf.ols(f"log_err ~ {' + '.join(terms)}", data=frame).fit()
    rows = [_information(group, "product (log-linear)", _product_formula(terms), product)]
    for name, law in candidate_laws(terms).items():
        reason = identifiable(frame, law)
        if reason:
            report.note(group, f"comparison: {name}", reason)
            continue
        law_fit = fit_law(frame, law, settings, robust=False)
        row = _information(group, name, law.formula, None, law_fit.residuals, law.n_params)
        rows.append({**row, **_at_bounds(law_fit), **_slopes(law_fit, frame)})
    rows[0].update(at_bound="", **{f"slope_{t}": -product.params[t] for t in terms})
    best_aic, best_bic = min(r["aic"] for r in rows), min(r["bic"] for r in rows)
    return [_deltas(r, best_aic, best_bic) for r in rows]


def _deltas(row: dict, best_aic: float, best_bic: float) -> dict:
    """ΔAIC, ΔBIC and what they say: |ΔAIC| < 2 is no evidence either way."""
    delta = row["aic"] - best_aic
    evidence = "best" if delta == 0 else "indistinguishable" if delta < 2 else "worse"
    return {**row, "delta_aic": delta, "delta_bic": row["bic"] - best_bic, "evidence": evidence}


def _at_bounds(law_fit) -> dict:
    """The parameters of a least-squares fit that sit at a bound (their fit is censored)."""
    low, high = law_fit.at_bounds(law_fit.theta)
    names = [n for n, lo, hi in zip(law_fit.law.names, low, high, strict=True) if lo or hi]
    return {"at_bound": ", ".join(names)}


def _slopes(law_fit, frame) -> dict:
    """Mean local log-log slope of each term over the group's models."""
    law = law_fit.law
    slopes = law.local_slopes(law_fit.theta, frame[list(law.terms)].to_numpy(float))
    return {f"slope_{t}": float(slopes[:, k].mean()) for k, t in enumerate(law.terms)}


def _product_formula(terms) -> str:
    return "C·" + "·".join(f"{t[4:]}^-{TERM_NAMES[t][1]}" for t in terms)


def _information(group, name, formula, result=None, residuals=None, k=0) -> dict:
    """AIC/BIC row; parameters include the noise variance."""
    if result is not None:
        residuals, k = np.asarray(result.resid), int(result.df_model) + 1
    n, rss = len(residuals), float(residuals @ residuals)
    llf = -n / 2 * (math.log(2 * math.pi * rss / n) + 1)
    return {
        "group": group,
        "law": name,
        "formula": formula,
        "params": k + 1,
        "n_obs": n,
        "rss": rss,
        "aic": float(eval_measures.aic(llf, n, k + 1)),
        "bic": float(eval_measures.bic(llf, n, k + 1)),
    }
