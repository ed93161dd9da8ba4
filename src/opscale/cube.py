"""NetCDF files of every stage: schema, provenance, atomic writes, and collection.

Point file (one per grid point, written by the ``train`` rule): dims ``member`` (one per
model), ``step`` (logged training steps) and ``eval`` (validation checks). Its variables
and coordinates, with their dims, long_name and units, are declared once in
``opscale.schema.POINT_SCHEMA`` (``python -m opscale.schema`` prints them); each enabled
measure adds the variables of its module's ``VARIABLES`` (``opscale.measures``); every
swept job axis is a scalar coordinate named by its axis name (``model.width`` ->
``width``).

Study cube (``collect``): the same variables on dims = sweep axes + seed (+ step);
points not (yet) trained are NaN with status ``missing``. ``n_params`` is a coordinate
of the model axes (``schema.MODEL_COORDS``): on the ``model.*`` axes, and on another
axis only where it varies along it (``model_coords``).

Every variable and coordinate has ``long_name`` and ``units``; every file carries the
resolved config (JSON), the opscale version and the git commit in its attributes.
Writes go to a temporary file that is renamed into place, so a killed job never leaves
a readable half-written file.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from opscale import __version__
from opscale.config import REPO_ROOT, axis_name, schema_at
from opscale.schema import MODEL_COORDS, POINT_SCHEMA, Variable

OK, DIVERGED, MISSING = 0, 1, 2
STATUS_MEANINGS = "ok diverged missing"


# ------------------------------------------------------------------ metadata accessors
def axes(ds: xr.Dataset) -> dict[str, str]:
    """The swept axes a file records: cube dimension name -> dotted config path."""
    return json.loads(ds.attrs.get("axes", "{}"))


def study_config(ds: xr.Dataset) -> dict:
    """The resolved config a file was made with (a study's config, or a point's spec)."""
    return json.loads(ds.attrs["config"])


ALL_GROUP = "all"  # the label of the one group of a study without grouping axes


def group_label(values: dict) -> str:
    """The label of a fit group, ``modes=8, problem=darcy``; ``all`` without values."""
    plain = {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}
    return ", ".join(f"{k}={v}" for k, v in plain.items()) or ALL_GROUP


def group_labels(frame, names: list[str]):
    """``group_label`` of every row of a DataFrame, over the columns `names` (a Series)."""
    import pandas as pd

    rows = frame[names].itertuples(index=False, name=None)  # keeps each column's type
    return pd.Series(
        [group_label(dict(zip(names, row, strict=True))) for row in rows], frame.index, str
    )


def parse_group_label(label: str) -> dict[str, str]:
    """Axis name -> value (as text) of a label made by ``group_label`` (empty for ``all``)."""
    parts = [p.split("=", 1) for p in label.split(", ") if p != ALL_GROUP]
    return {k: v for k, v in parts}


def point_dataset(
    results: dict, spec: dict, coords: dict, members: dict, measured: xr.Dataset | None = None
) -> xr.Dataset:
    """The point file of one trained job from its per-member result arrays.

    `results` maps every name of ``POINT_SCHEMA`` but the per-member coordinates of
    `members` to its values (the errors, training record, ``n_params``, ``step`` and
    ``eval``). `coords` maps the
    dotted path of each swept job axis to the job's value; each becomes a scalar
    coordinate named by its axis name (``model.width`` -> ``width``). `members` maps
    coordinate names to per-member values (``seed``, and ``n_train`` when the job trains
    several training-set sizes). `measured` holds the variables of the study's measures
    (``opscale.measures``), on ``member`` and their own dimensions.
    """
    ds = dataset({**results, **members}, POINT_SCHEMA)
    ds = ds.assign_coords(
        {axis_name(path): ((), value, axis_attrs(path)) for path, value in coords.items()}
    )
    if measured is not None:
        ds = ds.merge(measured.drop_vars(list(members), errors="ignore"))
    ds.attrs["config"] = json.dumps(spec, sort_keys=True)
    ds.attrs["axes"] = json.dumps({axis_name(path): path for path in coords})
    return describe(ds)


def dataset(values: dict, schema: dict[str, Variable]) -> xr.Dataset:
    """The Dataset of `values` (name -> array) laid out and described as `schema` declares.

    Each value goes on its declared dims with its long_name and units, in the schema's
    order; coordinates become coordinates. Point files and measures are built this way.

    Raises
    ------
    ValueError
        Naming the values the schema does not declare and the required ones missing.
    """
    _check_declared(values, schema)
    variables = {
        name: xr.Variable(var.dims, values[name], var.attrs)
        for name, var in schema.items()
        if name in values
    }
    return xr.Dataset(
        {name: v for name, v in variables.items() if not schema[name].coord},
        coords={name: v for name, v in variables.items() if schema[name].coord},
    )


def _check_declared(values: dict, schema: dict[str, Variable]) -> None:
    """Refuse values outside `schema`, or without one of its required entries."""
    unknown = [name for name in values if name not in schema]
    missing = [name for name, var in schema.items() if var.required and name not in values]
    if unknown or missing:
        raise ValueError(
            f"values do not match the schema: undeclared {unknown or 'none'}, "
            f"missing {missing or 'none'} (declare variables in opscale.schema or a "
            "measure's VARIABLES)"
        )


def axis_attrs(path: str) -> dict:
    """long_name and units of a swept setting, from its schema description."""
    description = (schema_at(path) or {}).get("description", "").split(". ")[0].rstrip(".")
    return {"long_name": f"{description} ({path})" if description else path, "units": "1"}


def describe(ds: xr.Dataset) -> xr.Dataset:
    """Attach long_name/units of ``POINT_SCHEMA``'s variables and the status flag meanings.

    Works on point files and cubes alike (only names and attributes are used, not dims).
    """
    for name in list(ds.data_vars) + list(ds.coords):
        if name in POINT_SCHEMA:
            ds[name].attrs.update(POINT_SCHEMA[name].attrs)
    if "status" in ds:
        ds["status"] = ds["status"].astype("int8")
        ds["status"].attrs.update(
            flag_values=np.array([OK, DIVERGED, MISSING], "int8"), flag_meanings=STATUS_MEANINGS
        )
    return ds


def write(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write `ds` to NetCDF atomically, with provenance attributes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.attrs.update(opscale_version=__version__, git_commit=git_commit(), Conventions="CF-1.10")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read(path: str | os.PathLike) -> xr.Dataset:
    """Load a NetCDF file fully into memory (the file is closed on return)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def collect(paths: list[str], config: dict) -> xr.Dataset:
    """The study cube from point files (any order), on the full grid of the study's sweep.

    Grid points without a file are NaN with status ``missing`` (``opscale collect``
    builds such a cube after a ``--keep-going`` run). Every file is checked first
    (``read_point``, ``off_grid``): if any cannot be read, or holds a model whose axis
    values are not on the study's grid (which the cube would silently drop), nothing is
    collected and the ``PointFileError`` names each bad file and the one command that
    recomputes it.
    """
    sweep = {axis_name(path): (path, list(values)) for path, values in config["sweep"].items()}
    points, bad = _read_points(paths)
    bad |= {path: reason for path, ds in points.items() if (reason := off_grid(ds, sweep))}
    if bad or not points:
        raise PointFileError(bad) if bad else PointFileError({}, "no point file to collect")
    names = list(sweep)
    stacked = xr.concat(
        [_members_with_axes(ds, names) for ds in points.values()],
        dim="member",
        coords="different",
        compat="equals",
        join="outer",
    )
    cube = _unstack(stacked, names)
    cube = cube.reindex({name: values for name, (_, values) in sweep.items()})
    cube["status"] = cube["status"].fillna(MISSING)
    cube = cube.transpose(*names, "seed", ...)
    cube = model_coords(cube, [name for name, (path, _) in sweep.items() if is_model(path)])
    for name, (path, _) in sweep.items():
        cube[name].attrs = axis_attrs(path)
    cube.attrs = {
        "config": json.dumps(config, sort_keys=True),
        "axes": json.dumps({name: path for name, (path, _) in sweep.items()}),
    }
    return describe(cube)


