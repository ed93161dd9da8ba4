"""Network vs its linearization (Ortiz-Jiménez, Moosavi-Dezfooli, Frossard 2021, 2106.06770).

A study sweeps ``model.linearized: [false, true]`` (the network and its first-order Taylor
model at initialisation, ``opscale.models.linearized``, trained the same way) and turns on
the ``ntk`` measure. This analysis puts side by side

- the scaling exponents of both (from the scaling fit's ``row`` table: the groups
  ``linearized=False`` and ``linearized=True`` of every task);
- the non-linear advantage per grid point: median test error linearized / network, with
  whether each model reached its training floor there (below);
- the empirical NTK's kernel–target alignment at initialisation and at the end, on train
  and on test data, in the three forms of ``opscale.measures.ntk`` (unnormalised
  yᵀΘy/‖y‖², the authors' code's form; normalised by ‖Θ‖_F; centred), and the kernel
  distance between the two kernels;

and checks the paper's statements: linearization ranks the tasks (the swept axes that are
neither model size nor data size, e.g. ``problem.name``) the same as the network; the
network is not always better; the alignment grows during training, more on train than on
test data (for the network; the linearized model's kernel is constant).

**Which alignment decides.** The alignment statements' verdicts use the unnormalised form,
the one the paper's code computes (``PAPER``); the normalised and centred values are shown
next to it in the same cell, so a verdict that hangs on the form is visible.

**Training floor.** Comparing the errors of two models says something about
generalisation only if neither is limited by its optimisation. A model *reached its
floor* when its validation error, which picks the reported state, had stopped improving:
its best validation step lies before the last 5% of the steps it ran (the test of
``opscale.scaling.convergence``, ``AT_BUDGET``; with early stopping a model that stopped
for patience passes it). A model of a grid point (its seeds and, where members, its n)
reached it when at most half of its members are still improving
(``convergence.budget_limited``, the fit's "budget-limited" rule). The two comparison
statements (not always better; same task ranking) get a verdict only from grid points
where both models reached it; where none did, "inconclusive: the … models had not
finished training". Train error close to test error is shown, but is no criterion: a
linearized model of low Jacobian rank fits its training data no better than new data
even at its least-squares optimum.

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
from opscale.scaling import convergence
from opscale.scaling.observations import DATA_AXIS, TERM_AXIS, grouping_axes
from opscale.tables import confidence_label, headline, interval_cell, markdown_table, table

NAME = "linearization"
LINEARIZED = "model.linearized"
MODELS = {False: "network", True: "linearized"}
# The ntk measure's alignment forms (opscale.measures.ntk.FORMS; a test checks they
# agree; not imported, to keep torch out of the fit stage) -> how fit.md names them.
FORMS = {
    "unnormalised": "yᵀΘy/‖y‖²",
    "normalised": "yᵀΘy/(‖Θ‖_F ‖y‖²)",
    "centred": "centred",
}
PAPER = "unnormalised"  # the authors' code's form: the alignment verdicts use it
SPLITS = ("train", "test")
WHEN = ("init", "end")
DISTANCES = ["ntk_distance_train", "ntk_distance_test"]
STILL = 1e-6  # kernel distance below which a kernel has not moved (float rounding)
FLOOR = ("best_step", "steps_trained")  # what the floor criterion reads


def alignment_name(form: str, split: str, when: str) -> str:
    """The cube variable of one alignment (``opscale.measures.ntk.alignment_name``)."""
    return f"ntk_alignment_{form}_{split}_{when}"


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
    wanted = ("test_rel_l2", "train_rel_l2", "n_params", *FLOOR, *_ntk_names())
    names = [v for v in wanted if v in cube]
    df = cube[[*names, "status"]].to_dataframe().reset_index()
    df = df[df["status"] == cubes.OK].copy()
    df["linearized"] = df[flag].astype(bool)
    tasks = [a for a in grouping_axes(cube) if a != flag]
    sizes = [a for a in axes if a != flag and a not in tasks]
    df["task"] = cubes.group_labels(df, tasks)
    df["point"] = cubes.group_labels(df, sizes)
    return df


def _alignment_names() -> list[str]:
    return [alignment_name(f, s, w) for f in FORMS for s in SPLITS for w in WHEN]


def _ntk_names() -> list[str]:
    return _alignment_names() + DISTANCES


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
    ``ratio`` = linearized / network (test; > 1: the network is better), ``n_params``;
    per model ``<model>_at_budget`` (members still improving, "k/K") and
    ``<model>_floor`` (it reached its training floor, see `floor_table`), and ``floor``
    (both did: the comparison is one of generalisation).
    """
    keys = ["task", "point"]
    wide = _medians(df, "test_rel_l2", "")
    if "train_rel_l2" in df:
        wide = wide.merge(_medians(df, "train_rel_l2", "_train"), on=keys)
    wide = wide.dropna(subset=list(MODELS.values()))
    wide["ratio"] = wide["linearized"] / wide["network"]
    counts = df.groupby(keys, sort=False)["n_params"].first()
    wide = wide.merge(counts.reset_index(), on=keys).merge(floor_table(df), on=keys)
    wide["floor"] = wide[[f"{m}_floor" for m in MODELS.values()]].all(axis=1)
    return wide


