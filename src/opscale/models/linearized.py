"""The linearized network (first-order Taylor model) of any batched model.

    f_lin(θ)(u, y) = f(θ0)(u, y) + J_θ f(θ0)(u, y) · (θ - θ0)

(Ortiz-Jiménez, Moosavi-Dezfooli, Frossard 2021, arXiv 2106.06770). The wrapper holds
the base network's initial parameters θ0 as per-member *buffers* (shapes (S, ...), so the
trainer slices them with the members) and trainable parameters θ of the same shapes,
initialised to θ0. The forward is one ``torch.func.jvp`` of the base network, called
functionally (``torch.func.functional_call``) at θ0 along the tangent θ - θ0: the primal
output is f(θ0) and the tangent output is J(θ0)(θ - θ0). Both are differentiable w.r.t.
θ by ordinary autograd, so the training engine (batched AdamW, fused) trains it exactly
like the network: same optimiser, schedule and steps.

The model is affine in θ: its Jacobian is J(θ0) whatever θ is, so its empirical NTK is
constant during training (``opscale.measures.ntk``: kernel distance 0).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jvp

# Forward cost relative to the base forward: the primal pass, plus the tangent pass whose
# every linear layer x W + b takes two matmuls of the same size (dx W and x dW).
FLOPS_FACTOR = 3


class Linearized(nn.Module):
    """The first-order Taylor model of `base` at its current parameters θ0.

    Parameters
    ----------
    base : nn.Module
        A batched model ``base(u, y) -> (S, n, q)`` whose parameters all carry the member
        dimension S first. It is taken over: its parameters become the buffers θ0.
    """

    def __init__(self, base: nn.Module):
        super().__init__()
        self.names = tuple(name for name, _ in base.named_parameters())
        self.theta = nn.ParameterList(p.detach().clone() for p in base.parameters())
        _freeze(base)
        self.base = base  # holds θ0 as buffers (first dim = members)

    def theta0(self) -> dict[str, torch.Tensor]:
        """The expansion point, name -> (S, ...) tensor."""
        buffers = dict(self.base.named_buffers())
        return {name: buffers[name] for name in self.names}

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(θ0)(u, y) + J(θ0)(θ - θ0): u (S, n, m), y (q, d) or (S, n, q, d) -> (S, n, q)."""
        theta0 = self.theta0()
        tangent = {n: t - theta0[n] for n, t in zip(self.names, self.theta, strict=True)}
        out, change = jvp(lambda p: functional_call(self.base, p, (u, y)), (theta0,), (tangent,))
        return out + change

    def flops(self, n: int, q: int, aligned: bool = True) -> int:
        """Forward FLOPs of one member: ``FLOPS_FACTOR`` (3) times the base forward."""
        return FLOPS_FACTOR * self.base.flops(n, q, aligned)


def _freeze(module: nn.Module) -> None:
    """Turn every parameter of `module` (and its submodules) into a buffer of that name."""
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            del sub._parameters[name]
            sub.register_buffer(name, p.detach().clone())


def wrap(model: nn.Module) -> Linearized:
    """The linearized model of `model` at its initial parameters (``model.linearized``)."""
    return Linearized(model)
