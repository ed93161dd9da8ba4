"""Families of random input functions u on a fine grid of [0, 1].

Contract of a family: ``sample(rng, n, x, spec) -> (n, len(x))`` must draw all its
randomness from `rng` in calls whose leading dimension is `n` (NumPy fills arrays row by
row), so the first k rows never depend on n: smaller training sets are prefixes of larger
ones (the same draws; BLAS may round the last bit of a row differently for a different n).
``tests/test_problems.py`` checks this for every registered family.

Families (``problem.inputs.family``):

- ``grf``: zero-mean Gaussian random field with an RBF or Matern kernel (``KERNELS``),
  drawn exactly for the grid's covariance by Karhunen-Loeve with every mode above
  ``KL_RELATIVE_CUTOFF`` of the largest: the draws span exactly that many dimensions
  (``kl_spectrum``: the count, and b_eff at 99% and 99.9% of the energy), the field itself
  infinitely many.
- ``sine``, ``legendre``, ``chebyshev``: finite series ``u = sum_k sigma_k c_k phi_k`` of
  ``modes = b`` basis functions (``BASES``). Sine and Legendre bases are orthonormal in
  L2(0, 1); Chebyshev polynomials are orthogonal only for their weight, but span the same
  b-dimensional space of polynomials as Legendre's. Either way every u lies in a fixed
  b-dimensional space: b is an exact intrinsic dimension (``registry.FAMILY_DIMS``). The
  coefficients c_k are i.i.d. with unit variance (``COEFFICIENTS``: normal, or uniform on
  [-sqrt 3, sqrt 3]) and decay as sigma_k proportional to k^-decay, k = 1..b, scaled so
  that sum_k sigma_k^2 = 1: for an orthonormal basis E |u|^2_L2 = 1 whatever b, so the
  inputs of a b-sweep have the same size and only their dimension changes.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial import chebyshev, legendre
from scipy.special import gammaln, kve

# Eigenvalues below this fraction of the largest are round-off, not signal.
KL_RELATIVE_CUTOFF = 1e-10


def rbf_kernel(x: np.ndarray, length_scale: float, variance: float, nu=None) -> np.ndarray:
    """RBF covariance matrix, ``variance * exp(-(x_i - x_j)^2 / (2 l^2))``, shape (R, R)."""
    diff = x[:, None] - x[None, :]
    return variance * np.exp(-0.5 * (diff / length_scale) ** 2)


def matern_kernel(x: np.ndarray, length_scale: float, variance: float, nu: float) -> np.ndarray:
    """Matern covariance matrix of smoothness nu, shape (R, R).

    ``variance * 2^(1-nu) / Gamma(nu) * (sqrt(2 nu) r / l)^nu * K_nu(sqrt(2 nu) r / l)``;
    nu = 1/2 is the exponential kernel, nu -> infinity the RBF kernel.
    """
    scaled = np.sqrt(2 * nu) * np.abs(x[:, None] - x[None, :]) / length_scale
    safe = np.where(scaled == 0, 1.0, scaled)  # the diagonal is set to 1 below
    # in logs (kve = kv * e^r), so that large nu does not overflow Gamma(nu)
    log_values = (1 - nu) * np.log(2) - gammaln(nu) + nu * np.log(safe)
    values = np.exp(log_values + np.log(kve(nu, safe)) - safe)
    return variance * np.where(scaled == 0, 1.0, values)


KERNELS = {"rbf": rbf_kernel, "matern": matern_kernel}


@functools.lru_cache(maxsize=8)
def _kl_eigenpairs(
    kernel: str, length_scale: float, variance: float, nu: float, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """The grid covariance's kept eigenpairs (ascending), above the round-off cutoff."""
    x = np.linspace(0.0, 1.0, resolution)
    eigenvalues, vectors = np.linalg.eigh(KERNELS[kernel](x, length_scale, variance, nu))
    keep = eigenvalues > KL_RELATIVE_CUTOFF * eigenvalues[-1]
    return eigenvalues[keep], vectors[:, keep]


def _kl_basis(
    kernel: str, length_scale: float, variance: float, nu: float, resolution: int
) -> np.ndarray:
    """Columns ``sqrt(lambda_k) v_k`` of the grid covariance's eigenpairs, shape (R, K)."""
    eigenvalues, vectors = _kl_eigenpairs(kernel, length_scale, variance, nu, resolution)
    return vectors * np.sqrt(eigenvalues)


