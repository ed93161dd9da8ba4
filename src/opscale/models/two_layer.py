"""Two-layer tanh network without bias as a batched ensemble (the recovery study's student).

    f(x) = sum_j a_j tanh(w_j . x),   u = x (S, n, d) -> (S, n, 1)

``width`` neurons m; parameters w (S, m, d) and a (S, m), drawn per member in that order
as w ~ N(0, init_scale^2 / d) and a ~ N(0, init_scale^2 / m): ``init_scale`` = 1 is the
usual fan-in scale, smaller values the small-initialisation regime in which the paper's
students condense onto the teacher's few directions. Same form as the ``tanh_teacher``
problem's target, so a student of width m >= k can represent its teacher exactly. It
ignores the query points y, so it needs aligned data with one output.

``outputs`` and ``jacobian`` are the network and its parameter Jacobian in closed form at
any parameters (the recovery measure's tangent ranks and Gauss-Newton steps use them):

    d f / d w_jl = a_j (1 - tanh^2(w_j . x)) x_l,   d f / d a_j = tanh(w_j . x)
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TwoLayer(nn.Module):
    """S two-layer tanh networks without bias; u (S, n, d) -> (S, n, 1)."""

    def __init__(self, dim: int, width: int, init_scale: float, generators, dtype=torch.float32):
        super().__init__()
        w = [torch.randn(width, dim, generator=g, dtype=dtype) for g in generators]
        a = [torch.randn(width, generator=g, dtype=dtype) for g in generators]
        self.w = nn.Parameter(torch.stack(w) * (init_scale / math.sqrt(dim)))  # (S, m, d)
        self.a = nn.Parameter(torch.stack(a) * (init_scale / math.sqrt(width)))  # (S, m)

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError("the two_layer model needs aligned data (the same query points)")
        return outputs({"w": self.w, "a": self.a}, u).unsqueeze(-1)  # (S, n, 1)

    def flops(self, n: int, q: int, aligned: bool = True) -> int:
        """Forward FLOPs of one member on n inputs (tanh not counted)."""
        width, dim = self.w.shape[1:]
        return n * 2 * width * (dim + 1)


def outputs(params: dict, x: torch.Tensor) -> torch.Tensor:
    """f(x) of each member at params {w (S, m, d), a (S, m)} on x (S, n, d): (S, n)."""
    hidden = torch.tanh(torch.matmul(x, params["w"].transpose(-1, -2)))  # (S, n, m)
    return torch.matmul(hidden, params["a"].unsqueeze(-1))[..., 0]


def jacobian(params: dict, x: torch.Tensor) -> torch.Tensor:
    """d f(x_i) / d theta of each member on x (S, n, d): (S, n, m d + m).

    Columns in parameter order: w neuron by neuron (w_11 ... w_1d, w_21, ...), then a,
    as the model's flattened parameters (w, a) are ordered.
    """
    w, a = params["w"], params["a"]
    hidden = torch.tanh(torch.matmul(x, w.transpose(-1, -2)))  # (S, n, m)
    slope = a.unsqueeze(1) * (1 - hidden.square())  # (S, n, m): a_j sech^2(w_j . x)
    dw = slope.unsqueeze(-1) * x.unsqueeze(2)  # (S, n, m, d)
    return torch.cat([dw.flatten(start_dim=2), hidden], dim=2)


def build(spec: dict, shapes: dict, generators, dtype) -> TwoLayer:
    """A two-layer ensemble from the `model` section of a spec and the data's shapes."""
    if shapes["queries"] != 1:
        raise ValueError(
            f"model.name = 'two_layer' predicts one output, but the data have "
            f"{shapes['queries']} query points per function (use problem.name tanh_teacher)"
        )
    return TwoLayer(shapes["sensors"], spec["width"], spec["init_scale"], generators, dtype)