def floor_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and grid point, for each model: members still improving at the end of
    their steps (``<model>_at_budget``, "k/K") and whether the model reached its training
    floor (``<model>_floor``: at most half still improving; unknown counts as not)."""
    rows = []
    for (task, point, flag), frame in df.groupby(["task", "point", "linearized"], sort=False):
        diagnosis = convergence.diagnostics(frame.assign(err=frame["test_rel_l2"]))
        share = diagnosis["at_budget_share"]
        model = MODELS[bool(flag)]
        rows.append(
            {
                "task": task,
                "point": point,
                f"{model}_at_budget": diagnosis["models_at_budget"],
                f"{model}_floor": bool(share <= convergence.LIMITED_SHARE),
            }
        )
    long = pd.DataFrame(rows)
    return long.groupby(["task", "point"], sort=False).first().reset_index()


def _medians(df: pd.DataFrame, variable: str, suffix: str) -> pd.DataFrame:
    """Median of `variable` per task, point and model, one column per model (+ suffix)."""
    medians = df.groupby(["task", "point", "linearized"], sort=False)[variable].median()
    names = {flag: name + suffix for flag, name in MODELS.items()}
    return medians.unstack("linearized").rename(columns=names).reset_index()


OVERALL = "median over grid points where both models reached their floor"


def ranking_table(advantage: pd.DataFrame) -> pd.DataFrame:
    """Per grid point (and over those at the floor): the task order by error of each model.

    Order: tasks from lowest to highest median test error. ``spearman``: rank
    correlation of the two models' errors across the tasks. ``floor``: both models of
    every task reached their training floor at the point. The last row (`OVERALL`)
    orders the tasks by their median error over the points at the floor (none: NaN
    errors, ``tasks`` 0).
    """
    rows = [_ranking_row(point, frame) for point, frame in advantage.groupby("point", sort=False)]
    floor = advantage.groupby("point", sort=False)["floor"].transform("all")
    usable = advantage[floor.astype(bool)]
    overall = usable.groupby("task", sort=False)[["network", "linearized"]].median()
    rows.append({**_ranking_row(OVERALL, overall.reset_index()), "floor": True})
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
        "floor": bool(frame["floor"].all()) if "floor" in frame else False,
    }


def alignment_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task, model and alignment form: median alignments (``<split>_<when>``), the
    kernel distances and the shares of models whose alignment grows (``grows_<split>``)
    and grows more on train than on test, by the ratio end / init (``train_over_test``)."""
    if not set(_ntk_names()) <= set(df):
        return pd.DataFrame()
    rows = []
    for (task, linearized), frame in df.groupby(["task", "linearized"], sort=False):
        for form in FORMS:
            growth = {s: _growth(frame, s, form) for s in SPLITS}
            ratio = {s: _relative_growth(frame, s, form) for s in SPLITS}
            values = {
                f"{s}_{w}": float(frame[alignment_name(form, s, w)].median())
                for s in SPLITS
                for w in WHEN
            }
            rows.append(
                {
                    "task": task,
                    "model": MODELS[bool(linearized)],
                    "form": form,
                    "models": len(frame),
                    **values,
                    **{v: float(frame[v].median()) for v in DISTANCES},
                    **{f"grows_{s}": float((growth[s] > 0).mean()) for s in SPLITS},
                    "train_over_test": float((ratio["train"] > ratio["test"]).mean()),
                }
            )
    return pd.DataFrame(rows)


def theory_table(advantage, ranking, alignment, df) -> pd.DataFrame:
    """The paper's statements, what was measured, and whether each held."""
    rows = [_ranks_same(ranking, advantage), _not_always_better(advantage)]
    if not alignment.empty:
        rows += _alignment_rows(df)
    return pd.DataFrame(rows)


def _statement(statement: str, measured: str, held) -> dict:
    verdict = "n/a" if held is None else ("held" if held else "did not hold")
    return {"statement": statement, "measured": measured, "verdict": verdict}


def _unfinished(advantage: pd.DataFrame) -> dict:
    """The verdict of a comparison with no grid point where both models reached their
    floor, naming the model(s) that had not."""
    short = [m for m in MODELS.values() if not advantage[f"{m}_floor"].any()]
    short = short or [m for m in MODELS.values() if not advantage[f"{m}_floor"].all()]
    who = " and ".join(short)
    return {"verdict": f"inconclusive: the {who} models had not finished training"}


