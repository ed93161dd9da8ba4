"""The data of an operator problem: inputs drawn, solved, sampled at sensors and queries.

u is drawn from the problem's input family (``inputs.FAMILIES``) on the fine grid of
[0, 1], solved by the operator's solver (its registry record's ``solve``), and both are
sampled: u at the sensors, s at the query points (``QUERIES``). Each split of each seed is
its own random stream, so adding seeds or enlarging a split never changes the functions
already drawn (smaller training sets are prefixes of larger ones).

A solution that is not finite (it blew up: s' = -s^2 + u does for large negative u) fails
the data job (``problem.on_blowup: fail``, the default), naming the settings that decide
the size of the inputs of the family in use (``SIZE_KEYS``). With ``on_blowup: resample``
each such function is redrawn instead (``ON_BLOWUP``), from a stream of its own derived
from its split's, ``(seed, "inputs", split, "redraw", index)``: the redraws of function
``index`` depend on nothing else, so the data stay deterministic and prefix-stable. The
inputs are then drawn from the family conditioned on a finite solution; the data file
records how often each function was redrawn (``redraws(seed, sample)``, 0 for a first
draw) and how many were (attribute ``redrawn_functions``). A function still blowing up
after ``MAX_REDRAWS`` redraws fails the job.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from opscale.problems.inputs import BASES, FAMILIES
from opscale.problems.layout import SPLITS, dataset
from opscale.problems.registry import PROBLEMS, load, output_dim
from opscale.rng import numpy_rng

# Points per axis of the grid an operator is solved on, by output dimension d2: outputs on
# [0, 1] use the fine grid of the inputs; space-time outputs a coarser square grid.
SOLVER_POINTS = {1: lambda problem: problem["resolution"], 2: lambda p: p["pde_resolution"]}

# With problem.on_blowup: resample, a function whose solution blows up is redrawn at most
# this many times; one still blowing up then fails the job (the inputs are too large for
# the operator: resampling would only hide how much of their distribution is cut away).
MAX_REDRAWS = 10

# The settings that decide how large the functions of each input family are (the advice
# of a blow-up; a series ignores problem.inputs.variance, a grf the series' settings).
SIZE_KEYS = {
    "grf": ("variance", "length_scale"),
    **{name: ("coefficients", "decay", "modes") for name in BASES},
}

log = logging.getLogger(__name__)


def build(spec: dict) -> xr.Dataset:
    """Draw inputs from the problem's family, solve its operator, sample the results."""
    problem, sizes = spec["problem"], spec["data"]
    x_sensor = np.linspace(0.0, 1.0, problem["sensors"])
    draws = [
        [_draw(seed, split, sizes[f"n_{split}"], x_sensor, problem) for split in SPLITS]
        for seed in spec["seeds"]
    ]
    u, y, s, redraws = (
        np.stack([np.concatenate([d[i] for d in seed]) for seed in draws]) for i in range(4)
    )
    split = np.concatenate([[name] * sizes[f"n_{name}"] for name in SPLITS])
    y = y[0, 0] if _aligned(problem) else y  # aligned: one (q, d2) for all
    ds = dataset(u, s, x_sensor, y, split, spec["seeds"])
    return _record_redraws(ds, redraws) if _on_blowup(problem) == "resample" else ds


def _on_blowup(problem: dict) -> str:
    return problem.get("on_blowup", "fail")  # absent from specs made before the setting


def _record_redraws(ds: xr.Dataset, redraws: np.ndarray) -> xr.Dataset:
    """`ds` with how often each function was redrawn (seed, sample) and how many were."""
    attrs = {
        "long_name": "redraws of the input function (its earlier draws' solutions blew up)",
        "units": "1",
    }
    ds = ds.assign(redraws=(("seed", "sample"), redraws.astype(np.int32), attrs))
    ds.attrs["redrawn_functions"] = int((redraws > 0).sum())
    if ds.attrs["redrawn_functions"]:
        log.warning(
            "problem.on_blowup: resample: %d of %d input functions were redrawn because "
            "their solution blew up (variable 'redraws' of the data file)",
            ds.attrs["redrawn_functions"],
            redraws.size,
        )
    return ds


def _blown_up(solution: np.ndarray) -> np.ndarray:
    """Which solutions (n, ...) are not finite somewhere, (n,) bool."""
    return ~np.isfinite(solution.reshape(len(solution), -1)).all(axis=-1)


