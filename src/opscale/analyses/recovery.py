"""Local linear recovery (Zhang et al. 2024, arXiv 2406.18035): theory vs measured.

Reads the ``recovery`` measure (``opscale.measures.recovery``) from a study cube and
checks the paper's claims about a two-layer tanh teacher with k neurons in d dimensions
(no bias) and a student of width m >= k:

- ``rank`` (the paper's condition): on the n training inputs, the student's Jacobian at
  the teacher's embedding has rank k(d+1) when n >= k(d+1) (then the data locally
  identify the teacher's tangent space) and at most n below. One row per (k, d, m): how
  many models with n >= k(d+1) have rank k(d+1) at both embeddings (verdict ``holds`` /
  ``does not hold``), how many below have rank n, and the rank on the probe inputs, the
  model's tangent rank, k(d+1) by construction (shown as a check, not as evidence);
- ``claim`` (optimistic sample size): recovery needs n >= k(d+1). Per (k, d, m, init
  scale) the share of recovered models with n < k(d+1) (the claim holds when none is)
  and with n >= k(d+1); the models with n >= k(d+1) that were not recovered are split
  into those whose polished state fits the training set to the tolerance (interpolated
  but not identified) and those that do not (the optimisation did not reach a zero of
  the training loss, so they say nothing about identifiability);
- ``n50``: recovery is reached from about k(d+1) samples, independently of m: per
  (k, d, m, init scale) a logistic regression (statsmodels Logit) of the recovery flag
  on log n, n50 = exp(-b0 / b1), with a delta-method interval from the covariance
  cluster-robust by seed (a seed shares its teacher, inputs and initialisation across
  every n, so its models are not independent), next to k(d+1) and m(d+1). Where the
  flags are perfectly separated in n (the Logit's MLE does not exist) n50 is the
  log-midpoint of the last all-fail and first all-success sample sizes and its interval
  those two sizes; where the Logit does not converge (quasi-separation) n50 is where the
  per-n recovery rate crosses 1/2 (linear in log n), bracketed by the two sampled sizes
  around it. The row's ``method`` says which.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import statsmodels.api as sm
import xarray as xr
from matplotlib.ticker import NullFormatter, ScalarFormatter
from scipy.stats import norm

from opscale import cube as cubes
from opscale.config import get_path
from opscale.tables import markdown_table, number, table

KEYS = {  # column of the analysis: dotted path of the setting
    "k": "problem.neurons",
    "d": "problem.dim",
    "m": "model.width",
    "init_scale": "model.init_scale",
    "n": "data.n_train",
}
MEMBER_VARIABLES = ("recovered", "test_rel_mse", "train_rel_mse_polished")
MEMBER_VARIABLES += ("test_rel_mse_polished", "rank_init", "rank_trained", "teacher_rank")
MEMBER_VARIABLES += ("student_params", "status")
EMBEDDED = ("rank_embedding", "rank_train_embedding")  # on (member, embedding)


# ---------------------------------------------------------------------------- tables
def analyse(cube: xr.Dataset, settings: dict) -> dict[str, pd.DataFrame]:
    """The ``rank``, ``claim`` and ``n50`` tables of a recovery study's cube."""
    members = member_frame(cube)
    tolerance = get_path(cubes.study_config(cube), "measure.recovery.tolerance")
    return {
        "rank": rank_table(embedding_frame(cube, members), members),
        "claim": claim_table(members, tolerance),
        "n50": n50_table(members, settings["confidence"]),
    }


def member_frame(cube: xr.Dataset) -> pd.DataFrame:
    """One row per trained member: k, d, m, init_scale, n, seed and the measured values."""
    frame = cube[list(MEMBER_VARIABLES)].to_dataframe().reset_index()
    frame = _with_settings(frame, cube)
    return frame[frame["status"] == 0].reset_index(drop=True)  # diverged/missing: no verdict


