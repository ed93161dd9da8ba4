"""DeepONet (unstacked, Chen-Chen form) as a batched ensemble.

    G(u)(y) ~ sum_k b_k(u) t_k(y) + b0

Branch net: u at the sensors (m) -> p coefficients b_k; linear last layer.
Trunk net: query point y (d) -> p basis functions t_k; activation on its output too, as
in DeepONet's reference implementation (DeepXDE). Layer sizes follow DeepXDE: ``depth``
linear layers of ``width`` units each, the last of size p. With m=100, d=1, width=40,
depth=2, p=40 this is DeepXDE's antiderivative example: 7,401 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from opscale.ensemble import BatchedMLP


class DeepONet(nn.Module):
    """S DeepONets: u (S, n, m) and y -> outputs (S, n, q).

    y is (q, d) when all functions share the query points (aligned data) or (S, n, q, d)
    when each function has its own (unaligned data).
    """

    def __init__(
        self,
        sensors: int,
        y_dim: int,
        width: int,
        depth: int,
        p: int,
        activation: str,
        generators,
        dtype=torch.float32,
    ):
        super().__init__()
        hidden = [width] * (depth - 1)
        self.branch = BatchedMLP([sensors, *hidden, p], activation, generators, dtype)
        self.trunk = BatchedMLP(
            [y_dim, *hidden, p], activation, generators, dtype, final_activation=True
        )
        self.bias = nn.Parameter(torch.zeros(len(generators), 1, 1, dtype=dtype))

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        coefficients = self.branch(u)  # (S, n, p)
        if y.dim() == 2:  # aligned: one trunk evaluation serves every function
            basis = self.trunk(y.expand(coefficients.shape[0], *y.shape))  # (S, q, p)
            return torch.baddbmm(self.bias, coefficients, basis.transpose(1, 2))  # (S, n, q)
        basis = self.trunk(y.flatten(1, 2)).unflatten(1, y.shape[1:3])  # (S, n, q, p)
        return torch.einsum("snp,snqp->snq", coefficients, basis) + self.bias

    def flops(self, n: int, q: int, aligned: bool = True) -> int:
        """Forward FLOPs of one member on n functions at q query points each.

        Aligned data evaluate the trunk once at the q shared points, unaligned data at
        each function's own n * q points.
        """
        p = self.branch.layers[-1].weight.shape[-1]
        trunk_rows = q if aligned else n * q
        return self.branch.flops(n) + self.trunk.flops(trunk_rows) + n * q * (2 * p + 1)


def build(spec: dict, shapes: dict, generators, dtype) -> DeepONet:
    """A DeepONet ensemble from the `model` section of a spec and the data's shapes."""
    return DeepONet(
        shapes["sensors"],
        shapes["y_dim"],
        spec["width"],
        spec["depth"],
        spec["p"] or spec["width"],
        spec["activation"],
        generators,
        dtype,
    )
