"""Measure ``iteration``: how an iterated operator behaves when iterated (Zappala et al. 2023).

For a trained ``opscale.models.iterative`` model, on the test functions:

- ``iteration_error(member, k_eval)``: relative L2 test error of y_K for K = each
  ``measure.iteration.k_eval`` (K_eval; K_eval = K_train is the trained model);
- ``residual(member, iteration)``: r_k = ||y_k - y_{k-1}|| for k = 1..max K_eval, the
  root mean square over the test functions and query points (a scaled Euclidean norm,
  so r_{k+1} <= rho r_k whenever the relaxed map is rho-Lipschitz on each function);
- ``block_lipschitz(member, iteration)``: the local Lipschitz constant, in the Euclidean
  norm on the q query values, of the block applied at iteration k with respect to its
  iterate input y_{k-1}: the spectral norm ||d T_k / d y||_2 at y_{k-1}, by power
  iteration on J^T J (``torch.func`` jvp and vjp), the maximum over the first
  ``functions`` test functions;
- ``lipschitz(member)``: L-hat, the maximum of block_lipschitz over the rate window, the
  iterations k >= ``window_start(member)`` = K_train, beyond those trained, where one map
  repeats (the shared block, or the last of the non-shared blocks);
- ``predicted_rate(member)``: a + (1 - a) L-hat, the contraction bound of the relaxed map;
  when it is below 1 it is a sufficient condition for the residuals to decay at least
  geometrically with that rate (an upper bound, never a prediction of the rate itself);
- ``spectral_radius(member)``: the largest, over every test function, spectral radius of
  the Jacobian of the relaxed map y -> a y + (1 - a) T(u, y) (of the repeated block) at the
  final iterate y_K, K = max K_eval: a I + (1 - a) dT/dy, a q x q matrix per function,
  exact (q jvps) and its eigenvalues in float64. Near a fixed point y* the error obeys
  y_(k+1) - y* ~ M (y_k - y*), so each function's residuals decay asymptotically at the
  spectral radius of its M, and the RMS over functions at the largest of them: the
  falsifiable, two-sided prediction of the late residual rate (when y_K is near a fixed
  point, i.e. when the residuals have decayed);
- ``spectral_radius_median(member)``: the median of the same over the test functions;
- ``relaxed_norm(member)``: the largest, over the test functions, operator 2-norm
  ||a I + (1 - a) dT/dy||_2 at y_K: a local upper bound of the late rate (r_(k+1) <= its
  value times r_k to first order), >= the spectral radius.

L-hat is a local estimate along the test trajectories: a lower bound of the block's
global Lipschitz constant, by power iteration from below (so a + (1 - a) L-hat can
under-estimate the contraction constant). The trajectory and every quantity derived from
it are computed on a float64 copy of the model, so that the residuals decay geometrically
for many iterations before they reach round-off.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import xarray as xr

from opscale import cube
from opscale.evaluate import relative_l2
from opscale.rng import torch_generator
from opscale.schema import MEMBER, Variable


class IterationMeasure:
    """Error vs K_eval, residuals and the block's Lipschitz constant of an iterative model."""

    def __init__(self, options: dict, spec: dict, members):
        if spec["model"]["name"] != "iterative":
            raise ValueError(
                f"measure.iteration: needs model.name 'iterative', not {spec['model']['name']!r}"
            )
        self.k_eval = sorted(options["k_eval"])
        self.functions, self.power_steps = options["functions"], options["power_iterations"]
        self.seeds = [int(seed) for seed in members.seed]

    def start(self, model, data: dict) -> None:
        """Nothing to record at initialisation."""

    def finish(self, model, data: dict) -> xr.Dataset:
        """The measured variables of every member (see the module docstring)."""
        model, u, s = _float64(model), data["test"].u.double(), data["test"].s.double()
        with torch.no_grad():
            iterates = model.trajectory(u, max(self.k_eval))  # K + 1 of (S, n, q)
        errors = torch.stack([relative_l2(iterates[k], s) for k in self.k_eval], -1)
        steps = block_lipschitz(model, u, iterates, self._starts(u, s.shape[-1]), self.power_steps)
        start = window_start(model)
        lipschitz = steps[:, start - 1 :].max(dim=1).values
        a = model.relaxation
        jacobian = relaxed_jacobian(model, u, iterates[-1], len(iterates) - 1)
        radius = spectral_radius(jacobian)
        measured = {
            "iteration_error": errors,
            "residual": residuals(iterates),
            "block_lipschitz": steps,
            "lipschitz": lipschitz,
            "predicted_rate": a + (1 - a) * lipschitz,
            "window_start": np.full(len(self.seeds), start),
            "spectral_radius": radius.amax(dim=-1),
            "spectral_radius_median": radius.quantile(0.5, dim=-1),
            "relaxed_norm": torch.linalg.matrix_norm(jacobian, ord=2).amax(dim=-1),
        }
        return dataset(measured, self.k_eval, len(iterates) - 1)

    def _starts(self, u: torch.Tensor, queries: int) -> torch.Tensor:
        """Random unit start vectors of the power iterations, one stream per member."""
        shape = (min(self.functions, u.shape[1]), queries)
        draws = [torch.randn(shape, generator=torch_generator(s, "power")) for s in self.seeds]
        return torch.stack(draws).to(u)


def _float64(model):
    """A float64 copy of the model (the trained one is left as it is)."""
    return copy.deepcopy(model).to(torch.float64)


