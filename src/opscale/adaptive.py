"""Adaptive sweeps: choose the next cells (N, n, seed) of a study for a scaling law.

A fixed grid spends most of its compute on its largest cells, and most of them shrink the
interval of an exponent very little. This engine chooses cells round by round instead:

1. **Initial design** (``initial_design``): the cheap cross of the candidate grid (every N
   at the smallest n, every n at the smallest N) and its centre, at ``seeds`` seeds per
   cell drawn by an explicit generator: enough distinct values (3 per axis) and grid
   points for the law to be fitted, at a small share of the grid's compute.
2. **Fit**: the point fit of the robust law the report uses (``AdditiveLaw`` with floor,
   Huber on log err, ``fitting.fit_law`` without bootstrap) to the runs done so far.
3. **Proposal** (``propose``): candidates scored by the expected reduction of the
   target's variance per training FLOP, picked greedily (module section below).
4. **Stop** (``Stop``): when the FLOPs spent reach a budget, when no affordable candidate
   is left, or when the target's (linearised) interval is narrow enough.

The criterion
-------------
Linearise log err in the law's parameters theta at the fitted theta: the Jacobian row of
a cell x is j(x) = d log err(x) / d theta (``AdditiveLaw.jacobian``). With independent
noise of variance sigma^2 on log err, the information of a set of runs is
M = J^T J / sigma^2 (+ a ridge, below) and the target t = G theta (G: the rows of the
target, e.g. the unit row of beta; for the error extrapolated to (N, n), G is the
Jacobian row there) has Var(t) ~ trace(G M^-1 G^T). Adding a run at x adds j j^T /
sigma^2 to M; by Sherman-Morrison the variance falls by

    ||G M^-1 j||^2 / (sigma^2 + j^T M^-1 j),

and a candidate's score is that reduction divided by its training FLOPs. The batch is
picked greedily: the best candidate is taken, M is updated with its row, every score is
recomputed, and so on. Ties (e.g. the same (N, n) at another seed: the linearised
criterion cannot tell seeds apart) go to the cheaper cell, then to the earlier place in
an order drawn once per round from the explicit generator, so that given the seed the
whole sequence of proposals is deterministic.

Assumptions: the law is the right law (no misspecification term); the noise of log err is
independent across runs with one variance, estimated as the fit's Huber scale / 1.345
(replicates where there are any, else the residuals' MAD), so the seed effects a seed's
nested data share are ignored by the criterion (the final intervals, by the seed
bootstrap, do not ignore them); the linearisation holds near the fitted theta (it is
re-made after every round, so early mistakes are corrected as the fit improves). A
parameter at a bound (a floor at 0, a vanishing term) makes M singular: a ridge of
``RIDGE`` times M's mean diagonal keeps it invertible (a weak prior on theta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from opscale.rng import numpy_rng
from opscale.scaling.fitting import HUBER_TUNING, LawFit, fit_law
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import table_observations

RIDGE = 1e-9  # times the mean diagonal of the information: keeps M invertible
COLUMNS = ("N", "n", "seed", "flops")  # a candidate cell; a run adds "err"
LAW = AdditiveLaw(("log_N", "log_n"))  # the robust law of the report, both terms


# ------------------------------------------------------------------------ targets
def _exponents(*terms: str):
    """G of the exponents of `terms`: one unit row per term."""

    def rows(law: AdditiveLaw, theta, at) -> np.ndarray:
        G = np.zeros((len(terms), law.n_params))
        for i, term in enumerate(terms):
            G[i, law.exponent_index(law.terms.index(term))] = 1.0
        return G

    return rows


def _error(law: AdditiveLaw, theta, at) -> np.ndarray:
    """G of log err extrapolated to `at` = (N, n): the law's Jacobian row there."""
    N, n = at
    return law.jacobian(theta, np.log([[float(N), float(n)]]))


# name -> G(law, theta, at): the rows whose summed variance the design reduces ("both":
# Var alpha + Var beta, A-optimality on the two; "error": Var of log err at `at`)
TARGETS = {
    "alpha": _exponents("log_N"),
    "beta": _exponents("log_n"),
    "both": _exponents("log_N", "log_n"),
    "error": _error,
}


