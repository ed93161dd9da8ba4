"""Problems read from NetCDF files instead of generated: ``problem.name: dataset``.

File format ("bring your own dataset"): two NetCDF files ``<path>_train.nc`` and
``<path>_test.nc``, where ``<path>`` is ``problem.dataset.path``, each holding

- ``u(sample, <sensor dims...>)``: the input functions at the sensors (name set by
  ``problem.dataset.input``); any number of grid dims, flattened in C order;
- ``s(sample, <query dims...>)``: the outputs on a grid (name set by
  ``problem.dataset.output``); the query points y are the Cartesian product of the
  coordinate variables of its grid dims (ij order, matching the flattening), so y has one
  column per query dim (y_dim = d2); a grid dim without a coordinate variable is taken as
  equispaced on [0, 1].

``sample`` must be the first dimension of both variables, their sample counts must agree,
the two files must have the same grids, the coordinates of the grid dims must be numbers,
no value may be NaN or infinite, and no output may be identically zero (its relative L2
error would be 0/0, NaN, and exclude every model from the fits): each fault raises a
``DatasetError`` naming the file and the problem (and the dim or the samples).

Paths: a relative ``problem.dataset.path`` resolves against the repository root (the
checkout opscale runs from), not the working directory, so a study behaves the same with
any ``snakemake -d``; give an absolute path for files elsewhere.

Seeds and splits: the functions are the files' (the same for every seed); a seed decides
the models' initialisation and which functions go to each split. Seed s orders the train
file by the permutation ``numpy_rng(s, "dataset", "train")``; its first ``n_val``
functions validate and the next ``n_train`` train, so smaller training sets are prefixes
of larger ones and every n shares the validation set. The test split is the test file's
first ``n_test`` functions. With ``problem.dataset.validation: test`` the validation
functions come from the test file instead (seed s permutes it by ``numpy_rng(s,
"dataset", "test")``: first n_val validate, the next n_test test), so the whole train
file can be trained on (needed to reproduce benchmarks trained on every function).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from opscale.config import REPO_ROOT
from opscale.problems.layout import dataset
from opscale.rng import numpy_rng


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and the problem."""


class Table(NamedTuple):
    """The functions of one file: u (N, m) at the sensors, s (N, q) at y (q, d2)."""

    u: np.ndarray
    s: np.ndarray
    y: np.ndarray
    x_sensor: np.ndarray


