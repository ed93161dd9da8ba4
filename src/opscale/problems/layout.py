"""The layout of a data file, shared by every problem builder (see ``opscale.problems``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

SPLITS = ("train", "val", "test")


def dataset(u, s, x_sensor, y, split, seeds, sensor_name="sensor position") -> xr.Dataset:
    """The data-file layout (see the module docstring) with names and units."""
    y_dims = ("query", "y_dim") if y.ndim == 2 else ("seed", "sample", "query", "y_dim")
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
                np.asarray(split).astype(str),
                {"long_name": "train, val or test", "units": "1"},
            ),
            "x_sensor": ("sensor", x_sensor, {"long_name": sensor_name, "units": "1"}),
            "y": (y_dims, y, {"long_name": "query point", "units": "1"}),
        },
    )
