"""Local linear recovery (Zhang et al. 2024, arXiv 2406.18035): theory vs measured.

Reads the ``recovery`` measure (``opscale.measures.recovery``) from a study cube and
checks the paper's two claims about a two-layer tanh teacher with k neurons in d
dimensions (no bias) and a student of width m >= k:

- ``rank``: the tangent-space rank at the teacher's embedding is exactly k(d+1), for
  every (k, d, m): one row per (k, d, m) with the measured ranks (every seed, n and
  initialisation scale), k(d+1), m(d+1) and pass/fail;
- ``n50``: recovery becomes possible from about k(d+1) samples, independently of m:
  per (k, d, m, init scale) a logistic regression (statsmodels Logit) of the recovery flag
  on log n, its n50 = exp(-b0 / b1) with a delta-method interval, next to k(d+1) and
  m(d+1). Where the flags are perfectly separated in n (the Logit's MLE does not exist)
  n50 is the log-midpoint of the last all-fail and first all-success sample sizes and its
  interval those two sizes; where the Logit does not converge (quasi-separation) n50 is
  where the per-n recovery rate crosses 1/2 (linear in log n), bracketed by the two
  sampled sizes around it. The row's ``method`` says which.
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
from opscale.tables import markdown_table, table

KEYS = {  # column of the analysis: dotted path of the setting
    "k": "problem.neurons",
    "d": "problem.dim",
    "m": "model.width",
    "init_scale": "model.init_scale",
    "n": "data.n_train",
}
MEMBER_VARIABLES = ("recovered", "test_rel_mse", "rank_init", "rank_trained", "teacher_rank")
MEMBER_VARIABLES += ("student_params", "status")


# ---------------------------------------------------------------------------- tables
def analyse(cube: xr.Dataset, settings: dict) -> dict[str, pd.DataFrame]:
    """The ``rank`` and ``n50`` tables of a recovery study's cube."""
    members = member_frame(cube)
    level = settings["confidence"]
    return {"rank": rank_table(cube, members), "n50": n50_table(members, level)}


def member_frame(cube: xr.Dataset) -> pd.DataFrame:
    """One row per trained member: k, d, m, init_scale, n, seed and the measured values."""
    frame = cube[list(MEMBER_VARIABLES)].to_dataframe().reset_index()
    frame = _with_settings(frame, cube)
    return frame[frame["status"] == 0].reset_index(drop=True)  # diverged/missing: no verdict


def _with_settings(frame: pd.DataFrame, cube: xr.Dataset) -> pd.DataFrame:
    """Columns k, d, m, init_scale, n from the swept axes, else the study's fixed values."""
    axes = {path: name for name, path in cubes.axes(cube).items()}
    config = cubes.study_config(cube)  # resolved at parse time: every default is there
    for column, path in KEYS.items():
        frame[column] = frame[axes[path]] if path in axes else get_path(config, path)
    return frame


def rank_table(cube: xr.Dataset, members: pd.DataFrame) -> pd.DataFrame:
    """Rank at each embedding vs k(d+1), per (k, d, m); pass when every member's equals it."""
    ranks = cube["rank_embedding"].to_dataframe().reset_index()
    dims = list(cube["status"].dims)
    ranks = _with_settings(ranks, cube).merge(members[dims], on=dims)  # trained members only
    rows = []
    for (k, d, m), group in ranks.groupby(["k", "d", "m"]):
        rows.append(
            {
                "k": k,
                "d": d,
                "m": m,
                "k_d1": k * (d + 1),
                "m_d1": m * (d + 1),
                **_embedding_columns(group, k * (d + 1)),
                **_state_columns(members, k, d, m),
            }
        )
    return pd.DataFrame(rows)


def _embedding_columns(group: pd.DataFrame, theory: int) -> dict:
    """Measured rank range per embedding, members checked, and the verdict."""
    columns = {}
    for embedding, values in group.groupby("embedding")["rank_embedding"]:
        columns[f"rank_{embedding}"] = _span(values)
    columns["members"] = int(group.groupby("embedding").size().min())
    columns["verdict"] = "pass" if (group["rank_embedding"] == theory).all() else "FAIL"
    return columns


def _state_columns(members: pd.DataFrame, k, d, m) -> dict:
    """Median rank at initialisation and at the trained state of the (k, d, m) members."""
    mine = members[(members.k == k) & (members.d == d) & (members.m == m)]
    return {
        "rank_init_median": float(mine["rank_init"].median()),
        "rank_trained_median": float(mine["rank_trained"].median()),
    }


def _span(values: pd.Series) -> str:
    """'r' when all equal, else 'min-max'."""
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}-{high}"


