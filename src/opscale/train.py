"""Train one group of models (one grid point, one member per seed) in one process.

The group is one batched model (see ``opscale.ensemble``): member i sees the data of
seed i and is initialised from seed i's ``"init"`` stream. One Adam steps all members;
the per-member losses are summed, so the gradients (and Adam's elementwise updates) of
each member are exactly those of training it alone.

Every ``eval_every`` steps each member's validation error is checked and its best
parameters are kept; the reported errors are those of the best state. A member whose
loss becomes NaN or infinite is marked ``diverged`` and frozen (zero gradient and Adam
state, so its parameters stop moving) while the others go on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from opscale import cube
from opscale.ensemble import members, params_per_member
from opscale.evaluate import evaluate, mse, relative_l2
from opscale.models import build_model
from opscale.problems.tensors import load_splits
from opscale.rng import torch_generator

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# The backward pass of a matmul costs two matmuls of the forward's size.
BACKWARD_FACTOR = 2


def train_point(spec: dict, coords: dict, data_path: str, out_path: str, runtime: dict) -> None:
    """Train the group of one grid point and write its point file (atomically).

    Parameters
    ----------
    spec : dict
        Resolved point spec (problem, data, model, train, seeds), see ``opscale.grid``.
    coords : dict
        The point's value on every swept axis, stored with its results.
    data_path, out_path : str
        The data file to read and the point file to write.
    runtime : dict
        The study's ``runtime`` section (device).
    """
    started = time.perf_counter()
    dtype, device = DTYPES[spec["train"]["dtype"]], resolve_device(runtime["device"])
    data = load_splits(data_path, dtype, device)
    generators = [torch_generator(seed, "init") for seed in spec["seeds"]]
    model = build_model(spec["model"], shapes(data), generators, dtype).to(device)
    log.info(
        "point %s: %d members x %d parameters on %s",
        coords,
        len(generators),
        params_per_member(model),
        device,
    )
    history = optimise(model, data, spec["train"])
    results = {**evaluate(model, data), **history.as_arrays()}
    results["n_params"] = np.full(members(model), params_per_member(model))
    results["train_flops"] = np.full(members(model), training_flops(model, data, spec["train"]))
    results["wall_time"] = np.full(members(model), time.perf_counter() - started)
    cube.write(cube.point_dataset(results, spec, coords), out_path)


@dataclass
class History:
    """What happened during training, per member."""

    steps: list = field(default_factory=list)  # steps at which the loss was logged
    losses: list = field(default_factory=list)  # each (S,)
    eval_steps: list = field(default_factory=list)  # steps of the validation checks
    val_errors: list = field(default_factory=list)  # each (S,)
    diverged: torch.Tensor | None = None  # (S,) bool
    best_step: torch.Tensor | None = None  # (S,) step of the best validation error
    final_loss: torch.Tensor | None = None  # (S,) training loss at the last step

    def as_arrays(self) -> dict:
        return {
            "loss_curve": torch.stack(self.losses, dim=1).cpu().numpy(),
            "loss_step": np.asarray(self.steps),
            "val_curve": torch.stack(self.val_errors, dim=1).cpu().numpy(),
            "eval_step": np.asarray(self.eval_steps),
            "status": np.where(self.diverged.cpu().numpy(), cube.DIVERGED, cube.OK),
            "best_step": self.best_step.cpu().numpy(),
            "final_loss": self.final_loss.cpu().numpy(),
        }


def optimise(model, data: dict, recipe: dict) -> History:
    """Full-batch Adam on every member at once; restore each member's best state."""
    u, y, s = data["train"]
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"], foreach=True)
    best = BestState(model)
    history = History(diverged=torch.zeros(members(model), dtype=torch.bool, device=u.device))
    for step in tqdm(range(1, recipe["steps"] + 1), desc="train", mininterval=10, file=None):
        optimizer.zero_grad(set_to_none=True)
        loss = mse(model(u, y), s)  # (S,)
        loss.sum().backward()
        history.diverged |= ~torch.isfinite(loss.detach())
        if history.diverged.any():
            freeze(model, optimizer, history.diverged)
        optimizer.step()
        if step % recipe["log_every"] == 0:
            history.steps.append(step)
            history.losses.append(loss.detach())
        if step % recipe["eval_every"] == 0 or step == recipe["steps"]:
            error = validation_error(model, data)
            history.eval_steps.append(step)
            history.val_errors.append(error)
            best.update(step, error, ~history.diverged)
    history.final_loss = loss.detach()
    history.best_step = best.step
    best.restore(model)
    return history


@torch.no_grad()
def validation_error(model, data: dict) -> torch.Tensor:
    """Relative L2 error of every member on the validation split, shape (S,)."""
    u, y, s = data["val"]
    return relative_l2(model(u, y), s)


@torch.no_grad()
def freeze(model, optimizer, mask: torch.Tensor) -> None:
    """Stop members `mask` from moving: zero their gradients and Adam moments."""
    for param in model.parameters():
        if param.grad is not None:
            param.grad[mask] = 0
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in optimizer.state.get(param, {}):
                optimizer.state[param][moment][mask] = 0


class BestState:
    """Per-member copy of the parameters with the lowest validation error so far."""

    def __init__(self, model):
        self.params = list(model.parameters())
        self.saved = [p.detach().clone() for p in self.params]
        first = self.saved[0]
        self.error = torch.full(
            (members(model),), torch.inf, dtype=first.dtype, device=first.device
        )
        self.step = torch.zeros(members(model), dtype=torch.long)

    @torch.no_grad()
    def update(self, step: int, error: torch.Tensor, eligible: torch.Tensor) -> None:
        better = eligible & torch.isfinite(error) & (error < self.error)
        if better.any():
            for saved, param in zip(self.saved, self.params, strict=True):
                saved[better] = param[better]
            self.error[better] = error[better]
            self.step[better.cpu()] = step

    @torch.no_grad()
    def restore(self, model) -> None:
        for saved, param in zip(self.saved, self.params, strict=True):
            param.copy_(saved)


def shapes(data: dict) -> dict:
    """Sizes a model needs from the data: sensors, query-point dimension, queries per function."""
    u, y, s = data["train"]
    return {"sensors": u.shape[-1], "y_dim": y.shape[-1], "queries": s.shape[-1]}


def training_flops(model, data: dict, recipe: dict) -> int:
    """FLOPs of one member's training: steps x (forward + backward) on the full batch."""
    n, q = data["train"].s.shape[1:]
    aligned = data["train"].y.dim() == 2
    return recipe["steps"] * (1 + BACKWARD_FACTOR) * model.flops(n, q, aligned)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` fails clearly when absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)
