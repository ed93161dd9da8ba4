"""Network vs its linearization (Ortiz-Jiménez, Moosavi-Dezfooli, Frossard 2021, 2106.06770).

A study sweeps ``model.linearized: [false, true]`` (the network and its first-order Taylor
model at initialisation, ``opscale.models.linearized``, trained the same way) and turns on
the ``ntk`` measure. This analysis puts side by side

- the scaling exponents of both (from the scaling fit's ``row`` table: the groups
  ``linearized=False`` and ``linearized=True`` of every task);
- the non-linear advantage per grid point: median test error linearized / network;
- the empirical NTK's kernel–target alignment at initialisation and at the end, on train
  and on test data, and the kernel distance between the two;

and checks the paper's statements: linearization ranks the tasks (the swept axes that are
neither model size nor data size, e.g. ``problem.name``) the same as the network; the
network is not always better; the alignment grows during training, more on train than on
test data (for the network; the linearized model's kernel is constant).

Tables (fit.nc ``linearization_<table>``): ``advantage``, ``ranking``, ``alignment``,
``theory``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from scipy import stats

from opscale import cube as cubes
from opscale.scaling.observations import DATA_AXIS, TERM_AXIS, grouping_axes
from opscale.tables import confidence_label, headline, interval_cell, markdown_table, table

NAME = "linearization"
LINEARIZED = "model.linearized"
MODELS = {False: "network", True: "linearized"}
NTK = [  # (variable, split, time)
    (f"ntk_alignment_{split}_{when}", split, when)
    for split in ("train", "test")
    for when in ("init", "end")
]
DISTANCES = ["ntk_distance_train", "ntk_distance_test"]
STILL = 1e-6  # kernel distance below which a kernel has not moved (float rounding)


# ----------------------------------------------------------------------------- models
def models(cube: xr.Dataset) -> pd.DataFrame:
    """One row per trained model (status ok): axes, ``task``, ``point``, ``linearized``.

    ``task`` labels the swept axes that are neither model nor data size (``all`` when
    there are none); ``point`` labels the grid point without the linearized axis.
    """
    axes = cubes.axes(cube)
    flag = next((name for name, path in axes.items() if path == LINEARIZED), None)
    if flag is None:
        raise ValueError(f"the {NAME} analysis needs a swept axis {LINEARIZED}: [false, true]")
    names = [v for v in ("test_rel_l2", "train_rel_l2", "n_params", *_ntk_names()) if v in cube]
    df = cube[[*names, "status"]].to_dataframe().reset_index()
    df = df[df["status"] == cubes.OK].copy()
    df["linearized"] = df[flag].astype(bool)
    tasks = [a for a in grouping_axes(cube) if a != flag]
    sizes = [a for a in axes if a != flag and a not in tasks]
    df["task"] = cubes.group_labels(df, tasks)
    df["point"] = cubes.group_labels(df, sizes)
    return df


def _ntk_names() -> list[str]:
    return [v for v, _, _ in NTK] + DISTANCES


# ----------------------------------------------------------------------------- tables
def analyse(cube: xr.Dataset, settings: dict) -> dict[str, pd.DataFrame]:
    """The analysis' tables (see the module docstring); `settings` is the ``fit:`` section."""
    df = models(cube)
    advantage = advantage_table(df)
    ranking = ranking_table(advantage)
    alignment = alignment_table(df)
    theory = theory_table(advantage, ranking, alignment, df)
    return {"advantage": advantage, "ranking": ranking, "alignment": alignment, "theory": theory}