def residuals(iterates: list[torch.Tensor]) -> torch.Tensor:
    """r_k = RMS of y_k - y_{k-1} over functions and query points, k = 1..K: (S, K)."""
    steps = torch.stack([b - a for a, b in zip(iterates[:-1], iterates[1:], strict=True)], 1)
    return steps.square().mean(dim=(-2, -1)).sqrt()


def window_start(model) -> int:
    """First residual index k of the rate window: K_train, for shared and non-shared blocks.

    From there on one map repeats (the last block, for non-shared blocks) and the
    iterations go beyond those the model was trained with; the first ones, from y_0 = 0,
    are a transient the trained block need not contract on.
    """
    return model.iterations


def block_lipschitz(model, u, iterates, start: torch.Tensor, steps: int) -> torch.Tensor:
    """Local Lipschitz constant of the block of each iteration at its input, (S, K).

    Iteration k (1-based) applies block k-1 at y_{k-1}; the spectral norm of its Jacobian
    in y is estimated at the first F test functions (`start` is (S, F, q)), by `steps`
    power iterations, and maximised over them. The iterations that share a block are
    estimated in one batch (their rows side by side).
    """
    functions, count = start.shape[1], len(iterates) - 1
    blocks = [min(k, len(model.blocks) - 1) for k in range(count)]
    out = torch.empty(start.shape[0], count, dtype=start.dtype, device=start.device)
    for block in sorted(set(blocks)):
        ks = [k for k in range(count) if blocks[k] == block]
        y = torch.cat([iterates[k][:, :functions] for k in ks], dim=1).detach()
        u_rows = u[:, :functions].repeat(1, len(ks), 1)
        norms = spectral_norm(
            lambda y, b=block, u=u_rows: model.update(b, u, y),
            y,
            start.repeat(1, len(ks), 1),
            steps,
        )
        out[:, ks] = norms.unflatten(1, (len(ks), functions)).amax(dim=-1)
    return out.detach()


def relaxed_jacobian(model, u: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Jacobian of the relaxed step k (0-based), a I + (1 - a) dT_k/dy, at y: (S, n, q, q).

    Entry [..., i, j] is d y_(k+1),i / d y_k,j. Each (member, function) row of the step
    depends only on its own row of y, so pushing the j-th unit vector through every row
    at once (one jvp) gives column j of every row's Jacobian: q jvps in all.
    """
    u, y = u.detach(), y.detach()
    basis = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    columns = [
        torch.func.jvp(lambda y: model.step(k, u, y), (y,), (e.expand_as(y),))[1] for e in basis
    ]
    return torch.stack(columns, dim=-1).detach()


def spectral_radius(matrices: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue modulus of each square matrix (..., q, q) -> (...), in float64."""
    return torch.linalg.eigvals(matrices.to(torch.float64)).abs().amax(dim=-1)


def spectral_norm(fn, y: torch.Tensor, start: torch.Tensor, steps: int = 30) -> torch.Tensor:
    """||d fn / d y||_2 per row by power iteration on J^T J.

    fn maps y (S, F, q) to (S, F, q) row by row (each (member, function) row depends only
    on its own input row, as a batched block does); `start` (S, F, q) is the first vector.
    Returns (S, F): ||J v|| for the final unit v, a lower bound converging to the largest
    singular value.
    """
    _, pullback = torch.func.vjp(fn, y)
    v = _unit(start)
    for _ in range(steps):
        v = _unit(pullback(torch.func.jvp(fn, (y,), (v,))[1])[0])
    return torch.linalg.vector_norm(torch.func.jvp(fn, (y,), (v,))[1], dim=-1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each row of v scaled to unit Euclidean norm (zero rows stay zero)."""
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-30)


VARIABLES = {
    "iteration_error": Variable((*MEMBER, "k_eval"), "test relative L2 error at K_eval", "1"),
    "residual": Variable(
        (*MEMBER, "iteration"), "residual ||y_k - y_(k-1)|| (RMS over test, in the units of s)", "1"
    ),
    "block_lipschitz": Variable(
        (*MEMBER, "iteration"), "local Lipschitz constant of block k in y", "1"
    ),
    "lipschitz": Variable(MEMBER, "L-hat: Lipschitz constant of the repeated block", "1"),
    "predicted_rate": Variable(MEMBER, "predicted residual rate a + (1 - a) L-hat", "1"),
    "window_start": Variable(MEMBER, "first iteration k of the residual-rate window", "1"),
    "spectral_radius": Variable(
        MEMBER, "spectral radius of a I + (1 - a) dT/dy at y_K, largest over test functions", "1"
    ),
    "spectral_radius_median": Variable(
        MEMBER, "spectral radius of a I + (1 - a) dT/dy at y_K, median over test functions", "1"
    ),
    "relaxed_norm": Variable(
        MEMBER, "2-norm of a I + (1 - a) dT/dy at y_K, largest over test functions", "1"
    ),
    "k_eval": Variable(("k_eval",), "K_eval: iterations applied at test time", "1", coord=True),
    "iteration": Variable(("iteration",), "iteration k", "1", coord=True),
}


def dataset(measured: dict, k_eval: list[int], iterations: int) -> xr.Dataset:
    """The measured per-member values (arrays or tensors) and their coordinates, described."""
    values = {name: _numpy(value) for name, value in measured.items()}
    values |= {"k_eval": np.asarray(k_eval), "iteration": np.arange(1, iterations + 1)}
    return cube.dataset(values, VARIABLES)


def _numpy(values) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
