"""Deep ReLU regression on a d-dimensional linear subspace of R^D (``subspace_regression``).

The theory (Liu, Zhang, Liao & Schaeffer 2024) says the rates of a deep ReLU network for
a Lipschitz target depend on the intrinsic dimension d of its inputs, not on the ambient
dimension D. The task puts that to the test: z ~ Uniform([-1, 1]^d), the input is
x = A z in R^D with A (D, d) orthonormal columns, and the target is f(z) = g(A^T x), with
g Lipschitz (``TARGETS``). d is ``problem.dim``, D is ``problem.ambient_dim``; both can
be swept.

Seeds: repetition s draws its own subspace A from ``numpy_rng(s, "subspace")`` (so the
seeds also average over orientations; a network cannot exploit the subspace's alignment
with the axes) and its splits' z from ``numpy_rng(s, "inputs", split)``.
In the data file the D coordinates of x are the "sensors" and the target is one
"query" at y = 0: the ``mlp`` model maps R^D -> R.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from opscale.problems.layout import SPLITS, dataset
from opscale.rng import numpy_rng


def sine_norm(z: np.ndarray) -> np.ndarray:
    """``|sin(pi z)|_2 / sqrt(d)``: Lipschitz (constant pi / sqrt d), not smooth, (n,)."""
    return np.linalg.norm(np.sin(np.pi * z), axis=1) / np.sqrt(z.shape[1])


def distance(z: np.ndarray) -> np.ndarray:
    """``|z - c|_2 / sqrt(d)`` to the point c = (1/2, ..., 1/2): a cone, Lipschitz, (n,)."""
    return np.linalg.norm(z - 0.5, axis=1) / np.sqrt(z.shape[1])


TARGETS = {"sine_norm": sine_norm, "distance": distance}


def subspace(seed: int, ambient_dim: int, dim: int) -> np.ndarray:
    """Orthonormal basis (D, d) of the seed's random subspace (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(numpy_rng(seed, "subspace").standard_normal((ambient_dim, dim)))
    return q * np.sign(np.diag(r))  # unique: the Haar-distributed orientation


def build(spec: dict) -> xr.Dataset:
    """The regression task's data file: u = x (seed, sample, D), s = f (seed, sample, 1)."""
    problem, sizes = spec["problem"], spec["data"]
    d, ambient = problem["dim"], problem["ambient_dim"]
    if d > ambient:
        raise ValueError(f"problem.dim = {d} exceeds problem.ambient_dim = {ambient}")
    u, s = [], []
    for seed in spec["seeds"]:
        basis = subspace(seed, ambient, d)
        z = np.concatenate(
            [
                numpy_rng(seed, "inputs", split).uniform(-1.0, 1.0, (sizes[f"n_{split}"], d))
                for split in SPLITS
            ]
        )
        u.append(z @ basis.T)
        s.append(TARGETS[problem["target"]](z)[:, None])
    split = np.concatenate([[name] * sizes[f"n_{name}"] for name in SPLITS])
    coordinate = np.arange(ambient, dtype=float)
    return dataset(
        np.stack(u),
        np.stack(s),
        coordinate,
        np.zeros((1, 1)),
        split,
        spec["seeds"],
        sensor_name="coordinate of the input x in R^D",
    )
