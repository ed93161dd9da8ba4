"""Figures of a study (seaborn), drawn from its cube and fit only (never retrains).

Each figure is a function ``(obs, fits) -> matplotlib Figure`` in the ``FIGURES``
registry; ``obs`` is ``opscale.fit.observations`` of the cube (trained, non-diverged
models) and ``fits`` the fit dataset. Lines show the median over seeds with the
interquartile range; dashed lines are the fitted law. Other swept axes become panels.
"""

from __future__ import annotations

import json

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from opscale import cube as cubes  # noqa: E402
from opscale.fit import ERROR, grouping_axes, observations  # noqa: E402

LABELS = {"n": "training functions n", "N": "parameters N", ERROR: "test relative L2 error"}


def draw_figures(cube_path: str, fit_path: str, outputs: dict[str, str]) -> None:
    """Draw the figures named in `outputs` (name -> PNG path)."""
    cube, fits = cubes.read(cube_path), cubes.read(fit_path)
    obs, _ = observations(cube)
    obs = _labelled(obs, grouping_axes(cube))
    sns.set_theme(style="whitegrid", context="paper")
    for name, path in outputs.items():
        figure = FIGURES[name](obs, fits)
        figure.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(figure)


def _labelled(obs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Add readable columns: N, model-size label, and the panel label of other axes."""
    obs = obs.assign(N=obs["n_params"].astype(int))
    obs["model size"] = obs["N"].map(lambda v: f"N = {v:,}")
    obs["panel"] = obs[by].astype(str).agg(", ".join, axis=1) if by else ""
    return obs


def error_vs_n_train(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Test error vs training-set size, one line per model size, with the data law."""
    return _scaling_plot(obs, fits, x="n", hue="model size", law="data")


def error_vs_n_params(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Test error vs parameter count, one line per training-set size, with the model law."""
    obs = obs.assign(**{"training set": obs["n"].map(lambda v: f"n = {v:,}")})
    return _scaling_plot(obs, fits, x="N", hue="training set", law="model")


def _scaling_plot(obs, fits, x: str, hue: str, law: str) -> plt.Figure:
    frame = pd.concat([obs.assign(source="measured"), _fitted(obs, fits, law)])
    order = obs.sort_values("N" if x == "n" else "n")[hue].unique()
    grid = sns.relplot(
        data=frame,
        x=x,
        y=ERROR,
        hue=hue,
        hue_order=order,
        style="source",
        style_order=["measured", f"{law} law fit"],
        col="panel",
        kind="line",
        estimator="median",
        errorbar=("pi", 50),
        markers=True,
        palette="viridis",
        height=3.6,
        aspect=1.2,
    )
    grid.set(xscale="log", yscale="log", xlabel=LABELS[x], ylabel=LABELS[ERROR])
    for ax in grid.axes.flat:
        _tick_at(ax.xaxis, sorted(obs[x].unique()))
    grid.set_titles("{col_name}")
    return grid.figure


def _tick_at(axis, values) -> None:
    """Major ticks at the grid's values (plain numbers), no minor tick labels."""
    axis.set_major_locator(matplotlib.ticker.FixedLocator(values))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _fitted(obs: pd.DataFrame, fits: xr.Dataset, law: str) -> pd.DataFrame:
    """One row per grid point with the law's fitted error (empty if it was not fitted)."""
    if f"fitted_{law}" not in fits:
        return obs.iloc[:0]
    axes = list(json.loads(fits.attrs["axes"]))
    fitted = fits[f"fitted_{law}"].to_dataframe(name="fit").reset_index()
    points = obs.drop_duplicates(axes).merge(fitted, on=axes)
    return points.assign(**{ERROR: points["fit"], "source": f"{law} law fit"})


def error_heatmap(obs: pd.DataFrame, fits: xr.Dataset) -> plt.Figure:
    """Median test error over (N, n), one panel per value of the other axes."""
    panels = obs["panel"].unique()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        table = (
            obs[obs["panel"] == panel]
            .pivot_table(index="N", columns="n", values=ERROR, aggfunc="median")
            .sort_index(ascending=False)
        )
        sns.heatmap(
            np.log10(table),
            ax=ax,
            annot=table.to_numpy(),
            fmt=".1e",
            cmap="magma_r",
            cbar_kws={"label": "log10 median test rel. L2 error"},
        )
        ax.set(xlabel=LABELS["n"], ylabel=LABELS["N"], title=panel)
    figure.tight_layout()
    return figure


FIGURES = {
    "error_vs_n_train": error_vs_n_train,
    "error_vs_n_params": error_vs_n_params,
    "error_heatmap": error_heatmap,
}
