"""Time the whole fit (every law, bootstrap, comparison, backtest, allocation) of a cube.

    .venv/bin/python benchmarks/fit.py                       # 1,000 models, 1,000 resamples
    .venv/bin/python benchmarks/fit.py --widths 25 --n 40 --seeds 3   # 1,000 grid points
    .venv/bin/python benchmarks/fit.py --coverage 200 --bootstrap 200 # interval coverage

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
from opscale.scaling.fitting import fit_law  # noqa: E402
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
    parser.add_argument(
        "--seed-noise", type=float, default=0.0, help="sd of the shift shared by a seed's models"
    )
    args = parser.parse_args()
    if args.coverage:
        return coverage(args.coverage, args.bootstrap, args.seed_noise)
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


def coverage(repetitions: int, resamples: int, seed_noise: float) -> None:
    """Share of nominal 95% intervals of alpha and beta that contain the planted values."""
    from opscale.rng import numpy_rng

    law, settings = AdditiveLaw(TERMS), fit.fit_settings(validate_study({"study": "x"}))
    truth, hits = np.array([0.5, 0.8]), np.zeros(2)
    start = time.perf_counter()
    for rep in range(repetitions):
        cube = synthetic_cube(floor=0.05, noise=0.1, seed_noise=seed_noise, rng_seed=1000 + rep)
        obs, _ = observations(cube)
        law_fit = fit_law(obs, law, settings, numpy_rng(rep, "coverage"), resamples=resamples)
        low, high = law_fit.interval(law.split(law_fit.draws)[2], 0.95)
        hits += (low <= truth) & (truth <= high)
    alpha, beta = hits / repetitions
    print(
        f"| coverage | {repetitions} planted cubes (floor 0.05, noise 0.1, seed noise "
        f"{seed_noise}), {resamples} "
        f"resamples | {time.perf_counter() - start:.0f} s | alpha {alpha:.3f}, beta {beta:.3f} |"
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
