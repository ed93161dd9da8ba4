"""Empirical neural tangent kernel of each member: target alignment and kernel distance.

For member i, on a seeded subsample of P functions (``measure.ntk.functions``) of its own
training functions (its first n_train) and of the test functions, times a subsample of Q
query points (``measure.ntk.queries``; null = all), the empirical NTK is

    Θ = J Jᵀ,  J = ∂f(u_a)(y_b) / ∂θ  of shape (P·Q, N)

(computed for all members at once with ``torch.func.vjp`` and ``vmap`` over the batched
model, called functionally). Measured at initialisation (``start``) and on the reported state
(``finish``), with y the (P·Q,) targets, three kernel–target alignments (``FORMS``):

- ``unnormalised``: ``yᵀΘy / ‖y‖² = ‖Jᵀy‖² / ‖y‖²``, the form the authors' code computes
  (Ortiz-Jiménez et al. 2021, arXiv 2106.06770; github.com/gortizji/linearized-networks,
  ``neural_kernels/ntk.py``: the energy of the label-weighted Jacobian over the labels'
  energy, not divided by ‖Θ‖_F). It is a Rayleigh quotient: between the smallest and
  the largest eigenvalue of Θ, so it also grows when the kernel only grows in scale.
  Units of Θ (s squared, per unit parameter squared);
- ``normalised``: ``yᵀΘy / (‖Θ‖_F ‖y‖²)`` (Cristianini et al. 2002's alignment of Θ with
  y yᵀ), scale-free, uncentred: in [0, 1] for PSD Θ, 1 for Θ ∝ y yᵀ. Targets with a
  large mean make it mostly measure how well Θ carries the constant function;
- ``centred``: the centred kernel alignment of Cortes, Mohri & Rostamizadeh 2012,
  ``<HΘH, ỹỹᵀ>_F / (‖HΘH‖_F ‖ỹ‖²) = ỹᵀΘỹ / (‖HΘH‖_F ‖ỹ‖²)`` with H = I − 11ᵀ/M and
  ỹ = H y the centred targets (the identity holds since Hỹ = ỹ): blind to a constant
  offset in kernel and targets; in [0, 1], 1 for Θ = y yᵀ + c 11ᵀ, 1/√(M−1) for
  c 11ᵀ + ε I, and 0 (by convention) when HΘH = 0, a constant kernel.

And the kernel distance ``1 - <Θ0, Θ1>_F / (‖Θ0‖_F ‖Θ1‖_F)`` between the kernels at
initialisation (Θ0) and at the end (Θ1) on the same subsample (0 for a linearized
model, whose Jacobian does not depend on θ).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import xarray as xr
from torch.func import functional_call, vjp, vmap

from opscale import cube
from opscale.rng import numpy_rng
from opscale.schema import MEMBER, Variable

SPLITS = ("train", "test")
WHEN = {"init": "initialisation", "end": "the end of training"}


# ------------------------------------------------------------------ alignments
CONSTANT = 1e-12  # ‖HΘH‖_F / ‖Θ‖_F below this: Θ is constant up to float64 rounding


def unnormalised_alignment(kernel: torch.Tensor, target: torch.Tensor) -> float:
    """yᵀΘy / ‖y‖², the authors' code's form; Θ (M, M), y (M,)."""
    y = target.double().reshape(-1)
    return float(y @ kernel @ y / (y @ y))


def alignment(kernel: torch.Tensor, target: torch.Tensor) -> float:
    """Uncentred kernel–target alignment yᵀΘy / (‖Θ‖_F ‖y‖²); Θ (M, M), y (M,)."""
    return unnormalised_alignment(kernel, target) / float(torch.linalg.matrix_norm(kernel))


def centred_alignment(kernel: torch.Tensor, target: torch.Tensor) -> float:
    """Centred alignment ỹᵀΘỹ / (‖HΘH‖_F ‖ỹ‖²), H = I - 11ᵀ/M, ỹ = Hy (Cortes et al. 2012).

    0 where the centred kernel HΘH vanishes (Θ constant: it carries no variation to align
    with). Θ (M, M), y (M,); a constant target (ỹ = 0) has no defined alignment: NaN.
    """
    centred = kernel - kernel.mean(0, keepdim=True)
    centred = centred - centred.mean(1, keepdim=True)  # HΘH
    norm = torch.linalg.matrix_norm(centred)
    if norm <= CONSTANT * torch.linalg.matrix_norm(kernel):
        return 0.0
    y = target.double().reshape(-1)
    y = y - y.mean()
    return float(y @ kernel @ y / (norm * (y @ y)))


# form -> (function, long_name, units): the alignments the measure stores
FORMS = {
    "unnormalised": (
        unnormalised_alignment,
        "kernel-target alignment y^T K y / |y|^2 (the authors' code; in the units of s squared)",
        "1",
    ),
    "normalised": (
        alignment,
        "kernel-target alignment y^T K y / (|K|_F |y|^2), uncentred",
        "1",
    ),
    "centred": (
        centred_alignment,
        "centred kernel-target alignment (H y)^T K (H y) / (|H K H|_F |H y|^2), H = I - 1 1^T / M",
        "1",
    ),
}


def alignment_name(form: str, split: str, when: str) -> str:
    """The variable of one alignment form on one split at one time."""
    return f"ntk_alignment_{form}_{split}_{when}"


def _split_variables(split: str) -> dict[str, Variable]:
    """The measure's variables of one split, in the order ``finish`` stores them."""
    alignments = {
        alignment_name(form, split, when): Variable(
            MEMBER, f"{description} of the empirical NTK on {split} data at {label}", units
        )
        for form, (_, description, units) in FORMS.items()
        for when, label in WHEN.items()
    }
    distance = Variable(
        MEMBER,
        f"kernel distance between the empirical NTK at initialisation and at the end "
        f"({split} data)",
        "1",
    )
    return {**alignments, f"ntk_distance_{split}": distance}


