"""Train one job's group of models as one batched model.

Members. A job trains every seed of the study, times every value of its member axes
(``members: [data.n_train]``), as one batched model (see ``opscale.ensemble``). Member
(seed, n) reads the first n training functions of seed's data and is initialised from
seed's ``"init"`` stream (the same init for every n: common random numbers along the data
axis). The per-member losses are summed before ``backward``, so each member's gradient,
and AdamW's elementwise update, are exactly those of training it alone.

Budget and schedule. Each member trains for ``train.steps`` steps, or for ``train.epochs``
epochs (``ceil(epochs * n / batch_size)`` steps, so its budget grows with n). Its learning
rate follows ``train.schedule`` over its own budget; when the members' rates differ, one
AdamW step is taken at lr = 1 and each member's update is scaled by its own rate
(AdamW's update is linear in the rate).

Best state and stopping. Every ``eval_every`` steps (and at each member's last step) the
validation error is checked and each member's best parameters are kept; the reported
errors are those of that state (of the last state when there are no validation
functions). A member stops when its budget is spent, when its validation error has not
improved for ``train.patience`` steps, or when its loss turns NaN/inf or exceeds
``train.divergence_factor`` times its first loss (status ``diverged``: a too-large rate
makes Adam's loss explode by orders of magnitude while staying finite). Stopped members
are sliced out of the batch (parameters, Adam moments, data), so they cost nothing while
the others go on.

Checkpoints. Every ``runtime.checkpoint_every`` steps the whole trainer state (including
the batch-order streams) is written atomically; a restarted job resumes from it and ends
with the same result, bit for bit on CPU, as an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from opscale import cube, reuse
from opscale.ensemble import params_per_member
from opscale.evaluate import evaluate, relative_l2
from opscale.grid import digest
from opscale.measures import Measures
from opscale.models import build_model
from opscale.problems.tensors import Split, load_splits
from opscale.rng import numpy_rng, torch_generator

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# The backward pass of a matmul costs two matmuls of the forward's size.
BACKWARD_FACTOR = 2


def train_point(
    spec: dict,
    coords: dict,
    data_path: str,
    out_path: str,
    runtime: dict,
    checkpoint_path: str | None = None,
) -> None:
    """Train the group of one job and write its point file (atomically).

    Parameters
    ----------
    spec : dict
        Resolved point spec (problem, data, model, train, seeds), see ``opscale.grid``.
    coords : dict
        The point's value on every swept job axis (dotted path -> value).
    data_path, out_path : str
        The data file to read and the point file to write.
    runtime : dict
        The study's ``runtime`` section (device, compile, checkpoint_every).
    checkpoint_path : str, optional
        Where to keep the training state; resumed from if it exists and matches `spec`.

    Members that earlier files of the same column already hold are reused, not
    retrained (``opscale.reuse``).
    """
    everyone = Members.of(spec)
    earlier = reuse.earlier_members(spec, out_path, everyone.pairs())  # trained before
    members = everyone.without(earlier)
    key = digest([spec, members.seed.tolist(), members.n_train.tolist()])
    checkpoint = Checkpoint(checkpoint_path, runtime["checkpoint_every"], key)
    trained = train_members(spec, coords, members, data_path, runtime, checkpoint)
    point = trained if earlier is None else reuse.combine(earlier, trained, everyone.pairs(), spec)
    cube.write(point, out_path)
    checkpoint.remove()


def train_members(
    spec: dict, coords: dict, members: Members, data_path: str, runtime: dict, checkpoint
) -> xr.Dataset | None:
    """Train `members` of a point as one batched model; their point dataset (None: none)."""
    if not len(members):
        return None
    started = time.perf_counter()
    dtype, device = DTYPES[spec["train"]["dtype"]], resolve_device(runtime["device"])
    data = members.select(load_splits(data_path, dtype, device))
    model = build_model(spec["model"], shapes(data), members.generators(), dtype).to(device)
    log.info(
        "job %s: %d members x %d parameters on %s",
        coords,
        len(members),
        params_per_member(model),
        device,
    )
    measures = Measures(spec, members)
    measures.start(model, data)  # at initialisation, also when resuming
    trainer = Trainer(model, data, spec["train"], members, compile=runtime["compile"])
    checkpoint.restore(trainer)
    trainer.run(checkpoint)
    results = {**evaluate(model, data), **trainer.results()}
    results["train_flops"] = training_flops(
        model, data, spec["train"], members, trainer.steps_trained
    )
    measured = measures.finish(model, data)
    results["wall_time"] = np.full(len(members), time.perf_counter() - started)
    return cube.point_dataset(results, spec, coords, members.coords(), measured)


@dataclass(frozen=True)
class Members:
    """The models of one job: member i trains seed[i] on its first n_train[i] functions."""

    seed: np.ndarray  # (S,) seed of each member
    n_train: np.ndarray  # (S,) training functions of each member
    row: np.ndarray  # (S,) index of the member's seed in the data file
    grouped: bool  # whether n_train is a member axis (stored per member)

    @classmethod
    def of(cls, spec: dict) -> Members:
        sizes = spec["data"]["n_train"]
        table = [
            (i, seed, n)
            for i, seed in enumerate(spec["seeds"])
            for n in (sizes if isinstance(sizes, list) else [sizes])
        ]
        row, seed, n = (np.array(column) for column in zip(*table, strict=True))
        return cls(seed, n, row, isinstance(sizes, list))

    def __len__(self) -> int:
        return len(self.seed)

    def pairs(self) -> list[tuple[int, int]]:
        """(seed, n_train) of every member, in member order."""
        return list(zip(self.seed.tolist(), self.n_train.tolist(), strict=True))

    def without(self, trained: xr.Dataset | None) -> Members:
        """The members that `trained` (a point dataset, or None) does not hold."""
        if trained is None:
            return self
        done = set(reuse.member_pairs(trained))
        todo = np.array([pair not in done for pair in self.pairs()], bool)
        return Members(self.seed[todo], self.n_train[todo], self.row[todo], self.grouped)

    def generators(self) -> list[torch.Generator]:
        """One initialisation stream per member (its seed's)."""
        return [torch_generator(int(seed), "init") for seed in self.seed]

    def select(self, splits: dict[str, Split]) -> dict[str, Split]:
        """Each member's copy of its seed's data (train: the first max(n_train) functions)."""
        rows = torch.as_tensor(self.row, device=splits["train"].u.device)
        out = {name: _rows(split, rows) for name, split in splits.items()}
        train = out["train"]
        n = int(self.n_train.max())
        out["train"] = Split(
            train.u[:, :n], train.y if train.y.dim() == 2 else train.y[:, :n], train.s[:, :n]
        )
        return out

    def coords(self) -> dict:
        """Per-member coordinates of the point file."""
        return {"seed": self.seed, **({"n_train": self.n_train} if self.grouped else {})}


def _rows(split: Split, rows: torch.Tensor) -> Split:
    """The rows (members) `rows` of a split; shared query points stay shared."""
    return Split(split.u[rows], split.y if split.y.dim() == 2 else split.y[rows], split.s[rows])


def budgets(recipe: dict, n_train: np.ndarray) -> np.ndarray:
    """Steps each member trains: fixed, or epochs over its own training set."""
    if recipe["epochs"] is None:
        return np.full(len(n_train), recipe["steps"])
    batch = np.minimum(n_train, recipe["batch_size"] or n_train)
    return np.ceil(recipe["epochs"] * n_train / batch).astype(int)


SCHEDULES = {  # factor of the base rate at step t (0-based) of a budget of T steps
    "constant": lambda t, T, r: np.ones_like(T, dtype=float),
    "cosine": lambda t, T, r: (
        r["lr_min"] / r["lr"]
        + (1 - r["lr_min"] / r["lr"]) * 0.5 * (1 + np.cos(np.pi * np.minimum(t, T) / T))
    ),
    "step": lambda t, T, r: np.full(T.shape, r["decay_factor"] ** (t // r["decay_every"])),
}


class Sampler:
    """The training functions each member sees at each step.

    Full batch: every member uses its first n rows. Minibatch of B: member (seed, n) walks
    through successive random permutations of its n functions, B at a time, drawn from
    its own stream ``numpy_rng(seed, "batches", n)``; members with n <= B use all n.
    """

    def __init__(self, members: Members, batch_size: int | None, device):
        self.n, self.batch, self.device = members.n_train, batch_size, device
        self.streams = [
            numpy_rng(int(s), "batches", int(n))
            for s, n in zip(members.seed, members.n_train, strict=True)
        ]
        self.orders = [np.empty(0, dtype=np.int64) for _ in self.streams]
        self.full = batch_size is None or bool((self.n <= batch_size).all())

    def indices(self, active: np.ndarray) -> torch.Tensor | None:
        """Rows of each active member's batch, (A, B); None means the first rows (full batch)."""
        if self.full:
            return None
        rows = [self._next(i) for i in active]
        return torch.as_tensor(np.stack(rows), device=self.device)

    def weights(self, active: np.ndarray, rows: int, dtype) -> torch.Tensor | None:
        """Loss weight of each row, (A, rows), summing to 1 per member; None: plain mean."""
        valid = np.minimum(self.n[active], rows)
        if (valid == rows).all():
            return None
        mask = np.arange(rows)[None] < valid[:, None]
        return torch.as_tensor(mask / valid[:, None], dtype=dtype, device=self.device)

    def _next(self, i: int) -> np.ndarray:
        if self.n[i] <= self.batch:  # the whole (small) training set, padded
            return np.minimum(np.arange(self.batch), self.n[i] - 1)
        while len(self.orders[i]) < self.batch:
            self.orders[i] = np.concatenate(
                [self.orders[i], self.streams[i].permutation(self.n[i])]
            )
        rows, self.orders[i] = self.orders[i][: self.batch], self.orders[i][self.batch :]
        return rows

    def state_dict(self) -> dict:
        """Generator states (dicts of ints and str) and pending orders (tensors): no pickles."""
        return {
            "streams": [s.bit_generator.state for s in self.streams],
            "orders": [torch.from_numpy(order.copy()) for order in self.orders],
        }

    def load_state_dict(self, state: dict) -> None:
        for stream, saved in zip(self.streams, state["streams"], strict=True):
            stream.bit_generator.state = saved
        self.orders = [order.numpy() for order in state["orders"]]


class Trainer:
    """The training loop of one job over its active members (see the module docstring)."""

    def __init__(
        self, model, data: dict[str, Split], recipe: dict, members: Members, compile: bool = False
    ):
        self.model, self.data, self.recipe, self.members = model, data, recipe, members
        self.train = data["train"]  # the active members' rows (sliced as members stop)
        size = len(members)
        self.budget = budgets(recipe, members.n_train)
        self.active = np.arange(size)
        self.step = 0
        # fused: one kernel for all parameters; 24% faster per step than foreach on small
        # models (width 10, 3 members) and ~5% on width 40 x 16 members, measured A/B.
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=recipe["lr"], fused=True, weight_decay=recipe["weight_decay"]
        )
        self.sampler = Sampler(members, recipe["batch_size"], data["train"].u.device)
        self.validated = data["val"].s.shape[1] > 0
        self.kept = [p.detach().clone() for p in model.parameters()]  # reported state
        # per-member buffers (first dim = members, e.g. a wrapper's theta0) follow the members
        self.buffers = {
            name: b.detach().clone()
            for name, b in model.named_buffers()
            if b.dim() and b.shape[0] == size
        }
        self.best_error = np.full(size, np.inf)
        self.best_step = np.zeros(size, dtype=int)
        self.steps_trained = np.zeros(size, dtype=int)
        self.final_loss = np.full(size, np.nan)
        self.first_loss = np.full(size, np.nan)  # the yardstick of divergence
        self.status = np.full(size, cube.OK)
        longest = int(self.budget.max())
        n_logs, n_evals = longest // recipe["log_every"], longest // recipe["eval_every"]
        self.loss_curve = np.full((size, n_logs), np.nan)
        self.val_curve = np.full((size, n_evals), np.nan)
        self.loss_fn = torch.compile(member_losses) if compile else member_losses

    # ---------------------------------------------------------------- the loop
    def run(self, checkpoint: Checkpoint | None = None) -> None:
        """Train until every member has stopped."""
        bar = tqdm(total=int(self.budget.max()), initial=self.step, desc="train", mininterval=10)
        while len(self.active):
            self.step += 1
            losses = self.train_step()
            self.after_step(losses)
            bar.update()
            if checkpoint is not None:
                checkpoint.maybe_save(self)
        bar.close()
        self.restore_kept()

    def train_step(self) -> np.ndarray:
        """One AdamW step of every active member; their losses before the step, (A,)."""
        u, y, s = self.train
        rows = self.sampler.indices(self.active)
        if rows is not None:  # minibatch: gather each member's rows
            pick = torch.arange(len(self.active), device=rows.device)[:, None]
            u, s = u[pick, rows], s[pick, rows]
            y = y if y.dim() == 2 else y[pick, rows]
        weights = self.sampler.weights(self.active, s.shape[1], s.dtype)
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.loss_fn(self.model, u, y, s, weights)
        losses.sum().backward()
        self.optimizer_step()
        return losses.detach().cpu().numpy()

    def optimizer_step(self) -> None:
        """AdamW at each active member's scheduled rate."""
        factor = SCHEDULES[self.recipe["schedule"]](
            self.step - 1, self.budget[self.active], self.recipe
        )
        rates = self.recipe["lr"] * factor
        group = self.optimizer.param_groups[0]
        if np.all(rates == rates[0]):
            group["lr"] = float(rates[0])
            self.optimizer.step()
            return
        group["lr"] = 1.0  # then scale each member's update by its own rate
        before = [p.detach().clone() for p in self.model.parameters()]
        self.optimizer.step()
        scale = torch.as_tensor(rates, dtype=before[0].dtype, device=before[0].device)
        with torch.no_grad():
            for p, old in zip(self.model.parameters(), before, strict=True):
                p.copy_(torch.lerp(old, p, scale.view(-1, *[1] * (p.dim() - 1))))

    def after_step(self, losses: np.ndarray) -> None:
        """Record, validate, and retire the members that stop at this step."""
        step, active = self.step, self.active
        self.final_loss[active] = losses
        if step == 1:
            self.first_loss[active] = losses
        if step % self.recipe["log_every"] == 0:
            self.loss_curve[active, step // self.recipe["log_every"] - 1] = losses
        diverged = self.diverged(losses)
        self.status[active[diverged]] = cube.DIVERGED
        done = diverged | (step >= self.budget[active])
        if step % self.recipe["eval_every"] == 0 or done.any():
            done |= self.validate(~diverged)
        if done.any():
            self.retire(done)

    def diverged(self, losses: np.ndarray) -> np.ndarray:
        """Active members whose loss is NaN/inf or far above their first loss, (A,)."""
        limit = self.recipe["divergence_factor"] * self.first_loss[self.active]
        with np.errstate(invalid="ignore"):
            return ~np.isfinite(losses) | (losses > limit)

    def validate(self, eligible: np.ndarray) -> np.ndarray:
        """Check validation errors, keep improved states; members out of patience, (A,)."""
        active, step = self.active, self.step
        if not self.validated:
            return np.zeros(len(active), dtype=bool)
        u, y, s = self._live(self.data["val"])
        with torch.no_grad():
            error = relative_l2(self.model(u, y), s).cpu().numpy()
        if step % self.recipe["eval_every"] == 0:
            self.val_curve[active, step // self.recipe["eval_every"] - 1] = error
        better = eligible & np.isfinite(error) & (error < self.best_error[active])
        self.keep(better)
        self.best_error[active[better]] = error[better]
        self.best_step[active[better]] = step
        patience = self.recipe["patience"]
        return (
            np.full(len(active), False)
            if patience is None
            else (step - self.best_step[active] >= patience)
        )

    def _live(self, split: Split) -> Split:
        """The rows of a full-size split that belong to the active members."""
        return _rows(split, torch.as_tensor(self.active, device=split.u.device))

    def keep(self, which: np.ndarray) -> None:
        """Save the current parameters of the active members `which` as their reported state."""
        if which.any():
            ids = torch.as_tensor(self.active[which], device=self.kept[0].device)
            for kept, p in zip(self.kept, self.model.parameters(), strict=True):
                kept[ids] = p.detach()[torch.as_tensor(which, device=p.device)]

    def retire(self, done: np.ndarray) -> None:
        """Remove stopped members from the batch: parameters, Adam moments, data."""
        if not self.validated:
            self.keep(done & (self.status[self.active] == cube.OK))
        self.steps_trained[self.active[done]] = self.step
        keep = torch.as_tensor(~done, device=self.kept[0].device)
        with torch.no_grad():
            for p in self.model.parameters():
                p.data, p.grad = p.data[keep], None
                for moment in ("exp_avg", "exp_avg_sq"):
                    state = self.optimizer.state.get(p, {})
                    if moment in state:
                        state[moment] = state[moment][keep]
        self.active = self.active[~done]
        self.train = self._live(self.data["train"])
        self._slice_buffers(self.active)

    def _slice_buffers(self, rows: np.ndarray | None) -> None:
        """Set the per-member buffers to the rows `rows` of their full size (None: all)."""
        modules = dict(self.model.named_modules())
        for name, full in self.buffers.items():
            owner, _, attr = name.rpartition(".")
            index = slice(None) if rows is None else torch.as_tensor(rows, device=full.device)
            setattr(modules[owner], attr, full[index])

    def restore_kept(self) -> None:
        """Put every member's reported state back into the (full-size) model."""
        with torch.no_grad():
            for kept, p in zip(self.kept, self.model.parameters(), strict=True):
                p.data = kept.clone()
        self._slice_buffers(None)

    # ---------------------------------------------------------------- results and state
    def results(self) -> dict:
        """The trainer's variables of the point file, by their ``opscale.schema`` names.

        Per member (S,): status, best_step, final_loss, steps_trained, n_params; the
        curves loss_curve (S, step) and val_curve (S, eval); and their coordinates, the
        optimisation steps ``step`` and ``eval`` of each logged loss and validation check.
        """
        every = self.recipe
        return {
            "status": self.status,
            "best_step": self.best_step,
            "final_loss": self.final_loss,
            "steps_trained": self.steps_trained,
            "loss_curve": self.loss_curve,
            "val_curve": self.val_curve,
            "step": every["log_every"] * np.arange(1, self.loss_curve.shape[1] + 1),
            "eval": every["eval_every"] * np.arange(1, self.val_curve.shape[1] + 1),
            "n_params": np.full(len(self.members), params_per_member(self.model)),
        }

    ARRAYS = (
        "active",
        "best_error",
        "best_step",
        "steps_trained",
        "final_loss",
        "first_loss",
        "status",
        "loss_curve",
        "val_curve",
    )

    def state_dict(self) -> dict:
        """Tensors and plain values only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "step": self.step,
            **{name: torch.from_numpy(getattr(self, name).copy()) for name in self.ARRAYS},
            "params": [p.detach().clone() for p in self.model.parameters()],
            "kept": [k.clone() for k in self.kept],
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        for name in self.ARRAYS:
            setattr(self, name, state[name].numpy())
        with torch.no_grad():
            for p, saved in zip(self.model.parameters(), state["params"], strict=True):
                p.data = saved
        self.kept = state["kept"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.train = self._live(self.data["train"])
        self._slice_buffers(self.active)


def member_losses(model, u, y, s, weights) -> torch.Tensor:
    """Mean squared error of each member over its batch, (A,); `weights` (A, B) or None."""
    return SquaredError.apply(model(u, y), s, weights)


class SquaredError(torch.autograd.Function):
    """Per-member mean squared error with a hand-fused backward.

    Autograd's ``(pred - s).square().mean()`` makes about twice as many passes over the
    (A, B, q) prediction as needed; this keeps the difference and makes one pass back.
    Measured at A=16, B=1000, q=100 on one CPU thread: 18.8 ms -> 9.6 ms per
    forward+backward, about a sixth of a whole training step.
    """

    @staticmethod
    def forward(ctx, pred, target, weights):
        diff = pred - target  # (A, B, q)
        per_function = torch.linalg.vector_norm(diff, dim=-1).square_() / diff.shape[-1]
        ctx.save_for_backward(diff, weights)
        return per_function.mean(-1) if weights is None else (per_function * weights).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        diff, weights = ctx.saved_tensors
        scale = 2 * grad / diff.shape[-1]  # (A,)
        if weights is None:
            scale = (scale / diff.shape[1])[:, None, None]
        else:
            scale = (scale[:, None] * weights)[..., None]
        return diff * scale, None, None


class CheckpointError(RuntimeError):
    """A checkpoint that is refused: it holds more than tensors and plain values."""


class Checkpoint:
    """Atomic snapshots of a trainer, tied to the spec they were trained on.

    A checkpoint holds tensors and plain values only and is read with
    ``torch.load(weights_only=True)``: a checkpoint that carries any other pickled object
    (tampered with in a shared results folder, say) is refused, never unpickled, since
    unpickling can run code.
    """

    def __init__(self, path: str | None, every: int, key: str):
        self.path = Path(path) if path and every else None
        self.every, self.key = every, key

    def maybe_save(self, trainer: Trainer) -> None:
        if self.path is not None and trainer.step % self.every == 0 and len(trainer.active):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            torch.save({"key": self.key, "trainer": trainer.state_dict()}, tmp)
            os.replace(tmp, self.path)

    def restore(self, trainer: Trainer) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            saved = torch.load(self.path, weights_only=True)
        except pickle.UnpicklingError as error:
            reason = _unpickler_reason(error)
            raise CheckpointError(
                f"refusing checkpoint {self.path}: it holds more than tensors and plain "
                f"values, and unpickling it could run code ({reason}). Delete it to train "
                f"this point from the start: rm {self.path}"
            ) from None
        if saved.get("key") != self.key:
            log.warning("ignoring checkpoint %s: it belongs to other settings", self.path)
            return
        trainer.load_state_dict(saved["trainer"])
        log.info("resumed from %s at step %d", self.path, trainer.step)

    def remove(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


def _unpickler_reason(error: Exception) -> str:
    """The line of torch's weights-only error that names what was refused."""
    marker = "WeightsUnpickler error:"
    for line in str(error).splitlines():
        if marker in line:
            return line.split(marker, 1)[1].split(". Please", 1)[0].strip()
    return f"{type(error).__name__}: {error}"


def shapes(data: dict[str, Split]) -> dict:
    """Sizes a model needs from the data: sensors, query-point dimension, queries per function."""
    u, y, s = data["train"]
    return {"sensors": u.shape[-1], "y_dim": y.shape[-1], "queries": s.shape[-1]}


def training_flops(
    model, data: dict[str, Split], recipe: dict, members: Members, steps: np.ndarray
) -> np.ndarray:
    """FLOPs of each member's training: its steps x (forward + backward) on its batch rows.

    Counts the member's own rows (its n, or the batch size), not padding; validation
    checks are not counted.
    """
    q, aligned = data["train"].s.shape[-1], data["train"].y.dim() == 2
    rows = np.minimum(members.n_train, recipe["batch_size"] or members.n_train)
    return np.array(
        [
            int(t) * (1 + BACKWARD_FACTOR) * model.flops(int(r), q, aligned)
            for t, r in zip(steps, rows, strict=True)
        ]
    )


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` fails clearly when absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)
