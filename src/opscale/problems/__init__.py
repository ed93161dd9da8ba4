"""Operator-learning problems: input families, operators, datasets and their data files.

A data file holds, for every seed of a study, the train, validation and test functions
of one problem: inputs ``u(seed, sample, sensor)`` at the sensors, outputs
``s(seed, sample, query)`` at the query points ``y(query, y_dim)`` (aligned; or
``y(seed, sample, query, y_dim)``, each function its own points, for unaligned data) and
``split(sample)``. ``registry.PROBLEMS`` holds one record per ``problem.name``: the
builder of its file, its dimensions and the files it reads. The builders:

- every operator (``registry.OPERATORS``, solved by ``operators``): u drawn from an input
  family (``inputs.FAMILIES``) on the fine grid, solved, sampled at sensors and query
  points (``operator_data``);
- ``dataset``: read from NetCDF files (``datasets``; the shipped ones or your own);
- ``subspace_regression``: a deep ReLU regression task on a d-dimensional subspace of
  R^D (``regression``);
- ``tanh_teacher``: a two-layer tanh teacher network on Gaussian inputs (``teacher``).

Each split of each seed is its own random stream, so adding seeds or enlarging a split
never changes the functions already drawn (smaller training sets are prefixes of larger
ones). Importing this package is cheap (the registry only); the builders import numpy,
scipy and xarray when data are built.
"""

from __future__ import annotations

import json

from opscale.problems.registry import (
    OPERATORS,
    PROBLEMS,
    Problem,
    generate,
    intrinsic_dim,
    output_dim,
    problem_files,
)

__all__ = [
    "OPERATORS",
    "PROBLEMS",
    "Problem",
    "generate",
    "intrinsic_dim",
    "make_data_file",
    "output_dim",
    "problem_files",
]


def make_data_file(spec: dict, path: str) -> None:
    """Build the data of `spec` and write it (atomically) to `path`."""
    from opscale import cube

    ds = generate(spec)
    ds.attrs["config"] = json.dumps(spec, sort_keys=True)
    cube.write(ds, path)
