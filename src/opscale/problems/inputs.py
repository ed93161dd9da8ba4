"""Families of random input functions u on a fine grid of [0, 1].

Contract of a family: ``sample(rng, n, x) -> (n, len(x))`` must draw all its randomness
from `rng` in calls whose leading dimension is `n` (NumPy fills arrays row by row), so the
first k rows never depend on n: smaller training sets are prefixes of larger ones (the
same draws; BLAS may round the last bit of a row differently for a different n).
``tests/test_problems.py`` checks this for every registered family.
"""

from __future__ import annotations

import functools

import numpy as np

# Eigenvalues below this fraction of the largest are round-off, not signal.
KL_RELATIVE_CUTOFF = 1e-10


def rbf_kernel(x: np.ndarray, length_scale: float, variance: float) -> np.ndarray:
    """RBF covariance matrix, ``variance * exp(-(x_i - x_j)^2 / (2 l^2))``, shape (R, R)."""
    diff = x[:, None] - x[None, :]
    return variance * np.exp(-0.5 * (diff / length_scale) ** 2)


KERNELS = {"rbf": rbf_kernel}


@functools.lru_cache(maxsize=8)
def _kl_basis(kernel: str, length_scale: float, variance: float, resolution: int) -> np.ndarray:
    """Columns ``sqrt(lambda_k) v_k`` of the grid covariance's eigenpairs, shape (R, K)."""
    x = np.linspace(0.0, 1.0, resolution)
    eigenvalues, vectors = np.linalg.eigh(KERNELS[kernel](x, length_scale, variance))
    keep = eigenvalues > KL_RELATIVE_CUTOFF * eigenvalues[-1]
    return vectors[:, keep] * np.sqrt(eigenvalues[keep])


def gaussian_random_field(rng: np.random.Generator, n: int, x: np.ndarray, spec: dict):
    """Draw n samples of a zero-mean Gaussian random field on the grid x, shape (n, R).

    Exact for the grid's covariance (Karhunen-Loeve with every non-negligible mode).
    """
    basis = _kl_basis(spec["kernel"], spec["length_scale"], spec["variance"], len(x))
    return rng.standard_normal((n, basis.shape[1])) @ basis.T


FAMILIES = {"grf": gaussian_random_field}