ENERGY_SHARES = (0.99, 0.999)  # shares of the KL energy at which b_eff is reported


def kl_spectrum(problem: dict) -> dict | None:
    """How many dimensions a resolved problem's GRF inputs really span (None: not a GRF).

    The generator keeps every KL mode above ``KL_RELATIVE_CUTOFF`` of the largest, so its
    inputs lie in exactly ``modes`` dimensions; ``b_eff[share]`` is the fewest leading
    modes that carry that share of the expected energy E|u|^2 (the eigenvalues' sum).
    """
    inputs = problem.get("inputs", {})
    if inputs.get("family") != "grf":
        return None
    eigenvalues, _ = _kl_eigenpairs(
        inputs["kernel"],
        inputs["length_scale"],
        inputs["variance"],
        inputs.get("nu"),
        problem["resolution"],
    )
    return {
        "modes": len(eigenvalues),
        "b_eff": {share: effective_dimension(eigenvalues, share) for share in ENERGY_SHARES},
    }


def effective_dimension(eigenvalues: np.ndarray, share: float) -> int:
    """The fewest leading eigenvalues whose sum reaches `share` of the total."""
    energy = np.cumsum(np.sort(eigenvalues)[::-1])
    return int(np.searchsorted(energy, share * energy[-1] * (1 - 1e-12)) + 1)


def gaussian_random_field(rng: np.random.Generator, n: int, x: np.ndarray, spec: dict):
    """Draw n samples of a zero-mean Gaussian random field on the grid x, shape (n, R).

    Exact for the grid's covariance (Karhunen-Loeve with every non-negligible mode).
    `spec` holds ``kernel``, ``length_scale``, ``variance`` and (Matern) ``nu``.
    """
    basis = _kl_basis(spec["kernel"], spec["length_scale"], spec["variance"], spec["nu"], len(x))
    return rng.standard_normal((n, basis.shape[1])) @ basis.T


def sine_basis(x: np.ndarray, modes: int) -> np.ndarray:
    """Orthonormal sines ``sqrt(2) sin(k pi x)``, k = 1..modes, shape (modes, R)."""
    k = np.arange(1, modes + 1)[:, None]
    return np.sqrt(2.0) * np.sin(np.pi * k * x[None])


def legendre_basis(x: np.ndarray, modes: int) -> np.ndarray:
    """Orthonormal shifted Legendre ``sqrt(2k+1) P_k(2x-1)``, k = 0..modes-1, (modes, R)."""
    scale = np.sqrt(2 * np.arange(modes) + 1.0)
    return scale[:, None] * legendre.legvander(2 * x - 1, modes - 1).T


def chebyshev_basis(x: np.ndarray, modes: int) -> np.ndarray:
    """Shifted Chebyshev polynomials ``T_k(2x-1)``, k = 0..modes-1, shape (modes, R)."""
    return chebyshev.chebvander(2 * x - 1, modes - 1).T


BASES = {"sine": sine_basis, "legendre": legendre_basis, "chebyshev": chebyshev_basis}

COEFFICIENTS = {  # i.i.d. coefficient draws of unit variance, shape (n, modes)
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform": lambda rng, shape: rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), shape),
}


def finite_series(rng: np.random.Generator, n: int, x: np.ndarray, spec: dict, basis: str):
    """Draw n random series ``sum_k sigma_k c_k phi_k(x)`` of `modes` terms, shape (n, R).

    sigma_k is proportional to k^-decay with sum_k sigma_k^2 = 1.

    `spec` holds ``modes`` (b), ``coefficients`` (a ``COEFFICIENTS`` key) and ``decay``.
    """
    modes = spec["modes"]
    decay = np.arange(1, modes + 1, dtype=float) ** -spec["decay"]
    decay /= np.linalg.norm(decay)  # E |u|^2_L2 = 1 for an orthonormal basis, for every b
    coefficients = COEFFICIENTS[spec["coefficients"]](rng, (n, modes))
    return (coefficients * decay) @ BASES[basis](x, modes)


FAMILIES = {
    "grf": gaussian_random_field,
    **{name: functools.partial(finite_series, basis=name) for name in BASES},
}
