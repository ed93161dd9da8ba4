"""Data files as torch tensors for training (kept apart: data generation needs no torch)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import xarray as xr

from opscale.problems.layout import SPLITS, part, read


class Split(NamedTuple):
    """One split of a data file as tensors, with a leading member (seed) dimension.

    u (S, n, sensors): inputs at the sensors; s (S, n, q): outputs at the query points;
    y: the query points, (q, y_dim) when every function shares them (aligned data) or
    (S, n, q, y_dim) when each function has its own (unaligned data).
    """

    u: torch.Tensor
    y: torch.Tensor
    s: torch.Tensor


def load_splits(path, dtype, device="cpu") -> dict[str, Split]:
    """The train, val and test splits of a data file as tensors."""
    ds = read(path)

    def tensor(values):
        return torch.as_tensor(np.ascontiguousarray(values), dtype=dtype, device=device)

    def split(data: xr.Dataset) -> Split:  # y: shared (q, y_dim) or per function
        return Split(tensor(data.u.values), tensor(data.y.values), tensor(data.s.values))

    return {name: split(part(ds, name)) for name in SPLITS}
