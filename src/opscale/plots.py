"""Figures of a study (seaborn), drawn from its cube and fit only (never retrains).

Each figure is a function ``(obs, fits) -> matplotlib Figure`` in the ``FIGURES``
registry (its names: ``opscale.figures``); ``obs`` is ``opscale.scaling.observations``
of the cube (trained, non-diverged models) and ``fits`` the fit dataset. A study's
analyses (``opscale.analyses``) add their own figures, drawn from ``(cube, fits)``. Lines
show the median over seeds with the interquartile range; dashed lines are the fitted law.
Other swept axes become panels.

Every figure is saved by :func:`save_figure` in each format its paths name (png, pdf,
svg; ``figures.format``), and the two main scaling figures are also drawn interactive
(:func:`scaling_interactive`: Bokeh, one self-contained HTML page with the core
BokehJS inlined, small enough for the report's frame).
"""

from __future__ import annotations

import functools
import html
import logging
import textwrap
from pathlib import Path

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
from opscale.figures import INTERACTIVE, SCALING_FIGURES  # noqa: E402
from opscale.scaling.observations import ERROR, grouping_axes, observations  # noqa: E402
from opscale.tables import confidence_label, table  # noqa: E402

LABELS = {"n": "training functions n", "N": "parameters N"}
RESPONSES = {  # fit.response -> axis label of the error
    "test_rel_l2": "test relative L2 error",
    "val_rel_l2": "validation relative L2 error",
    "train_rel_l2": "training relative L2 error",
}


log = logging.getLogger(__name__)


DPI = 130  # figures.dpi's default: sharp on a screen, a small report


def draw_figures(
    cube_path: str, fit_path: str, outputs: dict[str, str | list[str]], dpi: int = DPI
) -> dict[str, str]:
    """Draw the figures named in `outputs`; return those that failed.

    `outputs` maps a figure name to its path or paths, one per format (the suffix names
    it: ``.png``, ``.pdf``, ``.svg``; ``.html`` for the interactive page ``INTERACTIVE``).
    A figure that raises never stops the others: its files instead say which figure could
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
    for name, paths in outputs.items():
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        try:
            if name in PAGES:
                drawn = PAGES[name](obs(), fits)
            elif name in FIGURES:
                drawn = FIGURES[name](obs(), fits)
            else:  # an analysis' figure draws from the cube itself
                drawn = getattr(analyses.load(studies[name]), name)(cube, fits)
            description = ""
        except Exception as error:  # one figure's failure must not fail the others
            log.exception("figure %s could not be drawn", name)
            failed[name] = description = f"{type(error).__name__}: {error}"
            maker = _failure_page if name in PAGES else _failure
            drawn = maker(name, description)
        _write(drawn, paths, dpi, description)
    return failed


def _write(drawn: plt.Figure | str, paths: list[str], dpi: int, description: str) -> None:
    """A figure saved in the format of each path; a page (HTML text) written as it is."""
    if isinstance(drawn, str):
        for path in paths:
            Path(path).write_text(drawn, encoding="utf-8")
    else:
        save_figure(drawn, paths, dpi, description)


# the Description of a failed figure, in each format's own metadata key
DESCRIPTION_KEYS = {"png": "Description", "pdf": "Subject", "svg": "Description"}
REPRODUCIBLE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}  # no time stamp


def save_figure(figure: plt.Figure, paths, dpi: int = DPI, description: str = "") -> None:
    """Save `figure` to every path of `paths` (its suffix: png, pdf or svg), then close it.

    The one place figures are written (scaling and analyses' alike), so every figure
    honours ``figures.format`` and ``figures.dpi``. `description` (a failed figure's
    reason) goes into each file's metadata. PDF and SVG carry no time stamp, and the
    SVG's element ids a fixed salt, so redrawing the same figure writes the same bytes.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    with matplotlib.rc_context({"svg.hashsalt": "opscale"}):
        for path in paths:
            fmt = Path(path).suffix.lstrip(".").lower()
            metadata = dict(REPRODUCIBLE.get(fmt, {}))
            if description:
                metadata[DESCRIPTION_KEYS[fmt]] = description
            figure.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata, format=fmt)
    plt.close(figure)


