"""Error metrics of a batched model, per member. Shapes: pred, true (S, n, q) -> (S,)."""

from __future__ import annotations

import torch

from opscale.schema import ERRORS, error_name


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over functions of ||pred - true||_2 / ||true||_2 (over query points)."""
    return (
        torch.linalg.vector_norm(pred - true, dim=-1) / torch.linalg.vector_norm(true, dim=-1)
    ).mean(dim=-1)


def sup_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over functions of max_y |pred - true| (units of s)."""
    return (pred - true).abs().amax(dim=-1).mean(dim=-1)


def mse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared error over functions and query points (the training loss)."""
    return (pred - true).square().mean(dim=(-2, -1))


METRICS = {"rel_l2": relative_l2, "linf": sup_error}  # the metrics of opscale.schema.ERRORS


@torch.no_grad()
def evaluate(model, data: dict) -> dict:
    """Every error ``opscale.schema.ERRORS`` stores, by its stored name, (S,) each.

    The relative L2 error on every split and the sup-norm error on the test split:
    ``train_rel_l2``, ``val_rel_l2``, ``test_rel_l2``, ``test_linf``.
    """
    predictions = {name: model(split.u, split.y) for name, split in data.items()}
    errors = {
        error_name(split, metric): METRICS[metric](predictions[split], data[split].s)
        for metric, (_, _, splits) in ERRORS.items()
        for split in splits
    }
    return {name: value.cpu().numpy() for name, value in errors.items()}
