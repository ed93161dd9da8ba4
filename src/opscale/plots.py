"""Figures of a study (seaborn), drawn from its cube and fit only (never retrains).

Each figure is a function ``(obs, fits) -> matplotlib Figure`` in the ``FIGURES``
registry (its names: ``opscale.figures``); ``obs`` is ``opscale.scaling.observations``
of the cube (trained, non-diverged models) and ``fits`` the fit dataset. A study's
analyses (``opscale.analyses``) add their own figures, drawn from ``(cube, fits)``. Lines
show the median over seeds with the interquartile range; dashed lines are the fitted law.
Other swept axes become panels.
"""

from __future__ import annotations

import functools
import logging
import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from opscale import (  # noqa: E402
    analyses,
    tables,  # noqa: E402
    theory,
)
from opscale import cube as cubes  # noqa: E402
from opscale.figures import SCALING_FIGURES  # noqa: E402
from opscale.scaling.observations import ERROR, grouping_axes, observations  # noqa: E402
from opscale.tables import confidence_label, table  # noqa: E402

LABELS = {"n": "training functions n", "N": "parameters N"}
RESPONSES = {  # fit.response -> axis label of the error
    "test_rel_l2": "test relative L2 error",
    "val_rel_l2": "validation relative L2 error",
    "train_rel_l2": "training relative L2 error",
}


log = logging.getLogger(__name__)


def draw_figures(cube_path: str, fit_path: str, outputs: dict[str, str]) -> dict[str, str]:
    """Draw the figures named in `outputs` (name -> PNG path); return those that failed.

    A figure that raises never stops the others: its PNG instead says which figure could
    not be drawn and why (the error's message, also in the PNG's ``Description`` text),
    and the traceback goes to the log. Returns figure name -> that message.
    """
    cube, fits = cubes.read(cube_path), cubes.read(fit_path)
    settings = tables.settings(fits)
    response = settings.get("response", ERROR)
    obs = functools.cache(lambda: _labelled(_plotted(cube, response), grouping_axes(cube)))
    sns.set_theme(style="whitegrid", context="paper")
    studies = analyses.figures(settings.get("analyses", []))
    failed = {}
    for name, path in outputs.items():
        try:
            if name in FIGURES:
                figure = FIGURES[name](obs(), fits)
            else:  # an analysis' figure draws from the cube itself
                figure = getattr(analyses.load(studies[name]), name)(cube, fits)
            metadata = {}
        except Exception as error:  # one figure's failure must not fail the others
            log.exception("figure %s could not be drawn", name)
            failed[name] = f"{type(error).__name__}: {error}"
            figure, metadata = _failure(name, failed[name]), {"Description": failed[name]}
        figure.savefig(path, dpi=130, bbox_inches="tight", metadata=metadata)
        plt.close(figure)
    return failed


def _plotted(cube: xr.Dataset, response: str) -> pd.DataFrame:
    """The models the scaling figures show; a clear error when there are none."""
    obs, excluded = observations(cube, response)
    if obs.empty:
        total = int(cube["status"].size)
        raise ValueError(
            f"no model to plot: of {total} models, {excluded['diverged']} diverged and "
            f"{excluded['missing']} are missing; the others have no finite positive "
            f"{response} (fit.md lists them)"
        )
    return obs


def _failure(name: str, message: str) -> plt.Figure:
    """A figure that says figure `name` could not be drawn, and why."""
    figure, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_axis_off()
    ax.text(0.5, 0.75, f"figure {name!r} could not be drawn", ha="center", weight="bold")
    ax.text(0.5, 0.45, textwrap.fill(message[:600], 90), ha="center", va="top", fontsize=8)
    ax.text(0.5, 0.02, "the traceback is in the figures rule's log", ha="center", fontsize=7)
    return figure


