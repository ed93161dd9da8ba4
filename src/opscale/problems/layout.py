"""The layout of a data file, shared by every problem builder (see ``opscale.problems``).

``split(sample)`` says which split each function belongs to, and is an index of
``sample``, so ``ds.sel(split="train")`` selects the training functions (in order: a
smaller training set is a prefix). NetCDF stores no index of a non-dimension coordinate:
read a data file with ``read`` (or ``xarray.open_dataset(path).set_xindex("split")``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

SPLITS = ("train", "val", "test")
SELECT = "an index of sample once read: xarray.open_dataset(path).set_xindex('split')"


def dataset(u, s, x_sensor, y, split, seeds, sensor_name="sensor position") -> xr.Dataset:
    """The data-file layout (see the module docstring) with names and units."""
    y_dims = ("query", "y_dim") if y.ndim == 2 else ("seed", "sample", "query", "y_dim")
    ds = xr.Dataset(
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
                np.asarray(split).astype(str),
                {
                    "long_name": "split of the function: train, val or test",
                    "units": "1",
                    "comment": SELECT,
                },
            ),
            "x_sensor": ("sensor", x_sensor, {"long_name": sensor_name, "units": "1"}),
            "y": (y_dims, y, {"long_name": "query point", "units": "1"}),
        },
    )
    return indexed(ds)


def indexed(ds: xr.Dataset) -> xr.Dataset:
    """`ds` with ``split`` an index of ``sample`` (``ds.sel(split="val")`` works)."""
    return ds if "split" in ds.xindexes else ds.set_xindex("split")


def part(ds: xr.Dataset, name: str) -> xr.Dataset:
    """The functions of split `name`, on ``sample`` even if there is one of them.

    ``ds.sel(split=name)`` is the same but for a split of one function, which (as any
    selection of a single label) drops the ``sample`` dimension.
    """
    return ds.sel(split=ds["split"] == name)


def read(path) -> xr.Dataset:
    """A data file, loaded into memory (the file is closed), with ``split`` indexed."""
    with xr.open_dataset(path) as ds:
        return indexed(ds.load())