def embedding_frame(cube: xr.Dataset, members: pd.DataFrame) -> pd.DataFrame:
    """One row per trained member and embedding: the probe and training-input ranks.

    Column ``model`` numbers the members (one number for both of a member's embeddings).
    """
    frame = cube[list(EMBEDDED)].to_dataframe().reset_index()
    dims = list(cube["status"].dims)
    frame = _with_settings(frame, cube).merge(members[dims], on=dims)  # trained members only
    return frame.assign(model=frame.groupby(dims).ngroup())


def _with_settings(frame: pd.DataFrame, cube: xr.Dataset) -> pd.DataFrame:
    """Columns k, d, m, init_scale, n from the swept axes, else the study's fixed values."""
    axes = {path: name for name, path in cubes.axes(cube).items()}
    config = cubes.study_config(cube)  # resolved at parse time: every default is there
    for column, path in KEYS.items():
        frame[column] = frame[axes[path]] if path in axes else get_path(config, path)
    return frame


def rank_table(ranks: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """The training-input rank vs min(n, k(d+1)) and the probe rank, per (k, d, m)."""
    rows = []
    for (k, d, m), group in ranks.groupby(["k", "d", "m"]):
        theory = k * (d + 1)
        rows.append(
            {"k": k, "d": d, "m": m, "k_d1": theory, "m_d1": m * (d + 1)}
            | _training_rank_columns(group, theory)
            | {f"probe_{e}": _span(v) for e, v in group.groupby("embedding")["rank_embedding"]}
            | _state_columns(members, k, d, m)
        )
    return pd.DataFrame(rows)


def _training_rank_columns(group: pd.DataFrame, theory: int) -> dict:
    """Models whose training-input rank is the theory's at both embeddings, above and below.

    n >= k(d+1): rank k(d+1) (the claim); n < k(d+1): rank n (generic inputs).
    """
    match = group["rank_train_embedding"] == np.minimum(group["n"], theory)
    models = (
        group.assign(match=match).groupby("model").agg(match=("match", "all"), n=("n", "first"))
    )
    above = models[models.n >= theory]
    below = models[models.n < theory]
    held, total = int(above.match.sum()), len(above)
    return {
        "above_match": held,
        "above_models": total,
        "below_match": int(below.match.sum()),
        "below_models": len(below),
        "verdict": ("holds" if held == total else "does not hold") if total else "not tested",
    }


def _state_columns(members: pd.DataFrame, k, d, m) -> dict:
    """Median probe rank at initialisation and at the trained state of the (k, d, m) members."""
    mine = members[(members.k == k) & (members.d == d) & (members.m == m)]
    return {
        "rank_init_median": float(mine["rank_init"].median()),
        "rank_trained_median": float(mine["rank_trained"].median()),
    }


def _span(values: pd.Series) -> str:
    """'r' when all equal, else 'min-max'."""
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}-{high}"