def _floor_text(advantage: pd.DataFrame) -> str:
    counts = {m: int(advantage[f"{m}_floor"].sum()) for m in MODELS.values()}
    return (
        f"at their floor: network {counts['network']}/{len(advantage)}, linearized "
        f"{counts['linearized']}/{len(advantage)}, both {int(advantage['floor'].sum())}"
    )


def _ranks_same(ranking: pd.DataFrame, advantage: pd.DataFrame) -> dict:
    cells, overall = ranking.iloc[:-1], ranking.iloc[-1]
    statement = "linearization ranks tasks the same as the network"
    if cells["tasks"].max() < 2:
        return _statement(statement, "one task: nothing to rank", None)
    usable = cells[cells["floor"]]
    same = int(usable["same_order"].sum())
    everywhere = int(cells["same_order"].sum())
    tail = f"all grid points (floor or not): same order at {everywhere}/{len(cells)}"
    if usable.empty:
        measured = f"no grid point where both models of every task reached their floor; {tail}"
        return {**_statement(statement, measured, None), **_unfinished(advantage)}
    measured = (
        f"where both reached their floor ({len(usable)}/{len(cells)} grid points), order by "
        f"median error: network {overall['order_network']}, linearized "
        f"{overall['order_linearized']}; same order at {same}/{len(usable)}; {tail}"
    )
    return _statement(statement, measured, bool(overall["same_order"]))


def _not_always_better(advantage: pd.DataFrame) -> dict:
    statement = "the network is not always better"
    usable = advantage[advantage["floor"]]
    everywhere = (
        f"all {len(advantage)} grid points (floor or not): network better at "
        f"{int((advantage['ratio'] > 1).sum())}, median ratio "
        f"{advantage['ratio'].median():.3g} [{advantage['ratio'].min():.3g}, "
        f"{advantage['ratio'].max():.3g}]; {_floor_text(advantage)}"
    )
    if usable.empty:
        return {**_statement(statement, everywhere, None), **_unfinished(advantage)}
    better = int((usable["ratio"] > 1).sum())
    measured = (
        f"where both reached their floor: network better (ratio linearized/network > 1) at "
        f"{better}/{len(usable)} grid points, median ratio {usable['ratio'].median():.3g}; "
        f"{everywhere}"
    )
    return _statement(statement, measured, better < len(usable))