@dataclass(frozen=True)
class Target:
    """What the design is for: ``name`` in ``TARGETS``; ``at`` = (N, n) for "error"."""

    name: str
    at: tuple[float, float] | None = None

    def rows(self, law: AdditiveLaw, theta) -> np.ndarray:
        return TARGETS[self.name](law, theta, self.at)


@dataclass(frozen=True)
class Stop:
    """The stopping rule: FLOPs ``budget`` spent, or the target's interval ``width``
    (the widest of its rows; linearised, at ``confidence``) reached; either may be None."""

    budget: float | None = None
    width: float | None = None
    confidence: float = 0.95

    def reason(self, spent: float, width: float) -> str:
        """Why to stop now ("" to go on)."""
        if self.budget is not None and spent >= self.budget:
            return f"budget: {spent:.4g} of {self.budget:.4g} FLOPs spent"
        if self.width is not None and width <= self.width:
            return f"width: the target's interval is {width:.4g} <= {self.width:.4g}"
        return ""

    def left(self, spent: float) -> float:
        """FLOPs left in the budget (inf without one)."""
        return math.inf if self.budget is None else self.budget - spent


# ------------------------------------------------------------------------ design
def initial_design(candidates: pd.DataFrame, seed: int, seeds: int = 1) -> pd.DataFrame:
    """The cheap cross (every N at the smallest n, every n at the smallest N) and the
    centre (the upper median N and n) of the candidate grid, at `seeds` seeds per cell drawn
    with ``numpy_rng(seed, "adaptive", "initial")``; rows of `candidates`, in order."""
    rng = numpy_rng(seed, "adaptive", "initial")
    Ns, ns = np.sort(candidates["N"].unique()), np.sort(candidates["n"].unique())
    cells = {(N, ns[0]) for N in Ns} | {(Ns[0], n) for n in ns}
    cells.add((Ns[len(Ns) // 2], ns[len(ns) // 2]))  # the (upper) median of each axis
    picked = []
    for N, n in sorted(cells):
        rows = candidates.index[(candidates["N"] == N) & (candidates["n"] == n)]
        picked += list(rng.choice(np.sort(rows), min(seeds, len(rows)), replace=False))
    return candidates.loc[sorted(picked)]


def fit_runs(runs: pd.DataFrame, settings: dict) -> LawFit:
    """The point fit of the robust law (Huber on log err, no bootstrap) to `runs`."""
    return fit_law(frame_of(runs), LAW, settings)


def frame_of(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` (N, n, seed, err) as the observations the fits take."""
    return table_observations(runs, "N", "n", "err", seed="seed")[0]


def noise(fitted: LawFit) -> float:
    """sigma of log err: the fit's Huber scale / 1.345 (replicates, else residuals)."""
    return max(fitted.scale / HUBER_TUNING, 1e-6)


def information(law: AdditiveLaw, theta, runs: pd.DataFrame, sigma: float) -> np.ndarray:
    """M = J^T J / sigma^2 (+ the ridge) of `runs` at theta, shape (p, p)."""
    J = law.jacobian(theta, _logs(runs))
    M = J.T @ J / sigma**2
    return M + RIDGE * max(np.trace(M) / len(M), 1e-300) * np.eye(len(M))


def target_variance(law, theta, runs, sigma: float, target: Target) -> np.ndarray:
    """Var of each row of the target, diag(G M^-1 G^T), shape (rows,)."""
    G = target.rows(law, theta)
    return np.einsum("ij,ij->i", G @ np.linalg.inv(information(law, theta, runs, sigma)), G)


def interval_width(variance: np.ndarray, confidence: float) -> float:
    """Widest normal interval of the target's rows: 2 z sqrt(Var)."""
    return float(2 * stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(variance).max())


def reductions(G, inverse, rows, sigma: float) -> np.ndarray:
    """Fall of trace(G M^-1 G^T) from adding each of `rows` (cells, p) alone."""
    u = rows @ inverse  # (cells, p): M^-1 j (M^-1 is symmetric)
    return ((u @ G.T) ** 2).sum(1) / (sigma**2 + np.einsum("ij,ij->i", u, rows))


def propose(
    runs: pd.DataFrame,
    candidates: pd.DataFrame,
    target: Target,
    batch: int,
    settings: dict,
    rng: np.random.Generator,
    budget_left: float = math.inf,
    fitted: LawFit | None = None,
) -> pd.DataFrame:
    """The next `batch` cells: greedy on the variance reduction per FLOP (module doc).

    `runs` are the runs done (N, n, seed, err), `candidates` the cells not yet run
    (N, n, seed, flops); a pick must fit in `budget_left` with those before it;
    `fitted` is the fit to `runs` where the caller has it (else it is made). Returns
    the chosen rows of `candidates`, in the order picked, with ``score`` (reduction per
    FLOP when picked) and ``variance`` (the target's linearised variance after it).
    """
    fitted = fit_runs(runs, settings) if fitted is None else fitted
    sigma, law, theta = noise(fitted), fitted.law, fitted.theta
    G = target.rows(law, theta)
    inverse = np.linalg.inv(information(law, theta, runs, sigma))
    rows, flops = law.jacobian(theta, _logs(candidates)), candidates["flops"].to_numpy(float)
    order = rng.permutation(len(candidates))  # the last tie-break, drawn once per round
    free, picks = np.ones(len(candidates), bool), []
    for _ in range(batch):
        free &= flops <= budget_left
        if not free.any():
            break
        score = np.where(free, reductions(G, inverse, rows, sigma) / flops, -np.inf)
        best = np.lexsort((order, flops, -_rounded(score)))[0]
        u = inverse @ rows[best]
        inverse = inverse - np.outer(u, u) / (sigma**2 + rows[best] @ u)
        variance = float(np.trace(G @ inverse @ G.T))
        picks.append((best, float(score[best]), variance))
        free[best], budget_left = False, budget_left - flops[best]
    index = [candidates.index[i] for i, _, _ in picks]
    chosen = candidates.loc[index].copy()
    chosen["score"] = [s for _, s, _ in picks]
    chosen["variance"] = [v for _, _, v in picks]
    return chosen


def _rounded(score: np.ndarray) -> np.ndarray:
    """Scores relative to the best, to 12 decimals: cells the criterion cannot tell apart
    (the same (N, n) at another seed) tie exactly, whatever the floating-point order."""
    top = score[np.isfinite(score)].max(initial=0.0)
    return np.round(score / top, 12) if top > 0 else score


def _logs(cells: pd.DataFrame) -> np.ndarray:
    """(log N, log n) of `cells`, the law's design (power shape), shape (cells, 2)."""
    return np.log(cells[["N", "n"]].to_numpy(float))


# ------------------------------------------------------------------------ the loop
def replay(
    recorded: pd.DataFrame,
    target: Target,
    stop: Stop,
    batch: int,
    settings: dict,
    seed: int,
    initial_seeds: int = 1,
) -> tuple[pd.DataFrame, list[dict]]:
    """The adaptive loop against recorded results (every candidate cell already run).

    `recorded`: one row per cell (N, n, seed, flops, err). A proposal sees only the runs
    chosen before it; its cells' errors are then read from `recorded` (no retraining).
    Returns the runs chosen (with ``round``, 0 the initial design) and one record per
    round (round, cells, FLOPs spent, the target's linearised width, why it stopped).
    """
    runs = initial_design(recorded, seed, initial_seeds).assign(round=0)
    rounds = []
    for k in range(1, len(recorded) + 1):
        fitted = fit_runs(runs, settings)
        variance = target_variance(fitted.law, fitted.theta, runs, noise(fitted), target)
        spent, width = float(runs["flops"].sum()), interval_width(variance, stop.confidence)
        reason = stop.reason(spent, width)
        rounds.append({"round": k - 1, "cells": len(runs), "flops": spent, "width": width})
        rest = recorded.drop(index=runs.index)
        rng = numpy_rng(seed, "adaptive", "round", k)
        reason = reason or ("every candidate was run" if rest.empty else "")
        chosen = (
            rest.iloc[:0]
            if reason
            else propose(
                runs, rest[list(COLUMNS)], target, batch, settings, rng, stop.left(spent), fitted
            )
        )
        if chosen.empty:
            rounds[-1]["stopped"] = reason or "no affordable candidate left"
            return runs, rounds
        runs = pd.concat([runs, recorded.loc[chosen.index].assign(round=k)])
    raise AssertionError("unreachable: every round adds a cell")