# How to recompute bad point files: Snakemake reruns the job of a file named by --forcerun.
RECOMPUTE = "snakemake --forcerun {files} [your usual options, e.g. --configfile STUDY.yaml]"


class PointFileError(ValueError):
    """Point files that cannot be collected; the message names each one and the fix."""

    def __init__(self, bad: dict[str, str], summary: str | None = None):
        self.bad = dict(bad)
        lines = [f"  {path}: {reason}" for path, reason in self.bad.items()]
        if summary is None:
            files = " ".join(self.bad)
            summary = (
                f"{len(self.bad)} point file(s) cannot be collected, nothing was collected:\n"
                + "\n".join(lines)
                + "\nThe rest of the study is intact. Recompute them with:\n  "
                + RECOMPUTE.format(files=files)
            )
        super().__init__(summary)


def read_point(path: str | os.PathLike) -> xr.Dataset:
    """Read a point file and check it holds every required variable of ``POINT_SCHEMA``.

    Raises
    ------
    PointFileError
        Naming `path`, if it is truncated, corrupt, not NetCDF, or not a point file.
    """
    try:
        ds = read(path)
    except FileNotFoundError:
        raise PointFileError({str(path): "no such file"}) from None
    except (OSError, ValueError, RuntimeError, KeyError) as error:  # netCDF4/HDF5 errors
        reason = f"unreadable, truncated or corrupt ({type(error).__name__}: {error})"
        raise PointFileError({str(path): reason}) from None
    absent = [n for n, var in POINT_SCHEMA.items() if var.required and n not in ds.variables]
    if absent:
        reason = f"not a point file: it lacks {', '.join(absent)}"
        raise PointFileError({str(path): reason})
    return ds


