"""Compute-optimal allocation: FLOPs law and the (N, n) minimising the robust law."""

from __future__ import annotations

import math

import numpy as np
import statsmodels.formula.api as smf

from opscale.scaling.fitting import LawFit
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.robust import intervals, law_identified

BUDGETS = 8


def flops_law(frame):
    """OLS of log train_flops on log N and log n: C = k N^a n^b."""
    data = frame.assign(log_C=np.log(frame["train_flops"].astype(float)))
    return smf.ols("log_C ~ log_N + log_n", data=data).fit()


def allocation_rows(frame, group, robust: LawFit | None, settings, report) -> list[dict]:
    """Compute-optimal (N, n) per budget with bootstrap intervals (see module doc)."""
    reason = _allocation_reason(frame, robust)
    if reason:
        report.note(group, "compute-optimal allocation", reason)
        return []
    flops = flops_law(frame)
    report.add("parameter", _flops_parameters(flops, group, settings))
    budgets = np.geomspace(frame["train_flops"].min(), 10 * frame["train_flops"].max(), BUDGETS)
    best = optimal_allocation(robust.law, robust.theta[None], flops.params, budgets)
    draws = optimal_allocation(robust.law, robust.draws, flops.params, budgets)
    low, high = intervals(robust, draws, settings["confidence"])
    identified = law_identified(robust)
    return [
        {
            **_allocation_row(frame, group, budget, best[0, i], low[i], high[i]),
            "identified": identified,
        }
        for i, budget in enumerate(budgets)
    ]


def _allocation_reason(frame, robust) -> str | None:
    if "train_flops" not in frame or not (frame["train_flops"] > 0).all():
        return "no training FLOP counts (train_flops)"
    if robust is None or len(robust.law.terms) < 2:
        return "needs the robust law in both N and n"
    return None


def optimal_allocation(law: AdditiveLaw, theta, flops_params, budgets) -> np.ndarray:
    """(N*, n*, err*) at each budget, closed form; shape (draws, budgets, 3).

    With C = k N^a n^b, n = (C/(k N^a))^(1/b), and err = E + A N^-alpha + B n^-beta is
    minimal where N^(alpha+g) = alpha A / (g B (C/k)^(-beta/b)), g = a beta / b.
    """
    floor, log_amp, expo = law.split(theta)
    log_k, a, b = flops_params["Intercept"], flops_params["log_N"], flops_params["log_n"]
    alpha, beta = expo[:, :1], expo[:, 1:]
    A, B = np.exp(log_amp[:, :1]), np.exp(log_amp[:, 1:])
    log_budget = np.log(budgets)[None, :] - log_k
    g = a * beta / b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_N = (np.log(alpha * A / (g * B)) + beta / b * log_budget) / (alpha + g)
        log_n = (log_budget - a * log_N) / b
        err = floor[:, None] + A * np.exp(-alpha * log_N) + B * np.exp(-beta * log_n)
    return np.stack([np.exp(log_N), np.exp(log_n), err], axis=-1)


def _allocation_row(frame, group, budget, best, low, high) -> dict:
    points = frame.groupby(["n_params", "n"]).agg(
        flops=("train_flops", "median"), err=("err", "median")
    )
    affordable = points[points["flops"] <= budget]
    measured = affordable["err"].idxmin() if len(affordable) else (math.nan, math.nan)
    inside = (
        frame["n_params"].min() <= best[0] <= frame["n_params"].max()
        and frame["n"].min() <= best[1] <= frame["n"].max()
    )
    return {
        "group": group,
        "budget": float(budget),
        **{f"{k}_opt": float(best[i]) for i, k in enumerate(("N", "n", "err"))},
        **{f"{k}_low": float(low[i]) for i, k in enumerate(("N", "n", "err"))},
        **{f"{k}_high": float(high[i]) for i, k in enumerate(("N", "n", "err"))},
        "extrapolated": "no" if inside else "yes",
        "best_measured_N": float(measured[0]),
        "best_measured_n": float(measured[1]),
        "best_measured_err": float(affordable["err"].min()) if len(affordable) else math.nan,
    }


def _flops_parameters(flops, group: str, settings: dict) -> list[dict]:
    ci = flops.conf_int(alpha=1 - settings["confidence"])
    names = {"Intercept": "log k (FLOPs)", "log_N": "a (FLOPs ~ N^a)", "log_n": "b (FLOPs ~ n^b)"}
    return [
        {
            "group": group,
            "law": "flops",
            "name": label,
            "estimate": float(flops.params[term]),
            "ci_low": float(ci.loc[term, 0]),
            "ci_high": float(ci.loc[term, 1]),
        }
        for term, label in names.items()
    ]