def outputs_by_figure(paths) -> dict[str, list[str]]:
    """The figures rule's output paths grouped by figure name (the file's stem)."""
    grouped: dict[str, list[str]] = {}
    for path in map(str, paths):
        grouped.setdefault(Path(path).stem, []).append(path)
    return grouped


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


def _failure_page(name: str, message: str) -> str:
    """An HTML page that says page `name` could not be drawn, and why."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(name)}</title></head><body>"
        f"<p><b>figure {html.escape(repr(name))} could not be drawn</b></p>"
        f"<p>{html.escape(message)}</p><p>the traceback is in the figures rule's log</p>"
        "</body></html>\n"
    )


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
    else:  # a group whose law was not fitted while others' were: said in its panel
        drawn = set(fitted["title"])
        for title, ax in grid.axes_dict.items():
            if title not in drawn:
                ax.text(0.5, 0.02, NO_LAW, transform=ax.transAxes, **NOTE)
    return grid.figure


NO_LAW = "no law could be fitted (too few points or seeds): see the notes of fit.md"
NOTE = {"ha": "center", "va": "bottom", "fontsize": 6, "color": "C3", "wrap": True}


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
        return f"{title}\n{law} law not fitted"
    censored = ", not identified" if row.identified == "no" else ""
    return f"{title}\n{x} exponent {tables.number(row.exponent)} ({law}{censored})"


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


# ------------------------------------------------------------ the interactive page
# the two main scaling figures: plotted axis, the axis of one line each, the OLS law
INTERACTIVE_AXES = (("n", "N", "data"), ("N", "n", "model"))
# the colours of the lines, one palette per axis: a colour says N or n in either figure
PALETTES = {"N": "viridis", "n": "plasma"}
# one filled marker per fit group (Bokeh's marker names)
MARKERS = ("circle", "square", "diamond", "triangle", "inverted_triangle", "hex", "star")
# no help tool (it links to docs.bokeh.org) and no logo (bokeh.org): no link out of the page
TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
NOTE_COLOUR = "firebrick"  # a group whose law was not fitted, said under its figure
# Bokeh's own page template with the headlines above the figures
PAGE_TEMPLATE = """
{% block postamble %}<style>body { font-family: system-ui, sans-serif; margin: 1em; }</style>
{% endblock %}
{% block contents %}{{ header | safe }}
{{ super() }}{% endblock %}
"""


def scaling_interactive(obs: pd.DataFrame, fits: xr.Dataset) -> str:
    """Error vs n and vs N as one self-contained HTML page (BokehJS inlined once).

    The same data as ``error_vs_n_train`` and ``error_vs_n_params``: medians over seeds
    with interquartile whiskers, one line per model size (or training-set size), one
    marker per fit group and one dashed line of its law, the law the headline reports
    (the robust law; else the OLS slope) with its exponent and interval in the legend.
    Hover reads every point; a legend entry hides its line. The page needs no network
    (the report is opened offline): only the core BokehJS (1.3 MB) is inlined, so the
    page fits the report's frame (:func:`fits_report_frame`).
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.resources import INLINE

    figures = [_interactive_figure(obs, fits, *axes) for axes in INTERACTIVE_AXES]
    study = cubes.study_config(fits).get("study", "study")
    headlines = "".join(f"<li>{html.escape(line)}</li>" for line in _headlines(fits, obs))
    header = f"<h2>opscale study {html.escape(study)}: error vs n and vs N</h2><ul>{headlines}</ul>"
    page = file_html(
        column(*figures, sizing_mode="stretch_width"),
        resources=INLINE,  # only the bundles the figures use: the core BokehJS
        title=f"opscale {study}: scaling, interactive",
        template=PAGE_TEMPLATE,
        template_variables={"header": header},
    )
    if not fits_report_frame(page):
        log.warning(
            "the interactive page (%.2f MB) exceeds the %.0f MiB that Chromium-based browsers "
            "show in the report's frame (a data URL): there it stays blank; open the file "
            "itself (Firefox shows it in the report)",
            len(page.encode()) / 1e6,
            FRAME_LIMIT / 2**20,
        )
    return page