VARIABLES = {name: v for split in SPLITS for name, v in _split_variables(split).items()}


class NTK:
    """The ``ntk`` measure of one job (see the module docstring).

    Parameters
    ----------
    options : dict
        ``functions`` (P) and ``queries`` (Q, or None for all) of the subsample: the
        resolved ``measure.ntk`` section (schema defaults filled in at validation).
    spec : dict
        The point's resolved spec (unused beyond the options).
    members : opscale.train.Members
        Seeds and training-set sizes of the job's members (they seed the subsamples).
    """

    def __init__(self, options: dict, spec: dict, members):
        self.options = options
        self.members = members
        self.initial: dict[str, list[torch.Tensor]] = {}
        self.aligned: dict[str, np.ndarray] = {}  # variable -> (S,)

    def start(self, model, data: dict) -> None:
        """Kernels and alignments at initialisation."""
        for split in SPLITS:
            self.initial[split] = self.kernels(model, data, split)
            self.aligned |= self._alignments(data, split, "init", self.initial[split])

    def finish(self, model, data: dict) -> xr.Dataset:
        """Alignments at the end and distances to the initial kernels, on ``member``."""
        values = dict(self.aligned)
        for split in SPLITS:
            end = self.kernels(model, data, split)
            values |= self._alignments(data, split, "end", end)
            values[f"ntk_distance_{split}"] = np.array(
                [kernel_distance(a, b) for a, b in zip(self.initial[split], end, strict=True)]
            )
        return cube.dataset(values, VARIABLES)

    # ------------------------------------------------------------------ subsamples
    def rows(self, i: int, split: str, available: int) -> np.ndarray:
        """Functions of member i's subsample of `split`, sorted, (P,)."""
        rng = numpy_rng(int(self.members.seed[i]), "ntk", split, int(self.members.n_train[i]))
        n = available if split != "train" else int(self.members.n_train[i])
        return np.sort(rng.choice(n, min(self.options["functions"], n), replace=False))

    def columns(self, i: int, q: int) -> np.ndarray:
        """Query points of member i's subsample (the same on every split), sorted, (Q,)."""
        if self.options["queries"] is None:
            return np.arange(q)
        rng = numpy_rng(int(self.members.seed[i]), "ntk", "queries")
        return np.sort(rng.choice(q, min(self.options["queries"], q), replace=False))

    def subsample(self, data: dict, split: str) -> Subsample:
        """Every member's subsample of `split`, padded to the largest P (see `Subsample`)."""
        u, y, s = data[split]
        picked = [self.rows(i, split, u.shape[1]) for i in range(len(self.members))]
        sizes = np.array([len(r) for r in picked])
        rows = np.stack([np.resize(r, sizes.max()) for r in picked])  # pad by repeating
        cols = np.stack([self.columns(i, s.shape[-1]) for i in range(len(self.members))])
        rows, cols = (torch.as_tensor(a, device=u.device) for a in (rows, cols))
        members = torch.arange(len(rows), device=u.device)[:, None]
        y = y if y.dim() == 2 else y[members, rows]
        targets = torch.gather(s[members, rows], 2, cols[:, None].expand(-1, rows.shape[1], -1))
        return Subsample(u[members, rows], y, cols, targets, sizes * cols.shape[1])

    # ------------------------------------------------------------------ kernels
    def kernels(self, model, data: dict, split: str) -> list[torch.Tensor]:
        """Every member's empirical NTK on its subsample of `split`, each (P·Q, P·Q)."""
        return batched_kernels(model, self.subsample(data, split))

    def _alignments(self, data: dict, split: str, when: str, kernels: list) -> dict:
        """Every form's alignment of every member's kernel with its targets, name -> (S,)."""
        sub = self.subsample(data, split)
        targets = [t.reshape(-1)[:m] for t, m in zip(sub.targets, sub.valid, strict=True)]
        pairs = list(zip(kernels, targets, strict=True))
        return {
            alignment_name(form, split, when): np.array([measure(k, t) for k, t in pairs])
            for form, (measure, _, _) in FORMS.items()
        }