def claim_table(members: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Recovered shares below and from k(d+1), per (k, d, m, init_scale), with the verdict."""
    rows = []
    for (k, d, m, scale), group in members.groupby(["k", "d", "m", "init_scale"]):
        theory = k * (d + 1)
        below, above = group[group.n < theory], group[group.n >= theory]
        missed = above[above.recovered == 0]
        fits = missed.train_rel_mse_polished < tolerance
        smallest = group.n[group.recovered == 1].min() if group.recovered.any() else np.nan
        rows.append(
            {
                "k": k,
                "d": d,
                "m": m,
                "init_scale": scale,
                "k_d1": theory,
                "below_recovered": int(below.recovered.sum()),
                "below_models": len(below),
                "above_recovered": int(above.recovered.sum()),
                "above_models": len(above),
                "above_interpolated": int(fits.sum()),
                "above_unfit": int((~fits).sum()),
                "interpolated_train": float(missed.train_rel_mse_polished[fits].median()),
                "interpolated_test": float(missed.test_rel_mse_polished[fits].median()),
                "smallest_n": float(smallest),
                "verdict": _claim_verdict(below),
            }
        )
    return pd.DataFrame(rows)


def _claim_verdict(below: pd.DataFrame) -> str:
    """'recovery needs n >= k(d+1)': holds when no model with fewer samples recovered."""
    if not len(below):
        return "not tested (no n below k(d+1))"
    return "holds" if below.recovered.sum() == 0 else "does not hold"


def n50_table(members: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """n50 of recovery per (k, d, m, init_scale) next to k(d+1) and m(d+1)."""
    rows = []
    for (k, d, m, scale), group in members.groupby(["k", "d", "m", "init_scale"]):
        estimate = n50(
            group["n"].to_numpy(float),
            group["recovered"].to_numpy(float),
            level,
            group["seed"].to_numpy(),
        )
        rows.append(
            {
                "k": k,
                "d": d,
                "m": m,
                "init_scale": scale,
                "k_d1": k * (d + 1),
                "m_d1": m * (d + 1),
                **estimate,
                "ratio": estimate["n50"] / (k * (d + 1)),
                "models": len(group),
                "recovered": int(group["recovered"].sum()),
            }
        )
    return pd.DataFrame(rows)


def n50(
    n: np.ndarray, recovered: np.ndarray, level: float = 0.95, seeds: np.ndarray | None = None
) -> dict:
    """Sample size at which recovery has probability 1/2, with a `level` interval.

    Logit of recovered (0/1) on log n; n50 = exp(-b0 / b1), interval by the delta method
    on log n50 from the covariance cluster-robust by `seeds` (None: every model its own
    cluster, the usual robust covariance). Perfectly separated flags: the log-midpoint
    between the largest failing and smallest recovering n (interval: those two). All fail
    or all recover: NaN, noted.
    """
    if recovered.min() == recovered.max():
        side = "above" if recovered.max() == 0 else "below"
        return _estimate(np.nan, np.nan, np.nan, f"none: n50 is {side} the sampled n")
    fails, wins = n[recovered == 0], n[recovered == 1]
    if fails.max() < wins.min():
        low, high = fails.max(), wins.min()
        return _estimate(np.sqrt(low * high), low, high, "separated: log-midpoint of the gap")
    groups = np.arange(len(n)) if seeds is None else pd.factorize(seeds)[0]
    return _logit_n50(n, recovered, level, groups)


def _logit_n50(n: np.ndarray, recovered: np.ndarray, level: float, groups: np.ndarray) -> dict:
    """n50 and its delta-method interval from a Logit of recovered on log n, clustered."""
    X = sm.add_constant(np.log(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quasi-separation warnings: checked below
        result = sm.Logit(recovered, X).fit(disp=0, cov_type="cluster", cov_kwds={"groups": groups})
    b0, b1 = result.params
    if not result.mle_retvals.get("converged", False) or b1 <= 0:
        return interpolated_n50(n, recovered, f"logit did not converge (slope {b1:.3g}): ")
    gradient = np.array([-1.0 / b1, b0 / b1**2])  # of log n50 = -b0 / b1
    se = float(np.sqrt(gradient @ result.cov_params() @ gradient))
    z = norm.ppf(0.5 + level / 2)
    center = -b0 / b1
    clusters = len(np.unique(groups))
    method = f"logit, clustered by seed ({clusters} clusters)"
    return _estimate(np.exp(center), np.exp(center - z * se), np.exp(center + z * se), method)


def interpolated_n50(n: np.ndarray, recovered: np.ndarray, why: str = "") -> dict:
    """Where the recovery rate per n first reaches 1/2, linear in log n between grid points.

    The interval is the bracketing pair of sampled n (not a confidence interval).
    """
    sizes = np.unique(n)
    rate = np.array([recovered[n == size].mean() for size in sizes])
    above = np.flatnonzero(rate >= 0.5)
    if len(above) == 0 or above[0] == 0:
        side = "above" if len(above) == 0 else "at or below"
        return _estimate(np.nan, np.nan, np.nan, f"{why}n50 is {side} the sampled n")
    i = above[0]
    low, high = np.log(sizes[i - 1]), np.log(sizes[i])
    t = (0.5 - rate[i - 1]) / (rate[i] - rate[i - 1])
    center = np.exp(low + t * (high - low))
    return _estimate(center, sizes[i - 1], sizes[i], f"{why}interpolated rate crossing")


def _estimate(center, low, high, method: str) -> dict:
    return {"n50": float(center), "low": float(low), "high": float(high), "method": method}


# ---------------------------------------------------------------------------- markdown
def markdown(fits: xr.Dataset) -> str:
    """fit.md's recovery sections: the training-input rank, the claim, n50 vs k(d+1)."""
    options = get_path(cubes.study_config(fits), "measure.recovery")
    level = fits.attrs.get("confidence", 0.95)
    return "\n".join(
        [
            _rank_section(table(fits, "recovery_rank")),
            _claim_section(table(fits, "recovery_claim"), options),
            _n50_section(table(fits, "recovery_n50"), level),
        ]
    )


def _rank_section(ranks: pd.DataFrame) -> str:
    header = ["k", "d", "m", "k(d+1) (theory)", "m(d+1)", "n >= k(d+1): rank = k(d+1)"]
    header += ["n < k(d+1): rank = n", "probe rank, null / split (model rank)"]
    header += ["rank at init (median)", "rank trained (median)", "verdict"]
    rows = [
        [r.k, r.d, r.m, r.k_d1, r.m_d1, f"{r.above_match}/{r.above_models}"]
        + [f"{r.below_match}/{r.below_models}", f"{r.probe_null} / {r.probe_split}"]
        + [f"{r.rank_init_median:g}", f"{r.rank_trained_median:g}", r.verdict]
        for r in ranks.itertuples()
    ]
    intro = (
        "## Local recovery: Jacobian rank on the training inputs at the teacher\n\n"
        "Theory (Zhang et al. 2024): the n x m(d+1) Jacobian of the student on its n "
        "training inputs, at the teacher embedded in it, has rank k(d+1) when "
        "n >= k(d+1), so the training data locally identify the teacher's tangent space, "
        "and at most n below. Counts: models whose rank is min(n, k(d+1)) at both "
        "embeddings (null and split); verdict: every model with n >= k(d+1) has rank "
        "k(d+1). The probe rank (many inputs) is the model's tangent rank, k(d+1) by "
        "construction: a check of the computation, not evidence.\n\n"
    )
    return intro + (markdown_table(header, rows) if rows else "No members measured.\n")


def _claim_section(claims: pd.DataFrame, options: dict) -> str:
    header = ["k", "d", "m", "init scale", "k(d+1) (theory)", "recovered, n < k(d+1)"]
    header += ["recovered, n >= k(d+1)", "not recovered, n >= k(d+1): fit / no fit"]
    header += ["fit: median train / test error", "smallest recovering n", "verdict"]
    rows = [
        [r.k, r.d, r.m, f"{r.init_scale:g}", r.k_d1, _share(r.below_recovered, r.below_models)]
        + [_share(r.above_recovered, r.above_models), f"{r.above_interpolated} / {r.above_unfit}"]
        + [f"{number(r.interpolated_train)} / {number(r.interpolated_test)}"]
        + ["-" if np.isnan(r.smallest_n) else f"{r.smallest_n:g}", r.verdict]
        for r in claims.itertuples()
    ]
    intro = (
        "## Local recovery: optimistic sample size (recovery needs n >= k(d+1))\n\n"
        "Theory: with n < k(d+1) the training data cannot identify the teacher (its "
        "Jacobian rank is at most n), so no model should recover; from k(d+1) on "
        "recovery is possible. Recovered: test MSE / Var(f*) < "
        f"{number(options['tolerance'])} after {options['polish']} Levenberg-Marquardt "
        "iterations on the training MSE from the trained state (float64). Verdict: holds "
        "when no model with n < k(d+1) recovered. Not recovered with n >= k(d+1): `fit`, "
        "the polished state fits the training set to the tolerance but not the test set "
        "(an interpolant other than the teacher when its training error is far below the "
        "tolerance); `no fit`, it does not (the optimisation "
        "did not reach a zero of the training loss). Errors: MSE / Var(f*) of the polished "
        "state on the training and the test inputs, the median over the `fit` models.\n\n"
    )
    return intro + (markdown_table(header, rows) if rows else "No members measured.\n")


def _share(recovered: int, models: int) -> str:
    return f"{recovered}/{models} ({recovered / models:.0%})" if models else "-"


def _n50_section(n50s: pd.DataFrame, level: float) -> str:
    header = ["k", "d", "m", "init scale", "k(d+1) (theory)", "m(d+1)"]
    header += [f"n50 [{level:.0%} CI]", "n50 / k(d+1)", "recovered / models", "method"]
    rows = [
        [r.k, r.d, r.m, f"{r.init_scale:g}", r.k_d1, r.m_d1]
        + [_interval(r), f"{r.ratio:.2f}", f"{r.recovered}/{r.models}", r.method]
        for r in n50s.itertuples()
    ]
    intro = (
        "## Local recovery: samples needed (n50) vs k(d+1)\n\n"
        "Theory: recovery becomes possible from about k(d+1) samples, independent of the "
        "student's m(d+1) parameters. n50: n at which the fitted recovery probability is 1/2 "
        "(Logit on log n, delta-method interval from the covariance cluster-robust by "
        "seed; `separated`: no MLE, log-midpoint of the gap instead; `interpolated`: the "
        "Logit did not converge, the per-n rate's crossing of 1/2; for both the interval "
        "is the bracketing pair of sampled n, not a confidence interval).\n\n"
    )
    return intro + (markdown_table(header, rows) if rows else "No members measured.\n")


def _interval(row) -> str:
    if np.isnan(row.n50):
        return "-"
    return f"{row.n50:.1f} [{row.low:.1f}, {row.high:.1f}]"


# ---------------------------------------------------------------------------- figures
def recovery_probability(cube: xr.Dataset, fits: xr.Dataset) -> plt.Figure:
    """Recovery rate vs n / k(d+1), one line per (k, d, m), one panel per init scale."""
    rates = (
        member_frame(cube)
        .assign(teacher=lambda f: [f"k={k}, d={d}" for k, d in zip(f.k, f.d, strict=True)])
        .assign(x=lambda f: f.n / f.teacher_rank)
        .groupby(["teacher", "m", "init_scale", "x"], as_index=False)["recovered"]
        .mean()
    )
    grid = sns.relplot(
        rates, x="x", y="recovered", hue="m", style="teacher", col="init_scale", kind="line",
        markers=True, palette="viridis", height=3.2, aspect=1.2,
    )  # fmt: skip
    for ax in grid.axes.flat:
        ax.axvline(1.0, color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    grid.set_axis_labels("n / k(d+1)", "fraction recovered")
    return grid.figure


def recovery_rank(cube: xr.Dataset, fits: xr.Dataset) -> plt.Figure:
    """Training-input Jacobian rank at the teacher / k(d+1) vs n / k(d+1), theory min(x, 1)."""
    ranks = embedding_frame(cube, member_frame(cube))
    ranks = ranks.assign(
        x=ranks.n / (ranks.k * (ranks.d + 1)),
        r=ranks.rank_train_embedding / (ranks.k * (ranks.d + 1)),
        teacher=[f"k={k}, d={d}" for k, d in zip(ranks.k, ranks.d, strict=True)],
    )
    figure, ax = plt.subplots(figsize=(4.8, 4))
    top = float(ranks.x.max()) if len(ranks) else 1.0
    grid = np.geomspace(min(float(ranks.x.min()), 1.0) if len(ranks) else 0.1, max(top, 1.0))
    ax.plot(grid, np.minimum(grid, 1.0), color="grey", lw=1, label="theory min(n, k(d+1))")
    sns.scatterplot(ranks, x="x", y="r", hue="teacher", style="embedding", ax=ax, alpha=0.6, s=25)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="n / k(d+1)", ylabel="training-input rank / k(d+1)")
    ax.legend(fontsize="small")
    return figure