# The report shows an HTML item in a frame whose source is the file as a base64 data URL;
# Chromium-based browsers load no URL longer than 2 MiB (the frame stays blank).
FRAME_LIMIT = 2 * 2**20


def fits_report_frame(page: str) -> bool:
    """Whether the report's frame (a base64 data URL of the page) can show `page`."""
    header = len("data:text/html;charset=utf8;filename=scaling_interactive.html;base64,")
    return header + 4 * -(-len(page.encode()) // 3) <= FRAME_LIMIT


def _headlines(fits: xr.Dataset, obs: pd.DataFrame) -> list[str]:
    """The takeaway law of every group, as fit.md's headline says it."""
    from opscale.markdown import takeaway

    parameters, rows = table(fits, "parameter"), table(fits, "row")
    level = confidence_label(fits)
    return [
        f"{study_title(fits, group)}: "
        + (takeaway(parameters, rows, group, level) if len(rows) else NO_LAW)
        for group in _groups(obs, fits)
    ]


def _interactive_figure(obs: pd.DataFrame, fits: xr.Dataset, x: str, other: str, ols: str):
    """Error vs `x`, one line per value of `other`, each group's law dashed (a Bokeh figure)."""
    from bokeh.models import Title
    from bokeh.plotting import figure

    law = "robust" if "fitted_robust" in fits else ols
    plot = figure(
        title=f"error vs {LABELS[x]}, one line per {other}",
        x_axis_type="log",
        y_axis_type="log",
        x_axis_label=LABELS[x],
        y_axis_label=_error_label(fits),
        height=520,
        sizing_mode="stretch_width",
        tools=TOOLS,
    )
    plot.toolbar.logo = None
    levels = sorted(obs[other].unique())
    palette = sns.color_palette(PALETTES[other], len(levels)).as_hex()
    colours = dict(zip(levels, palette, strict=True))
    groups = _groups(obs, fits)
    measured, laws = [], []
    for marker, group in zip(MARKERS * 8, groups, strict=False):
        panel, title = obs[obs["group"] == group], study_title(fits, group)
        prefix = f"{title}: " if len(groups) > 1 else ""  # the legend names the group
        measured += _measured_lines(plot, panel, x, other, colours, marker, prefix)
        line = _law_line(plot, panel, fits, x, other, law, group, prefix)
        if line is None:
            note = Title(text=f"{title}: {NO_LAW}", text_color=NOTE_COLOUR, text_font_size="12px")
            plot.add_layout(note, "below")
        else:
            laws.append(line)
    _readable(plot, sorted(obs[x].unique()), x, measured, laws, law)
    return plot


MEASURED_TIPS = [("median err", "@median"), ("IQR over seeds", "@iqr")]


def _readable(plot, xs, x: str, measured: list, laws: list, law: str) -> None:
    """Hover on every point, ticks labelled in full, the legend beside the plot."""
    from bokeh.models import HoverTool

    tips = [("line", "@line"), (x, "@x_text")]
    plot.add_tools(HoverTool(renderers=measured, tooltips=[*tips, *MEASURED_TIPS]))
    if laws:
        plot.add_tools(HoverTool(renderers=laws, tooltips=[*tips, (f"{law} law", "@fitted")]))
    _label_ticks(plot.xaxis, {float(v): f"{int(v):,}" for v in xs})
    ys = [r.data_source.data["y"] for r in measured + laws]
    _label_ticks(plot.yaxis, _log_ticks(np.concatenate(ys)))
    plot.add_layout(plot.legend[0], "right")  # beside the plot, not over its lines
    plot.legend.click_policy = "hide"  # a legend entry hides its line
    plot.legend.label_text_font_size = "11px"


def _label_ticks(axis, labels: dict[float, str]) -> None:
    """Ticks at the keys of `labels`, each labelled by its value (none: Bokeh's own)."""
    from bokeh.models import FixedTicker

    if labels:
        axis.ticker = FixedTicker(ticks=list(labels))
        axis.major_label_overrides = labels


def _log_ticks(values) -> dict[float, str]:
    """Ticks at 1, 2, 5 x 10^k over `values`, each labelled in full (``0.05``; Bokeh's log
    axis labels ``10^-1.3``), as tick -> label."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return {}
    low, high = np.log10(values.min()), np.log10(values.max())
    ticks = [
        m * 10.0**k
        for k in range(int(np.floor(low)), int(np.ceil(high)) + 1)
        for m in (1, 2, 5)
        if low - 0.1 <= np.log10(m * 10.0**k) <= high + 0.1
    ]
    return {tick: f"{tick:g}" for tick in ticks}


def _measured_lines(plot, panel: pd.DataFrame, x, other, colours, marker, prefix) -> list:
    """One line per value of `other`: medians over seeds, IQR whiskers; its markers."""
    from bokeh.models import ColumnDataSource

    quartiles = panel.groupby([other, x])["err"].quantile([0.25, 0.5, 0.75]).unstack()
    markers = []
    for level, rows in quartiles.groupby(level=0):
        xs = rows.index.get_level_values(x).to_numpy(dtype=float)
        low, median, high = (rows[q].to_numpy() for q in (0.25, 0.5, 0.75))
        label = f"{prefix}{other} = {level:,}"
        source = ColumnDataSource(
            {
                "x": xs,
                "y": median,
                "low": low,
                "high": high,
                "line": [label] * len(xs),
                "x_text": [f"{v:,.0f}" for v in xs],
                "median": [f"{v:.3g}" for v in median],
                "iqr": [f"{a:.3g} to {b:.3g}" for a, b in zip(low, high, strict=True)],
            }
        )
        style = {"source": source, "color": colours[level], "legend_label": label}
        plot.line("x", "y", line_width=2, **style)
        plot.segment("x", "low", "x", "high", line_width=1.5, **style)
        markers.append(plot.scatter("x", "y", marker=marker, size=8, **style))
    return markers


def _law_line(plot, panel: pd.DataFrame, fits, x, other, law: str, group: str, prefix: str):
    """The group's fitted law at every grid point, one dashed line (NaN between lines)."""
    from bokeh.models import ColumnDataSource

    fitted = _fitted(panel, fits, law)
    if not len(fitted):
        return None
    xs, ys, lines = [], [], []
    for level, rows in fitted.sort_values([other, x]).groupby(other, sort=True):
        xs += [*rows[x].astype(float), np.nan]
        ys += [*rows["err"].astype(float), np.nan]
        lines += [f"{prefix}{other} = {level:,}"] * len(rows) + [""]
    source = ColumnDataSource(
        {
            "x": np.array(xs),
            "y": np.array(ys),
            "line": lines,
            "x_text": [f"{v:,.0f}" for v in xs],
            "fitted": [f"{v:.3g}" for v in ys],
        }
    )
    name = "robust law E + A N^-α + B n^-β" if law == "robust" else f"{law} log-log OLS"
    label = f"{prefix}{name}: {_interactive_exponent(fits, group, x, law)}"
    return plot.line(
        "x",
        "y",
        source=source,
        color="black",
        line_dash="dashed",
        line_width=1.5,
        legend_label=label,
    )


def _interactive_exponent(fits: xr.Dataset, group: str, x: str, law: str) -> str:
    """``n exponent 0.716 [0.633, 0.820]`` of the group's law (censoring said)."""
    row = _exponent_row(fits, group, x, law)
    if row is None:
        return f"{x} exponent not fitted"
    censored = " (not identified)" if row.identified == "no" else ""
    return f"{x} exponent {tables.interval_cell(row)}{censored}"


# name -> drawing function, for every scaling figure of the registry (a name without a
# function fails here, at import, not silently at draw time)
FIGURES = {name: globals()[name] for name in SCALING_FIGURES}
# name -> page function (figures as one HTML page): the interactive scaling figures
PAGES = {INTERACTIVE: scaling_interactive}