def advantage_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and grid point: median test (and train) error of both models, their ratio.

    Columns ``network``, ``linearized`` (test), ``network_train``, ``linearized_train``,
    ``ratio`` = linearized / network (test; > 1: the network is better), ``n_params``.
    """
    wide = _medians(df, "test_rel_l2", "")
    if "train_rel_l2" in df:
        wide = wide.merge(_medians(df, "train_rel_l2", "_train"), on=["task", "point"])
    wide = wide.dropna(subset=list(MODELS.values()))
    wide["ratio"] = wide["linearized"] / wide["network"]
    counts = df.groupby(["task", "point"], sort=False)["n_params"].first()
    return wide.merge(counts.reset_index(), on=["task", "point"])


def _medians(df: pd.DataFrame, variable: str, suffix: str) -> pd.DataFrame:
    """Median of `variable` per task, point and model, one column per model (+ suffix)."""
    medians = df.groupby(["task", "point", "linearized"], sort=False)[variable].median()
    names = {flag: name + suffix for flag, name in MODELS.items()}
    return medians.unstack("linearized").rename(columns=names).reset_index()


def ranking_table(advantage: pd.DataFrame) -> pd.DataFrame:
    """Per grid point (and over all of them): the task order by error of each model.

    Order: tasks from lowest to highest median test error. ``spearman``: rank
    correlation of the two models' errors across the tasks.
    """
    rows = [_ranking_row(point, frame) for point, frame in advantage.groupby("point", sort=False)]
    overall = advantage.groupby("task", sort=False)[["network", "linearized"]].median()
    rows.append(_ranking_row("median over grid points", overall.reset_index()))
    return pd.DataFrame(rows)


def _ranking_row(point: str, frame: pd.DataFrame) -> dict:
    orders = {m: " < ".join(frame.sort_values(m)["task"]) for m in MODELS.values()}
    rho = stats.spearmanr(frame["network"], frame["linearized"])[0] if len(frame) > 2 else np.nan
    return {
        "point": point,
        "tasks": len(frame),
        "order_network": orders["network"],
        "order_linearized": orders["linearized"],
        "same_order": orders["network"] == orders["linearized"],
        "spearman": float(rho),
    }


def alignment_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and model: median NTK alignments, distances and growth shares over models."""
    if not set(_ntk_names()) <= set(df):
        return pd.DataFrame()
    rows = []
    for (task, linearized), frame in df.groupby(["task", "linearized"], sort=False):
        growth = {
            s: frame[f"ntk_alignment_{s}_end"] - frame[f"ntk_alignment_{s}_init"]
            for s in ("train", "test")
        }
        rows.append(
            {
                "task": task,
                "model": MODELS[bool(linearized)],
                "models": len(frame),
                **{v: float(frame[v].median()) for v in _ntk_names()},
                "grows_train": float((growth["train"] > 0).mean()),
                "grows_test": float((growth["test"] > 0).mean()),
                "train_over_test": float((growth["train"] > growth["test"]).mean()),
            }
        )
    return pd.DataFrame(rows)


def theory_table(advantage, ranking, alignment, df) -> pd.DataFrame:
    """The paper's statements, what was measured, and whether each held."""
    rows = [_ranks_same(ranking), _not_always_better(advantage)]
    if not alignment.empty:
        rows += _alignment_rows(df)
    return pd.DataFrame(rows)


def _statement(statement: str, measured: str, held) -> dict:
    verdict = "n/a" if held is None else ("held" if held else "did not hold")
    return {"statement": statement, "measured": measured, "verdict": verdict}


def _ranks_same(ranking: pd.DataFrame) -> dict:
    cells, overall = ranking.iloc[:-1], ranking.iloc[-1]
    statement = "linearization ranks tasks the same as the network"
    if overall["tasks"] < 2:
        return _statement(statement, "one task: nothing to rank", None)
    same = int(cells["same_order"].sum())
    measured = (
        f"order by median error: network {overall['order_network']}, linearized "
        f"{overall['order_linearized']}; same order at {same}/{len(cells)} grid points"
    )
    return _statement(statement, measured, bool(overall["same_order"]))


def _not_always_better(advantage: pd.DataFrame) -> dict:
    better = int((advantage["ratio"] > 1).sum())
    measured = (
        f"network better (ratio linearized/network > 1) at {better}/{len(advantage)} grid "
        f"points; median ratio {advantage['ratio'].median():.3g} "
        f"[{advantage['ratio'].min():.3g}, {advantage['ratio'].max():.3g}]"
    )
    return _statement("the network is not always better", measured, better < len(advantage))


def _alignment_rows(df: pd.DataFrame) -> list[dict]:
    """The NTK statements, each checked on every task's networks (the verdict counts tasks)."""
    net, lin = df[~df["linearized"]], df[df["linearized"]]
    rows = [
        _by_task(net, f"alignment grows during training ({split} data, network)", grows(split))
        for split in ("train", "test")
    ]
    rows.append(
        _by_task(net, "alignment grows more on train than on test data (network)", _train_more)
    )
    moved = lin[DISTANCES].max().max() if len(lin) else np.nan
    rows.append(
        _statement(
            "the linearized model's kernel stays constant (kernel distance 0)",
            f"largest distance {moved:.2g} (network median {net[DISTANCES[0]].median():.3g})",
            bool(moved < STILL) if len(lin) else None,
        )
    )
    return rows


