"""Time the whole fit (every law, bootstrap, comparison, backtest, allocation) of a cube.

    .venv/bin/python benchmarks/fit.py                       # 1,000 models, 1,000 resamples
    .venv/bin/python benchmarks/fit.py --widths 25 --n 40 --seeds 3   # 1,000 grid points
    .venv/bin/python benchmarks/fit.py --coverage 400 --bootstrap 200 # coverage, every scenario

The cube is synthetic (tests/helpers.py: planted law with a floor, 5% log-normal noise);
widths and training-set sizes are spread geometrically. Prints one Markdown table row.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opscale import fit, tables  # noqa: E402
from opscale.config import validate_study  # noqa: E402
from opscale.scaling.fitting import fit_reported_law  # noqa: E402
from opscale.scaling.laws import AdditiveLaw  # noqa: E402
from opscale.scaling.observations import TERMS, observations  # noqa: E402
from tests.helpers import synthetic_cube  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, default=20, help="model sizes")
    parser.add_argument("--n", type=int, default=10, help="training-set sizes")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per grid point")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--coverage",
        type=int,
        default=0,
        help="instead: coverage of the robust law's intervals over this many planted cubes",
    )
    parser.add_argument("--scenario", choices=list(SCENARIOS), help="one coverage scenario")
    parser.add_argument("--workers", type=int, default=2, help="processes for the replays")
    args = parser.parse_args()
    if args.coverage:
        return coverage(args.coverage, args.bootstrap, args.workers, args.scenario)
    widths = np.unique(np.geomspace(4, 400, args.widths).round().astype(int))
    n_train = np.unique(np.geomspace(16, 4096, args.n).round().astype(int))
    cube = synthetic_cube(floor=0.02, seeds=args.seeds, widths=widths, n_train=n_train)
    start = time.perf_counter()
    fits = fit.fit(cube, {"bootstrap": args.bootstrap})
    seconds = time.perf_counter() - start
    robust = tables.table(fits, "row").query("law == 'robust'")
    exponents = ", ".join(f"{r.term} {r.exponent:.3f}" for r in robust.itertuples())
    print(
        f"| fit | {len(widths) * len(n_train)} points, {cube.test_rel_l2.size} models, "
        f"{args.bootstrap} resamples | {seconds:.1f} s | {exponents} | "
        f"{platform.processor() or platform.machine()}, {_cores()} cores |"
    )


# name: (what it plants, the data of replay `rep`); truth alpha 0.5, beta 0.8, floor 0.05
SCENARIOS = {
    "3 seeds, independent": lambda rep: _cube(rep, seeds=3, seed_noise=0.0),
    "3 seeds, seed shift": lambda rep: _cube(rep, seeds=3, seed_noise=0.1),
    "3 seeds, seed effect along n": lambda rep: _cube(
        rep, seeds=3, seed_noise=0.05, seed_slope=0.1
    ),
    "10 seeds, independent": lambda rep: _cube(rep, seeds=10, seed_noise=0.0),
    "10 seeds, seed shift": lambda rep: _cube(rep, seeds=10, seed_noise=0.1),
    "10 seeds, seed effect along n": lambda rep: _cube(
        rep, seeds=10, seed_noise=0.05, seed_slope=0.1
    ),
    "3 seeds, no floor, seed shift": lambda rep: _cube(rep, seeds=3, seed_noise=0.1, floor=0.0),
    "table, 200 runs unreplicated, floor": lambda rep: _table(rep, floor=0.05),
    "table, 200 runs unreplicated, no floor": lambda rep: _table(rep, floor=0.0),
}
TRUTH = {"alpha": 0.5, "beta": 0.8}


def _cube(rep: int, floor: float = 0.05, **noise):

    cube = synthetic_cube(floor=floor, noise=0.1, rng_seed=1000 + rep, **noise)
    return observations(cube)[0], floor


def _table(rep: int, floor: float):
    from opscale.scaling.observations import table_observations
    from tests.helpers import planted_table

    frame = planted_table(floor=floor, rng_seed=1000 + rep)
    return table_observations(frame, "params", "samples", "loss")[0], floor


def _replay(task) -> dict:
    """One planted replay: whether each parameter's interval covers the truth, widths."""
    from opscale.rng import numpy_rng

    scenario, rep, resamples = task
    obs, floor = SCENARIOS[scenario](rep)
    law = AdditiveLaw(TERMS)
    settings = fit.fit_settings(validate_study({"study": "x"}), {"refine": 2})
    rng = numpy_rng(rep, "coverage")
    law_fit = fit_reported_law(obs, law, settings, rng, resamples=resamples)
    truth = {**TRUTH, **({"E": floor} if floor > 0 else {})}
    index = {name: law.names.index(name) for name in truth}
    if not len(law_fit.draws):
        return {name: (False, 0.0) for name in truth} | {"scheme": law_fit.scheme}
    low, high = law_fit.interval(law_fit.draws, 0.95)
    hits = {
        name: (bool(low[k] <= value <= high[k]), float(high[k] - low[k]))
        for name, value in truth.items()
        for k in [index[name]]
    }
    return hits | {"scheme": law_fit.scheme, "spans_no_floor": law_fit.spans_no_floor}


def coverage(repetitions: int, resamples: int, workers: int, only: str | None) -> None:
    """Share of nominal 95% intervals that contain the planted values, per scenario."""
    import concurrent.futures

    rows = []
    for scenario in [only] if only else SCENARIOS:
        start = time.perf_counter()
        tasks = [(scenario, rep, resamples) for rep in range(repetitions)]
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            replays = list(pool.map(_replay, tasks, chunksize=4))
        names = [n for n in ("alpha", "beta", "E") if n in replays[0]]
        cells = [f"{np.mean([r[n][0] for r in replays]):.3f}" for n in names]
        widths = [f"{np.median([r[n][1] for r in replays]):.3f}" for n in names]
        scheme = replays[0]["scheme"]
        spans = np.mean([r.get("spans_no_floor", False) for r in replays])
        rows.append(
            f"| {scenario} | {scheme} | {', '.join(names)} | {', '.join(cells)} | "
            f"{', '.join(widths)} | {spans:.2f} | {time.perf_counter() - start:.0f} s |"
        )
        print(rows[-1], flush=True)
    header = (
        f"{repetitions} replays x {resamples} resamples, {_cores()} cores, "
        f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}\n\n"
        "| scenario | scheme | parameters | coverage of nominal 95% | median width "
        "| share spanning the law without a floor | time |\n"
        "|---|---|---|---|---|---|---|"
    )
    print("\n" + header + "\n" + "\n".join(rows))


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