def _read_points(paths: list[str]) -> tuple[dict[str, xr.Dataset], dict[str, str]]:
    """The readable point files, and the reason for each unreadable one (by path)."""
    points, bad = {}, {}
    for path in paths:
        try:
            points[str(path)] = read_point(path)
        except PointFileError as error:
            bad.update(error.bad)
    return points, bad


def off_grid(ds: xr.Dataset, sweep: dict[str, tuple[str, list]]) -> str | None:
    """Why the models of point file `ds` do not land on the study's grid (None if they do).

    `sweep` maps each axis name to its dotted path and values. A model whose coordinate is
    absent, NaN or another value would vanish when the cube is reindexed on the grid.
    """
    for name, (path, values) in sweep.items():
        if name not in ds.coords:
            return f"not on the study's grid: it has no coordinate {name} ({path})"
        found = np.atleast_1d(ds[name].values).tolist()
        strays = sorted({repr(v) for v in found if not any(v == w for w in values)})
        if strays:
            shown = ", ".join(strays)
            return f"not on the study's grid: {name} = {shown}, not one of {path}: {values}"
    return None


def is_model(path: str) -> bool:
    """Whether a swept setting is a model axis (``model.width``, ``model.name``, ...)."""
    return path.startswith("model.")


def model_coords(cube: xr.Dataset, model_dims: list[str]) -> xr.Dataset:
    """`cube` with each of ``MODEL_COORDS`` a coordinate on the dims it depends on.

    Those are `model_dims` (the model axes) and any other dim along which its values
    differ (a swept ``problem.sensors`` changes the sensor layer); along the rest (seed,
    n_train) it is constant and those dims are dropped. A model not trained anywhere on
    the grid has NaN; with none missing the values are integers again.
    """
    for name in MODEL_COORDS:
        if name in cube.variables:
            cube = cube.assign_coords({name: _on_varying_dims(cube[name].variable, model_dims)})
    return cube


def _on_varying_dims(values: xr.Variable, keep: list[str]) -> xr.Variable:
    """`values` without the dims but `keep` along which it is constant (NaN: not known)."""
    for dim in values.dims:
        if dim not in keep and not bool((values.max(dim) > values.min(dim)).any()):
            values = values.max(dim)  # skips NaN: a missing model takes its trained twins'
    finite = np.isfinite(values.values).all()
    if finite and np.issubdtype(values.dtype, np.floating) and (values.values % 1 == 0).all():
        values = values.astype("int64")
    return values


def _unstack(stacked: xr.Dataset, names: list[str]) -> xr.Dataset:
    """Members -> grid dims (axes + seed); a study without sweep axes has only seeds."""
    if not names:  # one index level is not a MultiIndex: nothing to unstack
        return stacked.swap_dims(member="seed")
    return stacked.set_index(member=[*names, "seed"]).unstack("member")


def _members_with_axes(ds: xr.Dataset, names: list[str]) -> xr.Dataset:
    """Broadcast the job's scalar axis coordinates along its members."""
    scalars = [n for n in names if ds[n].dims == ()]
    return ds.assign_coords(
        {n: ("member", np.repeat(ds[n].values, ds.sizes["member"])) for n in scalars}
    )


def collect_cube(paths: list[str], config: dict, out_path: str) -> None:
    """Collect point files into the study cube and write it (atomically)."""
    write(collect(paths, config), out_path)


@functools.cache
def git_commit() -> str:
    """The repository's commit (``-dirty`` if modified), or ``unknown`` outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
