"""Analysis ``iteration``: residual rates of iterated operators vs a + (1 - a) L-hat.

Theory (Banach fixed point; Zappala et al. 2023, arXiv 2310.01618): if the block T is
L-Lipschitz in y on the region the iterates visit, the relaxed map y -> a y + (1-a) T(y)
is (a + (1-a) L)-Lipschitz there, so when a + (1-a) L < 1 the residuals
r_k = ||y_k - y_(k-1)|| decay at least geometrically with that rate:
r_(k+1) <= (a + (1-a) L) r_k. When a + (1-a) L >= 1 (equivalently L >= 1) it predicts
nothing: the residuals may still decay (the bound is only sufficient) or not.

Per grid point (relaxation a, K_train, shared), from the cube's ``iteration`` measure
(``opscale.measures.iteration``): the fitted rate is exp(slope) of an OLS regression of
log r_k on k over the rate window k >= K_train (with one intercept per seed, a common
slope; 95% CI from the OLS standard error), residuals at the float32 round-off floor
(below ``FLOOR`` times the member's largest residual) left out; the predicted rate is
each seed's a + (1 - a) L-hat (the table shows the median and the range over seeds); the
verdict compares the fitted CI with the largest seed's predicted rate.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import xarray as xr

from opscale import cube as cubes
from opscale.tables import confidence_label, markdown_table, table

# residuals below FLOOR times the member's largest are round-off (float32 eps ~ 1e-7)
FLOOR = 1e-5
PARAMETERS = {"relaxation": "a", "iterations": "K_train", "shared": "shared"}


def analyse(cube: xr.Dataset, settings: dict) -> dict[str, pd.DataFrame]:
    """Tables ``rates`` (fitted vs predicted residual rate) and ``errors`` (error vs K_eval)."""
    config, confidence = cubes.study_config(cube), settings["confidence"]
    return {"rates": rate_table(cube, config, confidence), "errors": error_table(cube, config)}


def member_frame(cube: xr.Dataset, config: dict, *names: str) -> pd.DataFrame:
    """Variables `names` of the ok members as a long table with columns a, K_train, shared.

    Unswept model parameters come from the study config.
    """
    ok = cube["status"] == cubes.OK
    frame = cube[list(names)].where(ok).to_dataframe().reset_index()
    for axis, column in PARAMETERS.items():
        frame[column] = frame[axis] if axis in frame else config["model"][axis]
    frame["shared"] = frame["shared"].astype(bool)
    return frame.dropna(subset=list(names))


def grid_keys(cube: xr.Dataset) -> list[str]:
    """Columns that identify a grid point: a, K_train, shared and any other sweep axis."""
    axes = cubes.axes(cube)
    return [*PARAMETERS.values(), *(a for a in axes if a not in PARAMETERS)]


def rate_table(cube: xr.Dataset, config: dict, confidence: float = 0.95) -> pd.DataFrame:
    """One row per grid point: fitted residual rate [CI] vs predicted a + (1 - a) L-hat."""
    residuals = member_frame(cube, config, "residual", "window_start")
    predicted = member_frame(cube, config, "predicted_rate", "lipschitz")
    keys = grid_keys(cube)
    rows = [
        {
            **dict(zip(keys, key, strict=True)),
            **fit_rate(group, confidence),
            **_prediction(predicted, keys, key),
        }
        for key, group in residuals.groupby(keys, sort=False)
    ]
    return pd.DataFrame([{**row, "verdict": verdict(row)} for row in rows])


def fit_rate(group: pd.DataFrame, confidence: float = 0.95) -> dict:
    """exp(slope) of log r_k on k in the window (seed intercepts), with its CI."""
    largest = group.groupby("seed")["residual"].max()
    kept = group[
        (group["iteration"] >= group["window_start"])
        & (group["residual"] > FLOOR * group["seed"].map(largest))
    ]
    if kept.empty or kept.groupby("seed").size().max() < 3:
        return {"rate": np.nan, "rate_low": np.nan, "rate_high": np.nan, "points": len(kept)}
    formula = "np.log(residual) ~ iteration" + (" + C(seed)" if kept.seed.nunique() > 1 else "")
    result = smf.ols(formula, kept).fit()
    low, high = result.conf_int(1 - confidence).loc["iteration"]
    slope = result.params["iteration"]
    return {
        "rate": np.exp(slope),
        "rate_low": np.exp(low),
        "rate_high": np.exp(high),
        "points": len(kept),
    }


def _prediction(predicted: pd.DataFrame, keys: list[str], key: tuple) -> dict:
    """Median and range over seeds of a + (1 - a) L-hat and L-hat at one grid point."""
    rows = predicted[(predicted[keys] == pd.Series(key, index=keys)).all(axis=1)]
    rate = rows["predicted_rate"]
    return {
        "predicted": rate.median(),
        "predicted_low": rate.min(),
        "predicted_high": rate.max(),
        "lipschitz": rows["lipschitz"].median(),
        "seeds": len(rows),
    }


def verdict(row: dict) -> str:
    """Fitted CI vs the largest predicted rate; no prediction when it is >= 1."""
    if np.isnan(row["rate"]):
        return "too few residuals above round-off to fit"
    decays = "residuals decay" if row["rate_high"] < 1 else "residuals do not decay"
    if row["predicted_high"] >= 1:
        return f"no prediction (a + (1-a) L-hat >= 1); {decays}"
    if row["rate_low"] > row["predicted_high"]:
        return "slower than the bound: theory violated"
    if row["rate_high"] < row["predicted_high"]:
        return "faster than the bound: theory holds"
    return "at the bound: theory holds, tight"


def error_table(cube: xr.Dataset, config: dict) -> pd.DataFrame:
    """Median (and range over seeds) of the test error at every K_eval, per grid point."""
    frame = member_frame(cube, config, "iteration_error")
    keys = [*grid_keys(cube), "k_eval"]
    stats = frame.groupby(keys, sort=False)["iteration_error"]
    return stats.agg(error="median", error_low="min", error_high="max").reset_index()


def markdown(fits: xr.Dataset) -> str:
    """The rate table and the error-vs-K_eval table of fit.md."""
    rates, errors = table(fits, "iteration_rates"), table(fits, "iteration_errors")
    return "\n".join([_rates_md(rates, confidence_label(fits)), _errors_md(errors)])


RATE_COLUMNS = ("rate", "rate_low", "rate_high", "points", "predicted", "predicted_low")
RATE_COLUMNS += ("predicted_high", "lipschitz", "seeds", "verdict")


def _key_cells(row: pd.Series, keys: list[str]) -> list[str]:
    """The grid point of a table row: a, K_train, shared (yes/no), other sweep axes."""
    shown = {"a": f"{row['a']:g}", "K_train": str(int(row["K_train"]))}
    shown["shared"] = "yes" if row["shared"] else "no"
    return [
        shown.get(key, f"{row[key]:g}" if _numeric(row[key]) else str(row[key])) for key in keys
    ]


def _numeric(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _rates_md(rates: pd.DataFrame, level: str) -> str:
    keys = [c for c in rates.columns if c not in RATE_COLUMNS]
    body = [
        [
            *_key_cells(r, keys),
            f"{r.rate:.3f} [{r.rate_low:.3f}, {r.rate_high:.3f}]",
            f"{r.predicted:.3f} [{r.predicted_low:.3f}, {r.predicted_high:.3f}]",
            f"{r.lipschitz:.3f}",
            r.verdict,
        ]
        for _, r in rates.iterrows()
    ]
    header = [*keys, f"fitted rate [{level} CI]", "a + (1-a) L-hat (median [range])"]
    header += ["L-hat (median)", "verdict"]
    return (
        "## Iterated operators: residual rate vs a + (1-a) L-hat\n\n"
        "Fitted: exp(slope) of log r_k on k for k >= K_train (OLS, one intercept per seed). "
        "Predicted: a + (1-a) L-hat per seed, L-hat the block's largest local Lipschitz "
        "constant in y over the window's test iterates. The theory predicts a rate only "
        "when a + (1-a) L-hat < 1.\n\n" + markdown_table(header, body)
    )


def _errors_md(errors: pd.DataFrame) -> str:
    ks = sorted(errors["k_eval"].unique())
    keys = [c for c in errors.columns if c not in ("k_eval", "error", "error_low", "error_high")]
    body = [
        _key_cells(group.iloc[0], keys)
        + [_error_cell(group, k_eval, int(group.iloc[0]["K_train"])) for k_eval in ks]
        for _, group in errors.groupby(keys, sort=False)
    ]
    header = [*keys, *[f"K_eval={k}" for k in ks]]
    return (
        "## Iterated operators: test error vs K_eval\n\n"
        "Median relative L2 test error over seeds after K_eval iterations "
        "(bold: K_eval = K_train, the trained model).\n\n" + markdown_table(header, body)
    )


def _error_cell(group: pd.DataFrame, k_eval: int, k_train: int) -> str:
    value = group.loc[group["k_eval"] == k_eval, "error"]
    if value.empty:
        return ""
    cell = f"{value.iloc[0]:.3g}"
    return f"**{cell}**" if k_eval == k_train else cell


def _curves(cube: xr.Dataset, variable: str, x: str) -> pd.DataFrame:
    """Median over seeds of `variable` along `x`, per grid point, with a line label."""
    frame = member_frame(cube, cubes.study_config(cube), variable)
    keys = grid_keys(cube)
    curves = frame.groupby([*keys, x], sort=False)[variable].median().reset_index()
    labels = [k for k in keys if k != "shared"]
    curves["line"] = (
        curves[labels].astype(str).agg(", ".join, axis=1).radd(", ".join(labels) + " = ")
    )
    return curves


def _plot_curves(curves: pd.DataFrame, variable: str, x: str, ylabel: str, logx: bool):
    """One panel per shared value, one line per other grid point; log y."""
    panels = sorted(curves["shared"].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, shared in zip(axes[0], panels, strict=True):
        for label, line in curves[curves["shared"] == shared].groupby("line", sort=False):
            ax.plot(line[x], line[variable], marker=".", label=label)
        ax.set(yscale="log", xlabel=x, ylabel=ylabel)
        ax.set_xscale("log" if logx else "linear")
        ax.set_title("shared block" if shared else "non-shared blocks (stacked)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def iteration_residuals(cube: xr.Dataset, fits: xr.Dataset):
    """Residuals r_k against k (median over seeds), per grid point."""
    curves = _curves(cube, "residual", "iteration")
    return _plot_curves(curves, "residual", "iteration", "residual r_k (RMS)", logx=False)


def iteration_error_vs_k(cube: xr.Dataset, fits: xr.Dataset):
    """Test error against K_eval (median over seeds), per grid point."""
    curves = _curves(cube, "iteration_error", "k_eval")
    return _plot_curves(curves, "iteration_error", "k_eval", "test relative L2", logx=True)
