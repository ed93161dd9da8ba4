"""Operator-learning problems: input families, operators, and their data files.

A data file holds, for every seed of a study, the train, validation and test functions
of one problem: inputs u at the sensors and outputs s at the query points. Each split of
each seed is its own random stream, so adding seeds or enlarging a split never changes
the functions already drawn (smaller training sets are prefixes of larger ones).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from scipy.interpolate import make_interp_spline

from opscale.problems.inputs import FAMILIES
from opscale.problems.operators import OPERATORS
from opscale.rng import numpy_rng

SPLITS = ("train", "val", "test")


def generate(spec: dict) -> xr.Dataset:
    """Draw and solve every split of every seed of a data spec.

    Parameters
    ----------
    spec : dict
        ``{"problem": ..., "data": ..., "seeds": [...]}`` as resolved by ``opscale.grid``.

    Returns
    -------
    xarray.Dataset
        ``u(seed, sample, sensor)``, ``s(seed, sample, query)``, the sensor positions
        ``x_sensor(sensor)``, the query points ``y(query, y_dim)`` and ``split(sample)``.
    """
    problem, sizes = spec["problem"], spec["data"]
    x = np.linspace(0.0, 1.0, problem["resolution"])
    x_sensor = np.linspace(0.0, 1.0, problem["sensors"])
    x_query = np.linspace(0.0, 1.0, problem["queries"])
    draws = [
        [_draw(seed, split, sizes[f"n_{split}"], x, problem) for split in SPLITS]
        for seed in spec["seeds"]
    ]
    u = np.stack([np.concatenate([_at(x, d[0], x_sensor) for d in seed]) for seed in draws])
    s = np.stack([np.concatenate([_at(x, d[1], x_query) for d in seed]) for seed in draws])
    split = np.concatenate([[name] * sizes[f"n_{name}"] for name in SPLITS])
    return _dataset(u, s, x_sensor, x_query[:, None], split, spec["seeds"])


def _draw(seed: int, split: str, n: int, x: np.ndarray, problem: dict):
    """Inputs and solutions of one split of one seed on the fine grid, shapes (n, R)."""
    rng = numpy_rng(seed, "inputs", split)
    u = FAMILIES[problem["inputs"]["family"]](rng, n, x, problem["inputs"])
    return u, OPERATORS[problem["name"]](u, x, problem)


def _at(x: np.ndarray, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of `values` (on grid x) at `points`."""
    return make_interp_spline(x, values.T, k=1)(points).T


def _dataset(u, s, x_sensor, y, split, seeds) -> xr.Dataset:
    return xr.Dataset(
        {
            "u": (
                ("seed", "sample", "sensor"),
                u,
                {"long_name": "input function u at the sensors", "units": "1"},
            ),
            "s": (
                ("seed", "sample", "query"),
                s,
                {"long_name": "operator output s at the query points", "units": "1"},
            ),
        },
        coords={
            "seed": ("seed", np.asarray(seeds), {"long_name": "repetition seed", "units": "1"}),
            "split": (
                "sample",
                split.astype(str),
                {"long_name": "train, val or test", "units": "1"},
            ),
            "x_sensor": ("sensor", x_sensor, {"long_name": "sensor position", "units": "1"}),
            "y": (("query", "y_dim"), y, {"long_name": "query point", "units": "1"}),
        },
    )


def make_data_file(spec: dict, path: str) -> None:
    """Generate the data of `spec` and write it (atomically) to `path`."""
    from opscale import cube

    ds = generate(spec)
    ds.attrs["config"] = json.dumps(spec, sort_keys=True)
    cube.write(ds, path)


def intrinsic_dim(problem: dict) -> int | None:
    """Intrinsic dimension of the inputs (b for a finite series; None if infinite)."""
    return None  # a Gaussian random field spans infinitely many directions


def output_dim(problem: dict) -> int:
    """Dimension d2 of the output domain (of the query points y)."""
    return 1