def _labelled(obs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Add readable columns: N, model-size label, and the panel label of other axes."""
    obs = obs.assign(N=obs["n_params"].astype(int))
    obs["model size"] = obs["N"].map(lambda v: f"N = {v:,}")
    obs["panel"] = obs[by].astype(str).agg(", ".join, axis=1) if by else ""
    obs["group"] = cubes.group_labels(obs, by)  # the fit's group of every model
    return obs


def _error_label(fits: xr.Dataset) -> str:
    """Axis label of the error the laws were fitted to (``fit.response``)."""
    response = tables.settings(fits).get("response", ERROR)
    return RESPONSES.get(response, response)


def error_vs_n_train(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Test error vs training-set size, one line per model size, with the robust law."""
    return _scaling_plot(obs, fits, x="n", hue="model size", law="data")


def error_vs_n_params(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Test error vs parameter count, one line per training-set size, with the robust law."""
    obs = obs.assign(**{"training set": obs["n"].map(lambda v: f"n = {v:,}")})
    return _scaling_plot(obs, fits, x="N", hue="training set", law="model")


TERM_OF = {"n": "log_n", "N": "log_N"}  # plotted axis -> the exponent table's term


def _scaling_plot(obs, fits, x: str, hue: str, law: str) -> plt.Figure:
    """The measured medians with the law the headline reports (robust; else `law`, OLS)."""
    law = "robust" if "fitted_robust" in fits else law
    groups = list(obs["group"].unique())
    label = _law_label(fits, law, x, groups)
    obs = obs.assign(title=obs["group"].map(lambda g: _panel_title(fits, g, x, law)))
    fitted = _fitted(obs, fits, law).assign(source=label)
    frame = pd.concat([obs.assign(source="measured"), fitted])
    order = obs.sort_values("N" if x == "n" else "n")[hue].unique()
    grid = sns.relplot(
        data=frame,
        x=x,
        y="err",
        hue=hue,
        hue_order=order,
        style="source",
        style_order=["measured", label] if len(fitted) else ["measured"],
        col="title",
        kind="line",
        estimator="median",
        errorbar=("pi", 50),
        markers=True,
        palette="viridis",
        height=3.6,
        aspect=1.2,
    )
    grid.set(xscale="log", yscale="log", xlabel=LABELS[x], ylabel=_error_label(fits))
    for ax in grid.axes.flat:
        _tick_at(ax.xaxis, sorted(obs[x].unique()))
    grid.set_titles("{col_name}")
    if not len(fitted):
        grid.figure.text(0.5, -0.02, NO_LAW, ha="center", va="top", fontsize=8, color="C3")
    return grid.figure


NO_LAW = "no law could be fitted (too few points or seeds): see the notes of fit.md"


def _exponent_row(fits: xr.Dataset, group: str, x: str, law: str):
    rows = table(fits, "row")
    if rows.empty:
        return None
    mine = rows[(rows.group == group) & (rows.law == law) & (rows.term == TERM_OF[x])]
    return next(mine.itertuples(), None)


def _exponent_text(fits: xr.Dataset, group: str, x: str, law: str) -> str:
    """``exponent 0.745 [0.684, 0.841]`` of the group's law along `x` (censoring said)."""
    row = _exponent_row(fits, group, x, law)
    if row is None:
        return "not fitted"
    text = f"{x}^-exponent, exponent {tables.interval_cell(row)}"
    return text + (" (not identified)" if row.identified == "no" else "")


def _law_label(fits: xr.Dataset, law: str, x: str, groups: list[str]) -> str:
    """The legend's name of the law's lines, with its exponent when there is one group."""
    name = "robust law E + A N^-α + B n^-β" if law == "robust" else f"{law} log-log OLS"
    if len(groups) == 1:
        return f"{name}\n{_exponent_text(fits, groups[0], x, law)}"
    return f"{name} (exponent in each title)"


def _panel_title(fits: xr.Dataset, group: str, x: str, law: str) -> str:
    """A panel's title: the study and the group (never ``all``), the law's exponent."""
    title = study_title(fits, group)
    row = _exponent_row(fits, group, x, law)
    if row is None:
        return title
    return f"{title}\n{x} exponent {tables.number(row.exponent)} ({law})"


def study_title(fits: xr.Dataset, group: str) -> str:
    """``tiny`` for the whole study, ``tiny: model=mlp`` for one of its groups."""
    study = cubes.study_config(fits).get("study", "study")
    return study if group == cubes.ALL_GROUP else f"{study}: {group}"


def _tick_at(axis, values) -> None:
    """Major ticks at the grid's values (plain numbers), no minor tick labels."""
    axis.set_major_locator(matplotlib.ticker.FixedLocator(values))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _fitted(obs: pd.DataFrame, fits: xr.Dataset, law: str) -> pd.DataFrame:
    """One row per grid point with the law's fitted error (empty if it was not fitted)."""
    if f"fitted_{law}" not in fits:
        return obs.iloc[:0]
    axes = list(cubes.axes(fits))
    fitted = fits[f"fitted_{law}"].to_dataframe(name="fit").reset_index()
    points = obs.drop_duplicates(axes).merge(fitted, on=axes).dropna(subset=["fit"])
    return points.assign(err=points["fit"], source=f"{law} law fit")


def error_heatmap(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Median test error over (N, n), one panel per value of the other axes."""
    panels = obs["panel"].unique()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        table = (
            obs[obs["panel"] == panel]
            .pivot_table(index="N", columns="n", values="err", aggfunc="median")
            .sort_index(ascending=False)
        )
        sns.heatmap(
            np.log10(table),
            ax=ax,
            annot=table.to_numpy(),
            fmt=".1e",
            cmap="magma_r",
            cbar_kws={"label": f"log10 median {_error_label(fits)}"},
        )
        ax.set(xlabel=LABELS["n"], ylabel=LABELS["N"], title=panel)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------- figures of the fit
def _groups(obs: pd.DataFrame, fits: xr.Dataset) -> list[str]:
    """Fit groups (labels of `scaling.observations.groups`) in the order of the observations."""
    return list(obs["group"].unique())


def _empty(figure: plt.Figure, ax, fits: xr.Dataset, what: str) -> None:
    """Say on the axes why there is nothing to draw (the fit's notes)."""
    notes = table(fits, "note")
    reasons = "\n".join(f"{r.step}: {r.reason}" for r in notes.itertuples())[:600]
    ax.text(0.5, 0.5, f"no {what}\n{reasons}", ha="center", va="center", wrap=True, fontsize=7)
    ax.set_axis_off()


def fit_curves(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Measured medians (IQR bars) with the robust law and its bootstrap band, vs n and N."""
    curves, groups = table(fits, "curve"), _groups(obs, fits)
    figure, axes = plt.subplots(len(groups), 2, figsize=(9.5, 3.6 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups, strict=True):
        panel = obs[obs["group"] == group]
        for ax, (x, other) in zip(row, [("n", "N"), ("N", "n")], strict=True):
            mine = curves[(curves.group == group) & (curves.x_axis == x)] if len(curves) else curves
            _curves_panel(ax, panel, mine, (x, other), group, fits)
    figure.tight_layout()
    return figure


def _curves_panel(ax, panel: pd.DataFrame, curves: pd.DataFrame, axes, group, fits):
    x, other = axes
    levels = sorted(panel[other].unique())
    colours = dict(zip(levels, sns.color_palette("viridis", len(levels)), strict=True))
    stats = panel.groupby([other, x])["err"].describe(percentiles=[0.25, 0.5, 0.75])
    for (level, xv), r in stats.iterrows():
        ax.errorbar(
            xv,
            r["50%"],
            yerr=[[r["50%"] - r["25%"]], [r["75%"] - r["50%"]]],
            fmt="o",
            ms=4,
            color=colours[level],
        )
    for level in levels:
        label = f"{other} = {level:,.0f}"
        curve = curves[curves.other == label] if len(curves) else curves
        if len(curve):
            ax.plot(curve.x, curve.fitted, color=colours[level], label=label)
            ax.fill_between(curve.x, curve.low, curve.high, color=colours[level], alpha=0.2)
    title = study_title(fits, group)
    ax.set(xscale="log", yscale="log", xlabel=LABELS[x], ylabel=_error_label(fits), title=title)
    _tick_at(ax.xaxis, sorted(panel[x].unique()))
    if not len(curves):
        ax.text(0.5, 0.02, NO_LAW, transform=ax.transAxes, ha="center", fontsize=6, color="C3")
    if len(curves):
        band = f"robust law, {confidence_label(fits)} band"
        if "identified" in curves and (curves["identified"] == "no").any():
            band += "\n(law not identified: band reaches a bound)"
        ax.legend(fontsize=6, title=band, title_fontsize=6)


def fit_residuals(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Residuals (log measured - log fitted) against the fitted error, robust and OLS."""
    laws = [law for law in ("robust", "joint") if f"fitted_{law}" in fits]
    figure, axes = plt.subplots(
        1, max(len(laws), 1), figsize=(4.8 * max(len(laws), 1), 3.6), squeeze=False
    )
    if not laws:
        _empty(figure, axes[0, 0], fits, "fitted law")
    axis_names = list(cubes.axes(fits))
    for ax, law in zip(axes[0], laws, strict=False):
        fitted = fits[f"fitted_{law}"].to_dataframe(name="fitted").reset_index()
        frame = obs.merge(fitted, on=axis_names).dropna(subset=["fitted"])
        frame = frame.assign(residual=np.log(frame["err"] / frame["fitted"]))
        sns.scatterplot(
            data=frame,
            x="fitted",
            y="residual",
            hue="N",
            palette="viridis",
            style="panel" if frame["panel"].nunique() > 1 else None,
            ax=ax,
            s=18,
        )
        ax.axhline(0, color="k", lw=0.8)
        ax.set(
            xscale="log",
            xlabel="fitted error",
            ylabel="log(measured / fitted)",
            title={"robust": "robust law (Huber)", "joint": "joint log-log OLS"}[law],
        )
    figure.tight_layout()
    return figure


def exponent_vs_dimension(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Measured exponents (robust law, with CI) vs intrinsic dimension, with the theory."""
    rows = table(fits, "row")
    figure, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), squeeze=False)
    if rows.empty:
        _empty(figure, axes[0, 0], fits, "exponent")
        axes[0, 1].set_axis_off()
        return figure
    rows = rows[rows.law == (rows.law.iloc[0] if "robust" not in set(rows.law) else "robust")]
    for ax, (term, name, rate) in zip(axes[0], THEORY_CURVES, strict=True):
        _dimension_panel(ax, rows[rows.term == term], (name, rate), confidence_label(fits))
    figure.tight_layout()
    return figure


# the registry's power-law bounds on finite-dimensional inputs (the curve's theories)
POWER_LAW_THEORIES = ("deeponet_finite_inputs", "deep_relu")
NO_BOUND = "no power-law bound applies\n(inputs of infinite or unknown dimension b)"


def _dimension_panel(ax, rows: pd.DataFrame, theory_curve, level: str) -> None:
    name, rate = theory_curve
    finite = rows[np.isfinite(rows.intrinsic_dim)]
    d2 = float(rows.output_dim.iloc[0]) if len(rows) else 1.0
    b = np.arange(1, max(8, int(finite.intrinsic_dim.max()) + 2 if len(finite) else 8) + 1)
    applies = finite[finite.get("theory", pd.Series("", finite.index)).isin(POWER_LAW_THEORIES)]
    if len(applies):  # the curve only where the study's theory is a power-law bound
        ax.plot(b, rate(b, d2), "k--", label="theory (finite inputs, upper bound)")
        ax.plot(applies.intrinsic_dim, applies.theory_exponent, "kx", label="this study's bound")
    else:
        ax.text(0.5, 0.9, NO_BOUND, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    identified = finite.get("identified", pd.Series("yes", finite.index)) != "no"
    for mine, face, label in [
        (finite[identified], None, f"measured [{level} CI]"),
        (finite[~identified], "none", "not identified (interval reaches a bound)"),
    ]:
        if len(mine):
            ax.errorbar(
                mine.intrinsic_dim,
                mine.exponent,
                yerr=[mine.exponent - mine.ci_low, mine.ci_high - mine.exponent],
                fmt="o",
                mfc=face,
                capsize=3,
                label=label,
            )
    for r in rows[~np.isfinite(rows.intrinsic_dim)].itertuples():
        ax.axhspan(r.ci_low, r.ci_high, color="C1", alpha=0.2)
        ax.axhline(r.exponent, color="C1", label=f"measured, b = ∞ ({r.group})")
    ax.set(
        xlabel="intrinsic input dimension b",
        ylabel=f"exponent of {name}",
        title=f"err ~ {name}^-exponent",
    )
    ax.legend(fontsize=7)


def _finite_inputs_rate(axis: str):
    """The registry's finite-input rate of `axis` as a function of (b array, d2)."""

    def rate(b, d2):
        params = [{"b": int(v), "d2": d2, "model": "deeponet"} for v in b]
        found = [theory.deeponet_finite_inputs(p) for p in params]
        return [next(p.exponent for p in preds if p.axis == axis) for preds in found]

    return rate


THEORY_CURVES = (  # term, axis symbol, unsquared-error rate as a function of (b, d2)
    ("log_N", "N", _finite_inputs_rate("model")),
    ("log_n", "n", _finite_inputs_rate("data")),
)


def compute_frontier(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Error vs training FLOPs of every grid point, with the predicted compute-optimal law."""
    allocation = table(fits, "allocation")
    groups = _groups(obs, fits)
    figure, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.8), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        panel = obs[obs["group"] == group]
        if "train_flops" not in panel or allocation.empty:
            _empty(figure, ax, fits, "compute-optimal allocation")
            continue
        _frontier_panel(ax, panel, allocation[allocation.group == group], group)
        ax.set_ylabel(_error_label(fits))
    figure.tight_layout()
    return figure


def _frontier_panel(ax, panel, allocation, group) -> None:
    points = panel.groupby(["N", "n"], as_index=False).agg(
        flops=("train_flops", "median"), err=("err", "median")
    )
    sns.scatterplot(data=points, x="flops", y="err", hue="N", size="n", palette="viridis", ax=ax)
    ax.plot(allocation.budget, allocation.err_opt, "k-", label="compute-optimal (robust law)")
    ax.fill_between(
        allocation.budget, allocation.err_low, allocation.err_high, color="k", alpha=0.15
    )
    ax.set(xscale="log", yscale="log", xlabel="training FLOPs", title=group)
    ax.legend(fontsize=6)


# name -> drawing function, for every scaling figure of the registry (a name without a
# function fails here, at import, not silently at draw time)
FIGURES = {name: globals()[name] for name in SCALING_FIGURES}