class Subsample(NamedTuple):
    """The NTK's inputs for all S members: u (S, P, m); y (q, d) or (S, P, q, d); cols
    (S, Q) query points kept; targets (S, P, Q); valid (S,) outputs P_i·Q of member i
    (members with fewer than P functions are padded with repeats, cut off again)."""

    u: torch.Tensor
    y: torch.Tensor
    cols: torch.Tensor
    targets: torch.Tensor
    valid: np.ndarray


def batched_jacobian(model, sub: Subsample) -> torch.Tensor:
    """Each member's ∂ outputs / ∂ its parameters on its subsample, (S, P·Q, N).

    Members are independent, so one vector-Jacobian product with the same one-hot
    cotangent in every member gives every member's row at once: P·Q products in all
    (vmapped), not S·P·Q.
    """
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def outputs(p):  # (S, P·Q)
        out = functional_call(model, {**p, **buffers}, (sub.u, sub.y))
        index = sub.cols[:, None].expand(-1, out.shape[1], -1)
        return torch.gather(out, 2, index).flatten(1)

    with torch.enable_grad():
        out, pullback = vjp(outputs, params)
        eye = torch.eye(out.shape[1], dtype=out.dtype, device=out.device)
        rows = vmap(pullback)(eye[:, None].expand(-1, out.shape[0], -1))[0]
    return torch.cat([j.transpose(0, 1).flatten(2) for j in rows.values()], dim=2)


def batched_kernels(model, sub: Subsample) -> list[torch.Tensor]:
    """Empirical NTK Θ = J Jᵀ of every member (float64), each (P_i·Q, P_i·Q)."""
    jac = batched_jacobian(model, sub).double()
    return [j[:m] @ j[:m].T for j, m in zip(jac, sub.valid, strict=True)]


def kernel_distance(first: torch.Tensor, second: torch.Tensor) -> float:
    """1 - <Θ0, Θ1>_F / (‖Θ0‖_F ‖Θ1‖_F): 0 for proportional kernels, at most 1 (PSD)."""
    inner = (first * second).sum()
    norms = torch.linalg.matrix_norm(first) * torch.linalg.matrix_norm(second)
    return float(1 - inner / norms)
