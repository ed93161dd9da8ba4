"""The data of an operator problem: inputs drawn, solved, sampled at sensors and queries.

u is drawn from the problem's input family (``inputs.FAMILIES``) on the fine grid of
[0, 1], solved by the operator's solver (its registry record's ``solve``), and both are
sampled: u at the sensors, s at the query points (``QUERIES``). Each split of each seed is
its own random stream, so adding seeds or enlarging a split never changes the functions
already drawn (smaller training sets are prefixes of larger ones).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from opscale.problems.inputs import FAMILIES
from opscale.problems.layout import SPLITS, dataset
from opscale.problems.registry import PROBLEMS, load, output_dim
from opscale.rng import numpy_rng

# Points per axis of the grid an operator is solved on, by output dimension d2: outputs on
# [0, 1] use the fine grid of the inputs; space-time outputs a coarser square grid.
SOLVER_POINTS = {1: lambda problem: problem["resolution"], 2: lambda p: p["pde_resolution"]}


def build(spec: dict) -> xr.Dataset:
    """Draw inputs from the problem's family, solve its operator, sample the results."""
    problem, sizes = spec["problem"], spec["data"]
    x_sensor = np.linspace(0.0, 1.0, problem["sensors"])
    draws = [
        [_draw(seed, split, sizes[f"n_{split}"], x_sensor, problem) for split in SPLITS]
        for seed in spec["seeds"]
    ]
    u, y, s = (np.stack([np.concatenate([d[i] for d in seed]) for seed in draws]) for i in range(3))
    split = np.concatenate([[name] * sizes[f"n_{name}"] for name in SPLITS])
    y = y[0, 0] if _aligned(problem) else y  # aligned: one (q, d2) for all
    return dataset(u, s, x_sensor, y, split, spec["seeds"])


def _check_finite(s: np.ndarray, problem: dict) -> None:
    """Refuse solutions that blew up (s' = -s^2 + u does for large negative u)."""
    bad = ~np.isfinite(s).all(axis=-1)
    if bad.any():
        raise ValueError(
            f"problem.name = {problem['name']!r}: the solution of {int(bad.sum())} of "
            f"{bad.size} input functions is not finite (it blew up); draw smaller inputs "
            "(problem.inputs.variance, or a finite series' decay)"
        )


def _aligned(problem: dict) -> bool:
    return problem["query_points"] == "grid"


def _draw(seed: int, split: str, n: int, x_sensor: np.ndarray, problem: dict):
    """Inputs at the sensors (n, m), query points and outputs (n, q) of one split."""
    x = np.linspace(0.0, 1.0, problem["resolution"])
    grid = np.linspace(0.0, 1.0, SOLVER_POINTS[output_dim(problem)](problem))
    u = FAMILIES[problem["inputs"]["family"]](
        numpy_rng(seed, "inputs", split), n, x, problem["inputs"]
    )
    solve = load(PROBLEMS[problem["name"]].solve)
    solution = solve(sample(x, u, grid[:, None]), grid, problem)
    _check_finite(solution.reshape(n, -1), problem)
    y, s = QUERIES[problem["query_points"]](
        numpy_rng(seed, "queries", split), grid, solution, problem
    )
    return sample(x, u, x_sensor[:, None]), y, s


def sample(grid: np.ndarray, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of functions on the square grid ``grid^d`` at points.

    values (n, R, ..., R) with d grid axes; points (q, d). Returns (n, q).
    """
    axes = (grid,) * (values.ndim - 1)
    return RegularGridInterpolator(axes, np.moveaxis(values, 0, -1))(points).T


def query_grid(rng, grid: np.ndarray, solution: np.ndarray, problem: dict):
    """Aligned data: every function at the same ``queries^d2`` grid points.

    Returns y (n, q, d2), the same q points for each function (columns (x, t) for
    space-time outputs), and s (n, q). `rng` is unused (the grid is not random).
    """
    axis = np.linspace(0.0, 1.0, problem["queries"])
    mesh = np.meshgrid(*[axis] * (solution.ndim - 1), indexing="ij")
    y = np.stack([m.ravel() for m in mesh], axis=1)
    return np.broadcast_to(y, (len(solution), *y.shape)), sample(grid, solution, y)


def query_random(rng: np.random.Generator, grid: np.ndarray, solution: np.ndarray, problem):
    """Unaligned data: each function at its own ``queries^d2`` uniform random points.

    Returns y (n, q, d2) and s (n, q).
    """
    d2 = solution.ndim - 1
    y = rng.uniform(0.0, 1.0, (len(solution), problem["queries"] ** d2, d2))
    s = np.stack([sample(grid, f[None], p)[0] for f, p in zip(solution, y, strict=True)])
    return y, s


QUERIES = {"grid": query_grid, "random": query_random}
