"""Iterated operator (Zappala et al. 2023, arXiv 2310.01618) as a batched ensemble.

    y_0 = 0,    y_{k+1} = a * y_k + (1 - a) * T_k(u, y_k),    G(u) ~ y_K

The block T maps the input at the sensors and the current iterate at the query points to
an update at the query points: an MLP on concat(u (m), y_k (q)) -> q, ``depth`` linear
layers of ``width`` units. ``shared: true`` applies one weight-shared block K times
(T_k = T, the iterated operator); ``shared: false`` gives K distinct blocks T_0..T_{K-1},
the stacked, non-shared network of the same depth (the baseline). a is
``model.relaxation``, K is ``model.iterations`` (K_train). ``trajectory`` evaluates any
number of iterations; beyond K the non-shared model repeats its last block, so both
models are maps that can be iterated to any K_eval. Like the mlp model it ignores the
query points y (it needs aligned data: the same q points for every function).
"""

from __future__ import annotations

import torch
from torch import nn

from opscale.ensemble import BatchedMLP


class IterativeOperator(nn.Module):
    """S iterated operators; u (S, n, m) -> y_K (S, n, q)."""

    def __init__(
        self,
        sensors: int,
        queries: int,
        width: int,
        depth: int,
        activation: str,
        iterations: int,
        relaxation: float,
        shared: bool,
        generators,
        dtype=torch.float32,
    ):
        super().__init__()
        sizes = [sensors + queries, *[width] * (depth - 1), queries]
        self.blocks = nn.ModuleList(
            BatchedMLP(sizes, activation, generators, dtype)
            for _ in range(1 if shared else iterations)
        )
        self.iterations, self.relaxation, self.shared = iterations, relaxation, shared
        self.queries = queries

    def block(self, k: int) -> BatchedMLP:
        """The block applied at iteration k (0-based): T, or T_min(k, K-1) when not shared."""
        return self.blocks[min(k, len(self.blocks) - 1)]

    def update(self, k: int, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """T_k(u, y): the block's output on the current iterate, (S, n, q)."""
        return self.block(k)(torch.cat([u, y], dim=-1))

    def step(self, k: int, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One relaxed iteration y -> a y + (1 - a) T_k(u, y), (S, n, q)."""
        a = self.relaxation
        return a * y + (1 - a) * self.update(k, u, y)

    def trajectory(self, u: torch.Tensor, iterations: int | None = None) -> list[torch.Tensor]:
        """The iterates y_0 = 0, y_1, ..., y_K for K = `iterations` (default K_train).

        u (S, n, m) -> a list of K + 1 tensors (S, n, q).
        """
        y = u.new_zeros(*u.shape[:-1], self.queries)
        iterates = [y]
        for k in range(self.iterations if iterations is None else iterations):
            y = self.step(k, u, y)
            iterates.append(y)
        return iterates

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError("the iterative model needs aligned data (problem.query_points: grid)")
        return self.trajectory(u)[-1]

    def flops(self, n: int, q: int, aligned: bool = True) -> int:
        """Forward FLOPs of one member on n functions: K blocks plus 3 per relaxed output."""
        return self.iterations * (self.blocks[0].flops(n) + 3 * n * self.queries)


def build(spec: dict, shapes: dict, generators, dtype) -> IterativeOperator:
    """An iterated-operator ensemble from the `model` section of a spec and the data's shapes."""
    return IterativeOperator(
        shapes["sensors"],
        shapes["queries"],
        spec["width"],
        spec["depth"],
        spec["activation"],
        spec["iterations"],
        spec["relaxation"],
        spec["shared"],
        generators,
        dtype,
    )