def n50_table(members: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """n50 of recovery per (k, d, m, init_scale) next to k(d+1) and m(d+1)."""
    rows = []
    for (k, d, m, scale), group in members.groupby(["k", "d", "m", "init_scale"]):
        estimate = n50(group["n"].to_numpy(float), group["recovered"].to_numpy(float), level)
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


def n50(n: np.ndarray, recovered: np.ndarray, level: float = 0.95) -> dict:
    """Sample size at which recovery has probability 1/2, with a `level` interval.

    Logit of recovered (0/1) on log n; n50 = exp(-b0 / b1), interval by the delta method
    on log n50. Perfectly separated flags: the log-midpoint between the largest failing
    and smallest recovering n (interval: those two). All fail or all recover: NaN, noted.
    """
    if recovered.min() == recovered.max():
        side = "above" if recovered.max() == 0 else "below"
        return _estimate(np.nan, np.nan, np.nan, f"none: n50 is {side} the sampled n")
    fails, wins = n[recovered == 0], n[recovered == 1]
    if fails.max() < wins.min():
        low, high = fails.max(), wins.min()
        return _estimate(np.sqrt(low * high), low, high, "separated: log-midpoint of the gap")
    return _logit_n50(n, recovered, level)


def _logit_n50(n: np.ndarray, recovered: np.ndarray, level: float) -> dict:
    """n50 and its delta-method interval from a Logit of recovered on log n."""
    X = sm.add_constant(np.log(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quasi-separation warnings: checked below
        result = sm.Logit(recovered, X).fit(disp=0)
    b0, b1 = result.params
    if not result.mle_retvals.get("converged", False) or b1 <= 0:
        return interpolated_n50(n, recovered, f"logit did not converge (slope {b1:.3g}): ")
    gradient = np.array([-1.0 / b1, b0 / b1**2])  # of log n50 = -b0 / b1
    se = float(np.sqrt(gradient @ result.cov_params() @ gradient))
    z = norm.ppf(0.5 + level / 2)
    center = -b0 / b1
    return _estimate(np.exp(center), np.exp(center - z * se), np.exp(center + z * se), "logit")


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
    """fit.md's recovery sections: the rank check and n50 vs k(d+1)."""
    ranks, n50s = table(fits, "recovery_rank"), table(fits, "recovery_n50")
    level = fits.attrs.get("confidence", 0.95)
    return "\n".join([_rank_section(ranks), _n50_section(n50s, level)])


def _rank_section(ranks: pd.DataFrame) -> str:
    header = ["k", "d", "m", "k(d+1) (theory)", "rank, null embedding", "rank, split embedding"]
    header += ["m(d+1)", "rank at init (median)", "rank trained (median)", "members", "verdict"]
    rows = [
        [r.k, r.d, r.m, r.k_d1, r.rank_null, r.rank_split, r.m_d1]
        + [f"{r.rank_init_median:g}", f"{r.rank_trained_median:g}", r.members, r.verdict]
        for r in ranks.itertuples()
    ]
    intro = (
        "## Local recovery: tangent rank at the teacher's embedding\n\n"
        "Theory (Zhang et al. 2024): the Jacobian rank at the teacher embedded in a width-m "
        "student is exactly k(d+1), whatever m.\n\n"
    )
    return intro + (markdown_table(header, rows) if rows else "No members measured.\n")


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
        "(Logit on log n; `separated`: no MLE, log-midpoint of the gap instead; "
        "`interpolated`: the Logit did not converge, the per-n rate's crossing of 1/2; for "
        "both the interval is the bracketing pair of sampled n, not a confidence interval).\n\n"
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
    """Measured Jacobian ranks vs the theory's k(d+1) (identity line) and m(d+1)."""
    ranks = table(fits, "recovery_rank")
    figure, ax = plt.subplots(figsize=(4.8, 4))
    top = float(max(ranks.m_d1.max(), 1)) if len(ranks) else 1.0
    ax.plot([0, top], [0, top], color="grey", lw=1, label="rank = k(d+1)")
    for column, marker in (("rank_null", "o"), ("rank_split", "x")):
        ax.scatter(
            ranks.k_d1, _upper(ranks[column]), marker=marker, label=column.replace("_", ", ")
        )
    ax.scatter(ranks.k_d1, ranks.rank_trained_median, marker="s", facecolor="none",
               edgecolor="C3", label="trained (median)")  # fmt: skip
    ax.scatter(ranks.k_d1, ranks.m_d1, marker="_", s=200, color="k", label="m(d+1)")
    ax.set(xlabel="k(d+1)", ylabel="Jacobian rank")
    ax.legend(fontsize="small")
    return figure


def _upper(spans: pd.Series) -> np.ndarray:
    """The largest value of each 'r' or 'min-max' rank span."""
    return np.array([float(str(s).split("-")[-1]) for s in spans])
