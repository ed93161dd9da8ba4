"""Reuse the members an earlier job of the same column already trained.

With ``members: [data.n_train]`` one job trains a whole column of the grid (every n of
one model) and its id hashes the list of n, so adding an n gives the column a new id and
Snakemake runs it again. This module makes that job train only the new members: it looks
in the points folder for earlier files of the same column and takes every member (seed,
n) they already hold. Dropping an n trains nothing at all.

What a file records decides whether it belongs to the column, never its name: its job
axes (scalar coordinates, named in ``attrs["axes"]``) hold this job's values, and its
spec (``attrs["config"]``) is this job's except the list of n and the seeds. A renamed
file still counts; a file of another spec does not, whatever its name.

A member's training does not depend on the other members of its batch (its data,
initialisation, budget, schedule, stopping and optimizer state are its own; see
``opscale.train``), so a reused member is the one this job would have trained, up to
floating-point rounding of batched kernels (fp32: 1e-5, see the equivalence tests).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from opscale import cube, grid
from opscale.config import get_path

log = logging.getLogger(__name__)


def earlier_members(spec: dict, out_path: str | Path, pairs: list) -> xr.Dataset | None:
    """Members (seed, n) in `pairs` that earlier point files of the same column hold.

    Only jobs whose ``data.n_train`` is a member axis (a list) reuse; the candidates are
    the point files of `out_path`'s folder (the study's ``StudyLayout.points_dir``) that
    record the same column (see the module's docstring). None when no member is found.
    """
    if not isinstance(spec["data"]["n_train"], list):
        return None
    out_path = Path(out_path)
    wanted, found = set(pairs), []
    for path in sorted(out_path.parent.glob("*.nc")):
        if path != out_path and _same_column(path, spec):
            ds = _members(cube.read_point(path), wanted)
            if ds.sizes["member"]:
                wanted -= set(member_pairs(ds))
                found.append(ds)
                log.info("reusing %d trained member(s) of %s", ds.sizes["member"], path.name)
    return _concat(found) if found else None


def combine(
    earlier: xr.Dataset | None, trained: xr.Dataset | None, pairs: list, spec: dict
) -> xr.Dataset:
    """The job's point file: reused and newly trained members, in the order of `pairs`."""
    parts = [ds for ds in (earlier, trained) if ds is not None]
    ds = _concat(parts) if len(parts) > 1 else parts[0]
    order = {pair: i for i, pair in enumerate(pairs)}
    position = [order[pair] for pair in member_pairs(ds)]
    ds = ds.isel(member=np.argsort(position))
    ds.attrs["config"] = json.dumps(spec, sort_keys=True)
    return cube.describe(ds)


def member_pairs(ds: xr.Dataset) -> list[tuple[int, int]]:
    """(seed, n) of every member of a point dataset."""
    return list(zip(ds.seed.values.tolist(), ds.n_train.values.tolist(), strict=True))


def _same_column(path: Path, spec: dict) -> bool:
    """Whether the point file at `path` was trained with `spec` but another list of n."""
    try:
        # lazily: only the header (attributes, scalar coordinates) is read
        with xr.open_dataset(path, engine="netcdf4") as ds:
            same_axes = _same_job_axes(ds, spec)
            other = cube.study_config(ds)
    except (OSError, ValueError, RuntimeError, KeyError):
        return False  # unreadable or not a point file: not ours to judge (collect reports)
    return same_axes and _without_sizes(other) == _without_sizes(spec)


def _same_job_axes(ds: xr.Dataset, spec: dict) -> bool:
    """Whether every job axis `ds` records holds `spec`'s value on it.

    A file that records ``n_train`` as a job axis (one n per job) fails here, as our
    spec holds a list of n there: its members have no n of their own to reuse.
    """
    recorded = cube.axes(ds)
    return all(ds[name].values.tolist() == get_path(spec, path) for name, path in recorded.items())


def _without_sizes(spec: dict) -> dict:
    spec = grid.hashed(spec)  # a copy, in the form point ids hash (newer defaults left out)
    spec.get("data", {}).pop("n_train", None)
    spec.pop("seeds", None)  # any seed of it that we want is reused, the rest ignored
    return spec


def _members(ds: xr.Dataset, wanted: set) -> xr.Dataset:
    """The members of a point file whose (seed, n) is in `wanted`."""
    return ds.isel(member=[i for i, pair in enumerate(member_pairs(ds)) if pair in wanted])


def _concat(parts: list[xr.Dataset]) -> xr.Dataset:
    return xr.concat(parts, dim="member", join="outer", coords="different", compat="equals")