def _size_settings(problem: dict) -> str:
    """``problem.inputs.variance = 400.0, ...``: what sets the size of the inputs in use."""
    inputs = problem["inputs"]
    keys = SIZE_KEYS[inputs["family"]]
    return ", ".join(f"problem.inputs.{key} = {inputs[key]!r}" for key in keys)


def _blowup_advice(problem: dict) -> str:
    family = problem["inputs"]["family"]
    return (
        f"the size of problem.inputs.family = {family!r} inputs is set by {_size_settings(problem)}"
    )


def _fail(seed, split, x, u, solution, grid, problem):
    """``on_blowup: fail``: refuse solutions that blew up, naming what to change."""
    bad = _blown_up(solution)
    if bad.any():
        raise ValueError(
            f"problem.name = {problem['name']!r}: the solution of {int(bad.sum())} of "
            f"{bad.size} input functions (seed {seed}, split {split}) is not finite (it "
            f"blew up). Draw smaller inputs ({_blowup_advice(problem)}), or set "
            "problem.on_blowup: resample to redraw each such function (the data file "
            "records how many were)"
        )
    return u, solution, np.zeros(len(u), dtype=int)


def _resample(seed, split, x, u, solution, grid, problem):
    """``on_blowup: resample``: redraw each function whose solution blew up.

    Function i is redrawn from its own stream ``(seed, "inputs", split, "redraw", i)``,
    one function per redraw, until its solution is finite (at most ``MAX_REDRAWS``
    times). Returns the inputs (n, R), solutions and redraws per function (n,).
    """
    sample_u, spec = FAMILIES[problem["inputs"]["family"]], problem["inputs"]
    redraws = np.zeros(len(u), dtype=int)
    bad = np.flatnonzero(_blown_up(solution))
    streams = {i: numpy_rng(seed, "inputs", split, "redraw", int(i)) for i in bad}
    for _ in range(MAX_REDRAWS):
        if not bad.size:
            break
        u[bad] = np.concatenate([sample_u(streams[i], 1, x, spec) for i in bad])
        solution[bad] = _solve(x, u[bad], grid, problem)
        redraws[bad] += 1
        bad = bad[_blown_up(solution[bad])]
    if bad.size:
        raise ValueError(
            f"problem.name = {problem['name']!r}, problem.on_blowup: resample: the solution "
            f"of {bad.size} of {len(u)} input functions (seed {seed}, split {split}) still "
            f"blew up after {MAX_REDRAWS} redraws each; the inputs are too large for this "
            f"operator: draw smaller ones ({_blowup_advice(problem)})"
        )
    if redraws.any():
        log.info(
            "seed %s, split %s: redrew %d of %d input functions",
            seed,
            split,
            int((redraws > 0).sum()),
            len(u),
        )
    return u, solution, redraws


# What a blown-up solution does (problem.on_blowup).
ON_BLOWUP = {"fail": _fail, "resample": _resample}


def _aligned(problem: dict) -> bool:
    return problem["query_points"] == "grid"


def _draw(seed: int, split: str, n: int, x_sensor: np.ndarray, problem: dict):
    """Inputs at the sensors (n, m), query points, outputs (n, q), redraws (n,) of a split."""
    x = np.linspace(0.0, 1.0, problem["resolution"])
    grid = np.linspace(0.0, 1.0, SOLVER_POINTS[output_dim(problem)](problem))
    u = FAMILIES[problem["inputs"]["family"]](
        numpy_rng(seed, "inputs", split), n, x, problem["inputs"]
    )
    solution = _solve(x, u, grid, problem)
    u, solution, redraws = ON_BLOWUP[_on_blowup(problem)](
        seed, split, x, u, solution, grid, problem
    )
    y, s = QUERIES[problem["query_points"]](
        numpy_rng(seed, "queries", split), grid, solution, problem
    )
    return sample(x, u, x_sensor[:, None]), y, s, redraws


def _solve(x: np.ndarray, u: np.ndarray, grid: np.ndarray, problem: dict) -> np.ndarray:
    """The operator's solutions of inputs u (n, R) on the fine grid x, on its solver grid."""
    solve = load(PROBLEMS[problem["name"]].solve)
    return solve(sample(x, u, grid[:, None]), grid, problem)


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
