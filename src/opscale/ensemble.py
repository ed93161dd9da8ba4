"""Many models as one: layers whose parameters carry a leading member dimension.

S members of the same architecture are trained as one module: every weight has shape
(S, ...), every matmul is a batched matmul (``torch.baddbmm``), and one optimizer steps
all members. Because every op is separable over members and Adam is elementwise, this is
exactly S independent trainings, at a fraction of the per-op overhead.

Member i is initialised from its own generator, in the same order a single model would
draw, so member i of a batched model equals the single model built with that generator.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "identity": lambda x: x,  # a linear network: a least-squares estimator (calibration)
}


class BatchedLinear(nn.Module):
    """S independent affine maps ``x @ W_i + b_i``; Glorot-normal weights, zero biases.

    Parameters: weight (S, fan_in, fan_out), bias (S, 1, fan_out).
    Input (S, B, fan_in) -> output (S, B, fan_out).
    """

    def __init__(self, fan_in: int, fan_out: int, generators, dtype=torch.float32):
        super().__init__()
        std = math.sqrt(2.0 / (fan_in + fan_out))
        weights = [torch.randn(fan_in, fan_out, generator=g, dtype=dtype) * std for g in generators]
        self.weight = nn.Parameter(torch.stack(weights))
        self.bias = nn.Parameter(torch.zeros(len(generators), 1, fan_out, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def flops(self, rows: int) -> int:
        """Forward FLOPs of one member on `rows` inputs (2 per multiply-add, plus bias)."""
        fan_in, fan_out = self.weight.shape[1:]
        return rows * fan_out * (2 * fan_in + 1)


class BatchedMLP(nn.Module):
    """S independent MLPs with layer sizes `sizes` (activation between layers).

    `final_activation` also applies it to the output (DeepONet's trunk does this).
    Input (S, B, sizes[0]) -> output (S, B, sizes[-1]).
    """

    def __init__(self, sizes, activation, generators, dtype=torch.float32, final_activation=False):
        super().__init__()
        self.layers = nn.ModuleList(
            BatchedLinear(a, b, generators, dtype)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.activation = ACTIVATIONS[activation]
        self.final_activation = final_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.final_activation or i < len(self.layers) - 1:
                x = self.activation(x)
        return x

    def flops(self, rows: int) -> int:
        """Forward FLOPs of one member on `rows` inputs (activations not counted)."""
        return sum(layer.flops(rows) for layer in self.layers)


def members(module: nn.Module) -> int:
    """Number of members S of a batched module."""
    return next(module.parameters()).shape[0]


def params_per_member(module: nn.Module) -> int:
    """Exact trainable parameter count of one member."""
    return sum(p.numel() for p in module.parameters()) // members(module)