def _growth(frame: pd.DataFrame, split: str) -> pd.Series:
    return frame[f"ntk_alignment_{split}_end"] - frame[f"ntk_alignment_{split}_init"]


def grows(split: str):
    """Check of one task's networks: median alignment at the end above that at init."""

    def check(frame: pd.DataFrame) -> tuple[str, bool]:
        init, end = (frame[f"ntk_alignment_{split}_{w}"].median() for w in ("init", "end"))
        count = int((_growth(frame, split) > 0).sum())
        return f"{init:.3g} -> {end:.3g} ({count}/{len(frame)} grow)", bool(end > init)

    return check


def _train_more(frame: pd.DataFrame) -> tuple[str, bool]:
    train, test = _growth(frame, "train"), _growth(frame, "test")
    count = int((train > test).sum())
    text = f"growth {train.median():.3g} vs {test.median():.3g} ({count}/{len(frame)})"
    return text, bool(train.median() > test.median())


def _by_task(net: pd.DataFrame, statement: str, check) -> dict:
    """`statement` checked on each task's networks: held, did not hold, or held for k/K."""
    parts = [(task, *check(frame)) for task, frame in net.groupby("task", sort=False)]
    held = sum(h for _, _, h in parts)
    text = "; ".join(f"{task}: {m}" if len(parts) > 1 else m for task, m, _ in parts)
    row = _statement(statement, text, held == len(parts))
    if 0 < held < len(parts):
        row["verdict"] = f"held for {held}/{len(parts)} tasks"
    return row


# ----------------------------------------------------------------------------- markdown
def markdown(fits: xr.Dataset) -> str:
    """The analysis' sections of fit.md, from fit.nc."""
    return "\n".join(
        s
        for s in (
            _theory_section(fits),
            _exponents_section(fits),
            _alignment_section(fits),
            _advantage_section(fits),
            _ranking_section(fits),
        )
        if s
    )


def _theory_section(fits) -> str:
    rows = table(fits, f"{NAME}_theory")
    body = [[r.statement, r.measured, r.verdict] for r in rows.itertuples()]
    title = "## Linearization: theory vs measured (Ortiz-Jiménez et al. 2021)\n\n"
    return title + markdown_table(["statement", "measured", "verdict"], body) if body else ""


def exponent_rows(fits) -> pd.DataFrame:
    """Per task and axis: the headline exponent of the network and of the linearized model."""
    rows = table(fits, "row")
    if rows.empty:
        return pd.DataFrame()
    head = headline(rows)
    parsed = head["group"].map(_split_group)
    head = head.assign(task=[t for t, _ in parsed], linearized=[f for _, f in parsed])
    cell = [f"{interval_cell(r)} ({r.law})" for r in head.itertuples()]
    wide = head.assign(cell=cell).pivot_table(
        index=["task", "term"], columns="linearized", values="cell", aggfunc="first", sort=False
    )
    return wide.rename(columns=MODELS).reset_index()


def _split_group(group: str) -> tuple[str, bool | None]:
    """("task label", linearized flag) of a scaling-fit group label."""
    values = cubes.parse_group_label(group)
    flag = values.pop("linearized", None)
    return cubes.group_label(values), None if flag is None else flag in ("True", "1")


def _exponents_section(fits) -> str:
    wide = exponent_rows(fits)
    if wide.empty:
        return ""
    body = [
        [r["task"], TERM_AXIS[r["term"]], r.get("network", "–"), r.get("linearized", "–")]
        for _, r in wide.iterrows()
    ]
    level = confidence_label(fits)
    header = ["task", "axis", *(f"{m}: exponent [{level} CI] (law)" for m in MODELS.values())]
    title = "## Linearization: scaling exponents, network vs linearized\n\n"
    return title + markdown_table(header, body)