def _alignment_rows(df: pd.DataFrame) -> list[dict]:
    """The NTK statements, each checked on every task's networks (the verdict counts
    tasks) with the paper's form (`PAPER`), the other forms shown."""
    net, lin = df[~df["linearized"]], df[df["linearized"]]
    rows = [
        _by_task(net, f"alignment grows during training ({split} data, network)", grows(split))
        for split in SPLITS
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


def _growth(frame: pd.DataFrame, split: str, form: str = PAPER) -> pd.Series:
    """Each model's alignment at the end minus at initialisation."""
    ends = (frame[alignment_name(form, split, w)] for w in ("end", "init"))
    return next(ends) - next(ends)


def _relative_growth(frame: pd.DataFrame, split: str, form: str = PAPER) -> pd.Series:
    """Each model's alignment at the end over that at initialisation.

    Train and test are compared by this ratio, not by the difference: the unnormalised
    alignment carries the kernel's scale, which differs between the two subsamples (a
    Rayleigh quotient grows with the subsample's size and spread), so a kernel that only
    grows in scale, Θ1 = cΘ0, would "grow more" in difference on whichever split started
    higher; its ratio is c on both.
    """
    ends = (frame[alignment_name(form, split, w)] for w in ("end", "init"))
    return next(ends) / next(ends)


def _others(frame: pd.DataFrame, text) -> str:
    """`text(form)` for the forms other than the paper's, as "; name: ..." parts."""
    return "".join(f"; {FORMS[f]}: {text(f)}" for f in FORMS if f != PAPER)


def grows(split: str):
    """Check of one task's networks: median alignment at the end above that at init
    (the paper's form decides; the other forms' medians are shown)."""

    def medians(frame: pd.DataFrame, form: str) -> tuple[float, float]:
        return tuple(frame[alignment_name(form, split, w)].median() for w in WHEN)

    def check(frame: pd.DataFrame) -> tuple[str, bool]:
        init, end = medians(frame, PAPER)
        count = int((_growth(frame, split) > 0).sum())
        text = f"{FORMS[PAPER]} {init:.3g} -> {end:.3g} ({count}/{len(frame)} grow)"
        rest = _others(frame, lambda f: "{:.3g} -> {:.3g}".format(*medians(frame, f)))
        return text + rest, bool(end > init)

    return check


def _train_more(frame: pd.DataFrame) -> tuple[str, bool]:
    def growths(form: str) -> tuple[pd.Series, pd.Series]:
        return _relative_growth(frame, "train", form), _relative_growth(frame, "test", form)

    train, test = growths(PAPER)
    count = int((train > test).sum())
    text = f"{FORMS[PAPER]} end/init {train.median():.3g} vs {test.median():.3g}"
    rest = _others(frame, lambda f: "{:.3g} vs {:.3g}".format(*(g.median() for g in growths(f))))
    return f"{text} ({count}/{len(frame)}){rest}", bool(train.median() > test.median())


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
    note = (
        f"\n\nAlignment verdicts use {FORMS[PAPER]}, the form of the authors' code (not "
        "divided by ‖Θ‖_F); the normalised and the centred (Cortes et al. 2012) forms are "
        "shown after it. The comparisons of network and linearized model count only grid "
        "points where both reached their training floor (at most half of the members' best "
        "validation step in the last 5% of the steps they ran); with none, inconclusive.\n"
    )
    head = markdown_table(["statement", "measured", "verdict"], body)
    return title + head.rstrip("\n") + note if body else ""


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
            FORMS.get(r.form, r.form) + (" (paper)" if r.form == PAPER else ""),
            r.models,
            *(f"{getattr(r, f'{s}_{w}'):.4g}" for s in SPLITS for w in WHEN),
            *(f"{getattr(r, v):.3g}" for v in DISTANCES),
            f"{r.grows_train:.0%} / {r.grows_test:.0%}",
            f"{r.train_over_test:.0%}",
        ]
        for r in rows.itertuples()
    ]
    header = [
        "task",
        "model",
        "alignment",
        "models",
        "train, init",
        "train, end",
        "test, init",
        "test, end",
        "distance (train)",
        "distance (test)",
        "grows (train / test)",
        "train > test (end/init)",
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
            _floor_cell(r),
        ]
        for r in rows.itertuples()
    ]
    header = [
        "task",
        "grid point",
        "N",
        "network",
        "linearized",
        "ratio lin/net",
        "train error",
        "still improving (net; lin)",
    ]
    title = (
        "## Linearization: median test error per grid point (non-linear advantage)\n\n"
        "ratio > 1: the network is better. Train error: network / linearized (median). "
        "Still improving: members whose best validation step is in the last 5% of their "
        "steps; a model with more than half so had not reached its floor (*), and the "
        "point does not count in the comparisons.\n\n"
    )
    return title + markdown_table(header, body) if body else ""


def _train_cell(r) -> str:
    if not hasattr(r, "network_train"):
        return "–"
    return f"{r.network_train:.3g} / {r.linearized_train:.3g}"


def _floor_cell(r) -> str:
    cells = [
        getattr(r, f"{m}_at_budget") + ("" if getattr(r, f"{m}_floor") else "*")
        for m in MODELS.values()
    ]
    return "; ".join(cells)


def _ranking_section(fits) -> str:
    rows = table(fits, f"{NAME}_ranking")
    if rows.empty or rows["tasks"].max() < 2:
        return ""
    body = [
        [
            r.point,
            r.order_network or "–",
            r.order_linearized or "–",
            r.same_order,
            "–" if np.isnan(r.spearman) else f"{r.spearman:.2f}",
            "yes" if r.floor else "no",
        ]
        for r in rows.itertuples()
    ]
    header = ["grid point", "tasks by error: network", "linearized", "same", "Spearman ρ"]
    return "## Linearization: task ranking\n\n" + markdown_table(
        [*header, "both at their floor"], body
    )


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
    """Kernel–target alignment at init and at the end, train and test, per model and task:
    one row of panels per alignment form (the paper's first; each on its own scale)."""
    df = models(cube)
    model = df["linearized"].map(MODELS)
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "task": df["task"],
                    "form": FORMS[form],
                    "model, data": model + ", " + split,
                    "when": when,
                    "alignment": df[alignment_name(form, split, when)],
                }
            )
            for form in FORMS
            for split in SPLITS
            for when in WHEN
        ],
        ignore_index=True,
    )
    grid = sns.catplot(
        data=long,
        x="when",
        y="alignment",
        hue="model, data",
        col="task",
        row="form",
        kind="point",
        estimator="median",
        errorbar=("pi", 50),
        dodge=0.3,
        order=list(WHEN),
        height=2.8,
        sharey=False,
    )
    grid.set_titles("{row_name}: {col_name}", size=8)
    grid.set_axis_labels("", "kernel–target alignment")
    return grid.figure