def resolve(path: str) -> Path:
    """A dataset path as used: relative paths are relative to the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def files(problem: dict) -> dict[str, Path]:
    """The train and test files of a dataset problem."""
    stem = resolve(problem["dataset"]["path"])
    return {part: stem.with_name(f"{stem.name}_{part}.nc") for part in ("train", "test")}


def _fail(problem: dict, path: Path, reason: str):
    where = problem["dataset"]["path"]
    raise DatasetError(f"dataset problem (problem.dataset.path = {where!r}): {path}: {reason}")


def _open(problem: dict, path: Path) -> xr.Dataset:
    if not path.is_file():
        _fail(problem, path, "file not found (relative paths resolve against the repo root)")
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError) as error:
        _fail(problem, path, f"not a readable NetCDF file ({error})")


def _check(problem: dict, path: Path, ds: xr.Dataset) -> None:
    """Raise on a missing variable, mismatched sample counts, wrong dims or NaN/inf."""
    names = {key: problem["dataset"][key] for key in ("input", "output")}
    for key, name in names.items():
        if name not in ds:
            _fail(
                problem,
                path,
                f"no variable {name!r} (problem.dataset.{key}); "
                f"variables: {', '.join(map(str, ds.data_vars))}",
            )
    u, s = (ds[name] for name in names.values())
    if u.shape[0] != s.shape[0]:
        _fail(
            problem,
            path,
            f"mismatched sample counts: {u.name!r} has {u.shape[0]} "
            f"(dim {u.dims[0]!r}), {s.name!r} has {s.shape[0]} (dim {s.dims[0]!r})",
        )
    for var in (u, s):
        if var.dims[0] != "sample" or var.ndim < 2:
            _fail(
                problem,
                path,
                f"wrong dims: {var.name!r} has dims {var.dims}; expected "
                "('sample', <grid dims...>) with at least one grid dim",
            )
        bad = ~np.isfinite(var.values)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            _fail(
                problem,
                path,
                f"{var.name!r} has {int(bad.sum())} NaN/inf values (first in sample {first})",
            )
        _check_coordinates(problem, path, ds, var)
    _check_nonzero(problem, path, s)


def _check_coordinates(problem: dict, path: Path, ds: xr.Dataset, var: xr.DataArray) -> None:
    """Refuse a grid dim of `var` whose coordinate is not numeric (it gives the points)."""
    for dim in var.dims[1:]:
        if dim in ds.coords and not np.issubdtype(ds[dim].dtype, np.number):
            example = ds[dim].values.ravel()[:1].tolist()
            _fail(
                problem,
                path,
                f"the coordinate of dim {dim!r} of {var.name!r} is not numeric (dtype "
                f"{ds[dim].dtype}, e.g. {example[0]!r}); the points of a grid dim must be "
                "numbers (or drop the coordinate: equispaced on [0, 1])",
            )


def _check_nonzero(problem: dict, path: Path, s: xr.DataArray) -> None:
    """Refuse outputs of zero norm: their relative L2 error (0/0) is undefined."""
    norms = np.sqrt(np.square(s.values.reshape(len(s), -1)).sum(axis=1))
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        shown = ", ".join(map(str, zero[:5])) + (", ..." if len(zero) > 5 else "")
        _fail(
            problem,
            path,
            f"{s.name!r} is identically zero in {len(zero)} sample(s) (sample index "
            f"{shown}): the relative L2 error of a zero output is 0/0, undefined; drop "
            "those samples",
        )


def _axis(ds: xr.Dataset, dim: str) -> np.ndarray:
    """Coordinates of a grid dim (equispaced on [0, 1] when the file has none)."""
    return ds[dim].values.astype(float) if dim in ds.coords else np.linspace(0, 1, ds.sizes[dim])


def _table(problem: dict, path: Path, ds: xr.Dataset) -> Table:
    u, s = ds[problem["dataset"]["input"]], ds[problem["dataset"]["output"]]
    mesh = np.meshgrid(*[_axis(ds, dim) for dim in s.dims[1:]], indexing="ij")
    x_sensor = _axis(ds, u.dims[1]) if u.ndim == 2 else np.arange(np.prod(u.shape[1:]), dtype=float)
    return Table(
        u.values.reshape(len(u), -1).astype(float),
        s.values.reshape(len(s), -1).astype(float),
        np.stack([m.ravel() for m in mesh], axis=1),
        x_sensor,
    )


def read(problem: dict) -> dict[str, Table]:
    """The validated train and test tables of a dataset problem.

    Raises
    ------
    DatasetError
        Naming the file and the problem: missing file or variable, mismatched sample
        counts, wrong dims (also: the files' grids differ), NaN or infinite values.
    """
    tables, grids = {}, {}
    for part, path in files(problem).items():
        ds = _open(problem, path)
        _check(problem, path, ds)
        tables[part] = _table(problem, path, ds)
        grids[part] = [ds[problem["dataset"][k]].shape[1:] for k in ("input", "output")]
    if grids["train"] != grids["test"] or not np.allclose(tables["train"].y, tables["test"].y):
        _fail(
            problem,
            files(problem)["test"],
            f"wrong dims: grids {grids['test']} (input, "
            f"output) differ from the train file's {grids['train']}",
        )
    return tables


def _need(problem: dict, path: Path, available: int, wanted: dict) -> None:
    if sum(wanted.values()) > available:
        asked = " + ".join(f"data.{k} = {v}" for k, v in wanted.items())
        _fail(problem, path, f"has {available} samples, fewer than {asked}")


def _rows(seed: int, problem: dict, sizes: dict, counts: dict) -> dict[str, tuple]:
    """(file, row indices) of each split of one seed (see the module docstring)."""
    where = problem["dataset"]["validation"]
    order = numpy_rng(seed, "dataset", where).permutation(counts[where])
    n_val = sizes["n_val"]
    train = (
        order[n_val : n_val + sizes["n_train"]] if where == "train" else np.arange(sizes["n_train"])
    )
    test = (
        np.arange(sizes["n_test"]) if where == "train" else order[n_val : n_val + sizes["n_test"]]
    )
    return {"train": ("train", train), "val": (where, order[:n_val]), "test": ("test", test)}


def build(spec: dict) -> xr.Dataset:
    """The data file of a dataset problem: every seed's splits, in the common layout."""
    problem, sizes = spec["problem"], spec["data"]
    tables = read(problem)
    paths = files(problem)
    where = problem["dataset"]["validation"]
    wanted = {"train": {"n_train": sizes["n_train"]}, "test": {"n_test": sizes["n_test"]}}
    wanted[where] = {"n_val": sizes["n_val"], **wanted[where]}
    for part, asked in wanted.items():
        _need(problem, paths[part], len(tables[part].u), asked)
    counts = {part: len(table.u) for part, table in tables.items()}
    u, s = [], []
    for seed in spec["seeds"]:
        rows = _rows(seed, problem, sizes, counts).values()
        u.append(np.concatenate([tables[part].u[index] for part, index in rows]))
        s.append(np.concatenate([tables[part].s[index] for part, index in rows]))
    split = np.concatenate([[name] * sizes[f"n_{name}"] for name in ("train", "val", "test")])
    train = tables["train"]
    return dataset(np.stack(u), np.stack(s), train.x_sensor, train.y, split, spec["seeds"])


def output_dim(problem: dict) -> int:
    """d2 of a dataset: the number of grid dims of its output variable (train file)."""
    path = files(problem)["train"]
    ds = _open(problem, path)
    name = problem["dataset"]["output"]
    if name not in ds:
        _fail(problem, path, f"no variable {name!r} (problem.dataset.output)")
    return ds[name].ndim - 1
