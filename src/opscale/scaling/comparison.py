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
    """AIC and BIC of every candidate law that can be fitted (Gaussian on log err)."""
    terms = varying_terms(frame)
    product = smf.ols(f"log_err ~ {' + '.join(terms)}", data=frame).fit()
    rows = [_information(group, "product (log-linear)", _product_formula(terms), product)]
    for name, law in candidate_laws(terms).items():
        reason = identifiable(frame, law)
        if reason:
            report.note(group, f"comparison: {name}", reason)
            continue
        residuals = fit_law(frame, law, settings, robust=False).residuals
        rows.append(_information(group, name, law.formula, None, residuals, law.n_params))
    best_aic, best_bic = min(r["aic"] for r in rows), min(r["bic"] for r in rows)
    return [{**r, "delta_aic": r["aic"] - best_aic, "delta_bic": r["bic"] - best_bic} for r in rows]


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
