"""Adaptive sweeps replayed against a recorded dense grid (opscale issue 19, item 1).

    python benchmarks/adaptive.py [--cube results/budget/cube.nc] [--group steps=2000]
        [--replays 50] [--share 0.4] [--batch 3] [--resamples 200] [--no-append]

The dense grid is a real cube where every candidate cell (N, n, seed) was trained; one
group of it (``--group``, e.g. one training budget) is the candidate set. For each replay
seed the adaptive loop (``opscale.adaptive.replay``, target beta) runs on the recorded
results until ``--share`` of the grid's training FLOPs is spent (no cell is retrained:
its recorded error is read). Then the adaptive runs and the full grid are fitted by the
same robust law and bootstrap (``fitting.fit_reported_law``, the cube's fit settings,
``--resamples`` resamples on both sides) and the replay records beta's interval width and
whether its estimate lies inside the full grid's interval. A random design at the same
budget (the same initial design, then random cells while they fit in the budget) is
replayed with the same seeds as the baseline the criterion has to beat.

The issue's targets: the adaptive width no larger than the full grid's, and the adaptive
estimate inside the full grid's interval in >= 95% of the replays.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import cpu_model, publish  # noqa: E402

from opscale import adaptive  # noqa: E402
from opscale import cube as cubes  # noqa: E402
from opscale.rng import numpy_rng  # noqa: E402
from opscale.scaling.fitting import fit_reported_law  # noqa: E402
from opscale.scaling.observations import observations  # noqa: E402


def recorded_grid(path: Path, group: str) -> tuple[pd.DataFrame, dict]:
    """The cells of one group of the cube (N, n, seed, flops, err) and its fit settings."""
    with xr.open_dataset(path) as cube:
        cube = cube.load()
    obs, _ = observations(cube)
    for pair in filter(None, group.split(",")):
        name, value = pair.split("=")
        obs = obs[obs[name].astype(str) == value]
    columns = {"n_params": "N", "train_flops": "flops"}
    grid = obs.rename(columns=columns)[["N", "n", "seed", "flops", "err"]]
    return grid.reset_index(drop=True), cubes.study_config(cube)["fit"]


def beta_interval(runs: pd.DataFrame, settings: dict, seed: int, resamples: int):
    """(estimate, low, high, scheme) of beta: the robust law and bootstrap of the report."""
    rng = numpy_rng(seed, "benchmark", "adaptive", "bootstrap")
    fitted = fit_reported_law(
        adaptive.frame_of(runs), adaptive.LAW, settings, rng, resamples=resamples
    )
    k = adaptive.LAW.terms.index("log_n")
    expo = adaptive.LAW.split(fitted.draws)[2][:, k]
    low, high = fitted.interval(expo, settings["confidence"])
    estimate = float(adaptive.LAW.split(fitted.theta)[2][k])
    return estimate, float(low), float(high), fitted.scheme


def random_design(grid: pd.DataFrame, budget: float, seed: int) -> pd.DataFrame:
    """The baseline: the same initial design, then random cells while they fit the budget."""
    runs = adaptive.initial_design(grid, seed)
    rest = grid.drop(index=runs.index)
    rest = rest.iloc[numpy_rng(seed, "benchmark", "random design").permutation(len(rest))]
    fits = (runs["flops"].sum() + rest["flops"].cumsum()) <= budget
    return pd.concat([runs, rest[fits.to_numpy()]])


def replay_once(grid, settings, full, seed: int, args) -> list[dict]:
    """One replay seed: the adaptive and the random design, each fitted and compared."""
    budget = args.share * grid["flops"].sum()
    stop = adaptive.Stop(budget=budget, confidence=settings["confidence"])
    runs, rounds = adaptive.replay(grid, adaptive.Target("beta"), stop, args.batch, settings, seed)
    rows = []
    for design, chosen in (("adaptive", runs), ("random", random_design(grid, budget, seed))):
        estimate, low, high, scheme = beta_interval(chosen, settings, seed, args.resamples)
        rows.append(
            {
                "design": design,
                "seed": seed,
                "cells": len(chosen),
                "rounds": len(rounds) if design == "adaptive" else 1,
                "share": chosen["flops"].sum() / grid["flops"].sum(),
                "beta": estimate,
                "width": high - low,
                "inside": full[1] <= estimate <= full[2],
                "scheme": scheme,
            }
        )
    return rows


def summary(results: pd.DataFrame, full, grid: pd.DataFrame) -> str:
    """The Markdown table: per design, widths and coverage against the full grid."""
    lines = [
        "| design | cells (median) | FLOPs share, median (max) | beta, median | "
        "beta width, median (5–95%) | width <= full grid's | estimate in full grid's interval |",
        "|---|---|---|---|---|---|---|",
        f"| full grid | {len(grid)} | 1 | {full[0]:.3g} | {full[2] - full[1]:.3g} | — | — |",
    ]
    for design, rows in results.groupby("design", sort=False):
        q = rows["width"].quantile([0.5, 0.05, 0.95]).to_numpy()
        lines.append(
            f"| {design} | {rows['cells'].median():.0f} | {rows['share'].median():.3f} "
            f"({rows['share'].max():.3f}) | {rows['beta'].median():.3g} | {q[0]:.3g} "
            f"({q[1]:.3g}–{q[2]:.3g}) | {(rows['width'] <= full[2] - full[1]).sum()}/{len(rows)} "
            f"| {rows['inside'].sum()}/{len(rows)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cube", type=Path, default=Path("results/budget/cube.nc"))
    parser.add_argument("--group", default="steps=2000", help="name=value[,name=value]")
    parser.add_argument("--replays", type=int, default=50)
    parser.add_argument("--share", type=float, default=0.4, help="of the grid's FLOPs")
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    before, start = os.popen("uptime").read().strip(), time.time()
    grid, settings = recorded_grid(args.cube, args.group)
    full = beta_interval(grid, settings, settings["seed"], args.resamples)
    settings = {**settings, "bootstrap_scheme": full[3]}  # the same bootstrap on every side
    rows = [
        r for seed in range(args.replays) for r in replay_once(grid, settings, full, seed, args)
    ]
    results = pd.DataFrame(rows)
    wall, after = time.time() - start, os.popen("uptime").read().strip()
    command = "python benchmarks/adaptive.py " + shlex.join(sys.argv[1:])
    text = "\n".join(
        [
            f"## adaptive sweeps replayed on a recorded grid (benchmarks/adaptive.py), "
            f"{datetime.date.today()}",
            "",
            f"`{command.strip()}`: dense grid `{args.cube}` group `{args.group}` "
            f"({grid['N'].nunique()} N x {grid['n'].nunique()} n x {grid['seed'].nunique()} "
            f"seeds, {len(grid)} cells); target beta; stop at {args.share:g} of the grid's "
            f"training FLOPs; batch {args.batch}; {args.replays} replay seeds; robust law and "
            f"bootstrap of the report with {args.resamples} resamples on every side. "
            "Random: the same initial design, then random cells within the same budget.",
            f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; wall time {wall:.0f} s; "
            f"`uptime` before: `{before}`; after: `{after}`.",
            "",
            summary(results, full, grid),
            "",
            f"Full grid: beta {full[0]:.3g} [{full[1]:.3g}, {full[2]:.3g}], bootstrap scheme "
            f"`{full[3]}` (forced on every replay's fit; schemes used: "
            f"{', '.join(sorted(results['scheme'].unique()))}). Issue 19's "
            "targets: width <= the full grid's, estimate inside its interval in >= 95% of "
            "the replays.",
        ]
    )
    publish(text, append=not args.no_append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