def _alignment_section(fits) -> str:
    rows = table(fits, f"{NAME}_alignment")
    if rows.empty:
        return ""
    body = [
        [
            r.task,
            r.model,
            r.models,
            *(f"{getattr(r, v):.4g}" for v, _, _ in NTK),
            *(f"{getattr(r, v):.3g}" for v in DISTANCES),
            f"{r.grows_train:.0%} / {r.grows_test:.0%}",
        ]
        for r in rows.itertuples()
    ]
    header = [
        "task",
        "model",
        "models",
        "train, init",
        "train, end",
        "test, init",
        "test, end",
        "distance (train)",
        "distance (test)",
        "grows (train / test)",
    ]
    title = "## Linearization: NTK kernel–target alignment (median over models)\n\n"
    return title + markdown_table(header, body)


def _advantage_section(fits) -> str:
    rows = table(fits, f"{NAME}_advantage")
    body = [
        [
            r.task,
            r.point,
            f"{r.n_params:,.0f}",
            f"{r.network:.4g}",
            f"{r.linearized:.4g}",
            f"{r.ratio:.3g}",
            _train_cell(r),
        ]
        for r in rows.itertuples()
    ]
    header = ["task", "grid point", "N", "network", "linearized", "ratio lin/net", "train error"]
    title = (
        "## Linearization: median test error per grid point (non-linear advantage)\n\n"
        "ratio > 1: the network is better. Train error: network / linearized (median).\n\n"
    )
    return title + markdown_table(header, body) if body else ""


def _train_cell(r) -> str:
    if not hasattr(r, "network_train"):
        return "–"
    return f"{r.network_train:.3g} / {r.linearized_train:.3g}"


def _ranking_section(fits) -> str:
    rows = table(fits, f"{NAME}_ranking")
    if rows.empty or rows["tasks"].max() < 2:
        return ""
    body = [
        [
            r.point,
            r.order_network,
            r.order_linearized,
            r.same_order,
            "–" if np.isnan(r.spearman) else f"{r.spearman:.2f}",
        ]
        for r in rows.itertuples()
    ]
    header = ["grid point", "tasks by error: network", "linearized", "same", "Spearman ρ"]
    return "## Linearization: task ranking\n\n" + markdown_table(header, body)


# ----------------------------------------------------------------------------- figures
def linearization_errors(cube: xr.Dataset, fits: xr.Dataset) -> plt.Figure:
    """Median test error vs n per task: network (solid) and linearized (dashed), per N."""
    df = models(cube)
    df["model"] = df["linearized"].map(MODELS)
    df["N"] = df["n_params"].astype(int)
    n_axis = _n_axis(cube)
    grid = sns.relplot(
        data=df,
        x=n_axis,
        y="test_rel_l2",
        hue="N",
        style="model",
        col="task",
        kind="line",
        estimator="median",
        errorbar=("pi", 50),
        palette="viridis",
        markers=True,
        height=3.2,
        facet_kws={"sharey": False},
    )
    grid.set(xscale="log", yscale="log")
    sizes = sorted(df[n_axis].unique())
    for ax in grid.axes.flat:
        ax.set_xticks(sizes, [str(s) for s in sizes], minor=False)
        ax.set_xticks([], minor=True)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("training functions n", "test relative L2 error")
    return grid.figure


def _n_axis(cube: xr.Dataset) -> str:
    axes = cubes.axes(cube)
    return next((name for name, path in axes.items() if path == DATA_AXIS), "n_params")


def linearization_alignment(cube: xr.Dataset, fits: xr.Dataset) -> plt.Figure:
    """Kernel–target alignment at init and at the end, train and test, per model and task."""
    df = models(cube)
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "task": df["task"],
                    "model": df["linearized"].map(MODELS),
                    "data": split,
                    "when": when,
                    "alignment": df[var],
                }
            )
            for var, split, when in NTK
        ],
        ignore_index=True,
    )
    grid = sns.catplot(
        data=long,
        x="when",
        y="alignment",
        hue="data",
        col="task",
        row="model",
        kind="point",
        estimator="median",
        errorbar=("pi", 50),
        dodge=0.2,
        order=["init", "end"],
        height=2.8,
        sharey=False,
    )
    grid.set_titles("{row_name}: {col_name}", size=9)
    grid.set_axis_labels("", "kernel–target alignment")
    return grid.figure
