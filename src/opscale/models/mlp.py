"""Deep ReLU network (MLP) as a batched ensemble: inputs at the sensors -> all outputs.

    u (S, n, m) -> (S, n, q)

``depth`` linear layers, ``width`` units in each hidden layer, activation between layers
and none on the output. Used for regression on R^D (q = 1: the deep ReLU scaling law)
and as a plain operator-learning baseline (q outputs at fixed query points). It ignores
the query points y, so it needs aligned data.
"""

from __future__ import annotations

import torch
from torch import nn

from opscale.ensemble import BatchedMLP


class MLP(nn.Module):
    """S MLPs; u (S, n, m) -> (S, n, q)."""

    def __init__(
        self,
        inputs: int,
        outputs: int,
        width: int,
        depth: int,
        activation: str,
        generators,
        dtype=torch.float32,
    ):
        super().__init__()
        self.net = BatchedMLP(
            [inputs, *[width] * (depth - 1), outputs], activation, generators, dtype
        )

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError("the mlp model needs aligned data (the same query points for all)")
        return self.net(u)

    def flops(self, n: int, q: int, aligned: bool = True) -> int:
        """Forward FLOPs of one member on n inputs."""
        return self.net.flops(n)


def build(spec: dict, shapes: dict, generators, dtype) -> MLP:
    """An MLP ensemble from the `model` section of a spec and the data's shapes."""
    return MLP(
        shapes["sensors"],
        shapes["queries"],
        spec["width"],
        spec["depth"],
        spec["activation"],
        generators,
        dtype,
    )
