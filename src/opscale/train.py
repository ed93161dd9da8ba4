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
(AdamW's update is linear in the rate). ``train.lr`` and ``train.weight_decay`` may be
member axes too (``members: [train.lr]``): each member then has its own base rate and
decay (a decay that differs between members is applied outside AdamW, ``old * (1 - rate *
decay)``, as AdamW does), still exactly training each alone.

Bookkeeping on the device. Losses, divergence flags, best states and curves are tensors on
the training device; the host reads them back only at validation, logging and budget-end
steps (see ``Trainer``), so a GPU step is not serialised behind a host round trip.

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

Signals. SIGTERM (what SLURM sends at preemption and ahead of the time limit) and SIGINT
(Ctrl-C) do not kill a training job mid-step: the job finishes the step, writes its
checkpoint, logs one line (``SIGTERM received at step 123 of 400: checkpoint written to
...; rerun to resume``) and exits with status 128 + the signal, so Snakemake marks it failed
and a rerun resumes from that checkpoint (see ``Stop``). A signal after the last step lets
the job finish its point file.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from opscale import cube, progress, reuse
from opscale.ensemble import params_per_member
from opscale.evaluate import evaluate, relative_l2
from opscale.grid import digest
from opscale.measures import Measures
from opscale.models import build_model
from opscale.problems.tensors import Split, load_splits
from opscale.progress import Heartbeat
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
    heartbeat_path: str | None = None,
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
    heartbeat_path : str, optional
        The job's heartbeat file (pid, host, step; ``opscale.progress``), kept while it runs.

    Members that earlier files of the same column already hold are reused, not
    retrained (``opscale.reuse``).
    """
    everyone = Members.of(spec)
    # trained before; members that differ in lr or weight decay are not reused (yet)
    pairs = everyone.pairs()
    earlier = None if everyone.hyper else reuse.earlier_members(spec, out_path, pairs)
    members = everyone.without(earlier)
    key = digest([spec, members.seed.tolist(), members.n_train.tolist()])
    checkpoint = Checkpoint(checkpoint_path, runtime["checkpoint_every"], key)
    # SIGTERM/SIGINT: checkpoint at the end of the step, then exit (the heartbeat says so)
    with Heartbeat(heartbeat_path) as beat, Stop() as stop:
        trained = train_members(
            spec, coords, members, data_path, runtime, checkpoint, stop, heartbeat=beat
        )
        point = trained if earlier is None else reuse.combine(earlier, trained, pairs, spec)
        cube.write(point, out_path)
        # the final checkpoint stays until collect has read the point file: a kill before
        # Snakemake records the job as done makes it rerun, and the rerun then restores
        # the finished state instead of training again (opscale.layout.remove_checkpoints)
    if stop.signum is not None:
        log.warning("%s received after the last step: the point file was written", stop.name)


def train_members(
    spec: dict,
    coords: dict,
    members: Members,
    data_path: str,
    runtime: dict,
    checkpoint,
    stop: Stop | None = None,
    heartbeat: Heartbeat | None = None,
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
    # where this attempt starts: 0, or its checkpoint's step (tests/test_chaos.py reads it)
    log.info("training from step %d of %d", trainer.step, int(trainer.budget.max()))
    trainer.run(checkpoint, stop, heartbeat)
    results = {**evaluate(model, data), **trainer.results()}
    results["train_flops"] = training_flops(
        model, data, spec["train"], members, trainer.steps_trained
    )
    measured = measures.finish(model, data)
    results["wall_time"] = np.full(len(members), time.perf_counter() - started)
    log.info(progress.summary(results, trainer.budget, float(results["wall_time"][0])))
    return cube.point_dataset(results, spec, coords, members.coords(), measured)


# train settings that may be member axes (``members: [train.lr]``): one value per member
HYPERPARAMETERS = ("lr", "weight_decay")


@dataclass(frozen=True)
class Members:
    """The models of one job: member i trains seed[i] on its first n_train[i] functions.

    `hyper` holds the train settings that are member axes (``lr``, ``weight_decay``), one
    value per member; the others are the recipe's, the same for every member.
    """

    seed: np.ndarray  # (S,) seed of each member
    n_train: np.ndarray  # (S,) training functions of each member
    row: np.ndarray  # (S,) index of the member's seed in the data file
    grouped: bool  # whether n_train is a member axis (stored per member)
    hyper: dict = field(default_factory=dict)  # name -> (S,) values of member-axis settings

    @classmethod
    def of(cls, spec: dict) -> Members:
        """Every member of a spec: seeds x n_train values x lr values x weight decays."""
        listed = {
            name: value
            for name, value in spec.get("train", {}).items()
            if name in HYPERPARAMETERS and isinstance(value, list)
        }
        sizes = spec["data"]["n_train"]
        table = [
            (i, seed, n, *values)
            for i, seed in enumerate(spec["seeds"])
            for n in (sizes if isinstance(sizes, list) else [sizes])
            for values in itertools.product(*listed.values())
        ]
        row, seed, n, *columns = (np.array(column) for column in zip(*table, strict=True))
        hyper = {name: column.astype(float) for name, column in zip(listed, columns, strict=True)}
        return cls(seed, n, row, isinstance(sizes, list), hyper)

    def hyperparameter(self, name: str, recipe: dict) -> np.ndarray:
        """Each member's value of the train setting `name`, (S,) floats."""
        if name in self.hyper:
            return self.hyper[name]
        return np.full(len(self), float(recipe[name]))

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
        hyper = {name: values[todo] for name, values in self.hyper.items()}
        return Members(self.seed[todo], self.n_train[todo], self.row[todo], self.grouped, hyper)

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
        grouped = {"n_train": self.n_train} if self.grouped else {}
        return {"seed": self.seed, **grouped, **self.hyper}


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
        return upload(np.stack(rows), None, self.device)

    def weights(self, active: np.ndarray, rows: int, dtype) -> torch.Tensor | None:
        """Loss weight of each row, (A, rows), summing to 1 per member; None: plain mean."""
        valid = np.minimum(self.n[active], rows)
        if (valid == rows).all():
            return None
        mask = np.arange(rows)[None] < valid[:, None]
        return upload(mask / valid[:, None], dtype, self.device)

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
    """The training loop of one job over its active members (see the module docstring).

    Device-resident bookkeeping: losses, divergence checks, the best state and the curves
    stay on the training device as tensors (``self.book``, full size, one row per member);
    a step reads nothing back to the host, except at sync points: validation steps
    (``eval_every``), logging steps (``log_every``), the last step of a member's budget
    (all known on the host in advance) and checkpoints. A member whose loss diverges is
    marked on the device at once (its step, its last loss) and retired at the next sync
    point; until then it trains on in its own rows without touching the others (every op
    is separable over members). ``self.syncs`` counts the host reads (one per ``_host``
    call). The per-member arrays (``status``, ``loss_curve``, ...) read as numpy.
    """

    def __init__(
        self, model, data: dict[str, Split], recipe: dict, members: Members, compile: bool = False
    ):
        self.model, self.data, self.recipe, self.members = model, data, recipe, members
        self.train = data["train"]  # the active members' rows (sliced as members stop)
        size = len(members)
        self.budget = budgets(recipe, members.n_train)
        self.active = np.arange(size)
        self.step = 0
        self.lr = members.hyperparameter("lr", recipe)  # (S,) base rate of each member
        self.weight_decay = members.hyperparameter("weight_decay", recipe)
        self.uniform_decay = bool((self.weight_decay == self.weight_decay[0]).all())
        # fused: one kernel for all parameters; 24% faster per step than foreach on small
        # models (width 10, 3 members) and ~5% on width 40 x 16 members, measured A/B.
        # Per-member decays: none in AdamW, each member's decay applied with its rate.
        decay = float(self.weight_decay[0]) if self.uniform_decay else 0.0
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=float(self.lr[0]), fused=True, weight_decay=decay
        )
        self.device = data["train"].u.device
        self.sampler = Sampler(members, recipe["batch_size"], self.device)
        self.validated = data["val"].s.shape[1] > 0
        self.kept = [p.detach().clone() for p in model.parameters()]  # reported state
        # per-member buffers (first dim = members, e.g. a wrapper's theta0) follow the members
        self.buffers = {
            name: b.detach().clone()
            for name, b in model.named_buffers()
            if b.dim() and b.shape[0] == size
        }
        longest = int(self.budget.max())
        n_logs, n_evals = longest // recipe["log_every"], longest // recipe["eval_every"]
        self.book = self._new_book(size, n_logs, n_evals)
        self.rows = None  # device index of the active members; None: all of them
        self.syncs = 0
        self.loss_fn = torch.compile(member_losses) if compile else member_losses

    def _new_book(self, size: int, n_logs: int, n_evals: int) -> dict[str, torch.Tensor]:
        """The per-member record on the device (float64 values, int64 steps and status)."""
        f64, i64 = (
            {"dtype": torch.float64, "device": self.device},
            {
                "dtype": torch.int64,
                "device": self.device,
            },
        )
        return {
            "best_error": torch.full((size,), torch.inf, **f64),
            "best_step": torch.zeros(size, **i64),
            "steps_trained": torch.zeros(size, **i64),
            "final_loss": torch.full((size,), torch.nan, **f64),
            "first_loss": torch.full((size,), torch.nan, **f64),  # the yardstick of divergence
            "status": torch.full((size,), cube.OK, **i64),
            "loss_curve": torch.full((size, n_logs), torch.nan, **f64),
            "val_curve": torch.full((size, n_evals), torch.nan, **f64),
        }

    # ---------------------------------------------------------------- the loop
    def run(
        self,
        checkpoint: Checkpoint | None = None,
        stop: Stop | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        """Train until every member has stopped, or until `stop` has caught a signal.

        Progress (``opscale.progress``): the `heartbeat`'s step, and every few seconds a
        log line (a bar's postfix on a terminal) of loss, best validation error, members.
        """
        bar = progress.Progress(int(self.budget.max()), self.step, heartbeat, mininterval=10)
        while len(self.active):
            if stop is not None and stop.signum is not None:  # checked between steps only
                bar.close()
                stop.halt(self, checkpoint)
            self.step += 1
            losses = self.train_step()
            self.after_step(losses)
            bar.report(self.step, self.progress_values)
            if checkpoint is not None:
                checkpoint.maybe_save(self)
        bar.close()
        if checkpoint is not None:  # the finished state (kept until collect)
            checkpoint.save(self, final=True)
        self.restore_kept()

    def progress_values(self) -> tuple[float, float, int, int]:
        """Mean loss of the active members, best validation error, active, members.

        One host read (counted in ``syncs``); ``Progress`` asks every few seconds only.
        """
        losses = self._get("final_loss") if len(self.active) else self.book["final_loss"]
        loss = losses.mean()
        read = self._host(torch.stack([loss, self.book["best_error"].min()]))
        return float(read[0]), float(read[1]), len(self.active), len(self.members)

    def train_step(self) -> torch.Tensor:
        """One AdamW step of every active member; their losses before the step, (A,).

        The losses stay on the device (detached); nothing is read back to the host.
        """
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
        return losses.detach()

    def optimizer_step(self) -> None:
        """AdamW at each active member's scheduled rate (and its own weight decay)."""
        lr = self.lr[self.active]
        factor = SCHEDULES[self.recipe["schedule"]](
            self.step - 1, self.budget[self.active], self.recipe | {"lr": lr}
        )
        rates = lr * factor
        group = self.optimizer.param_groups[0]
        if self.uniform_decay and np.all(rates == rates[0]):
            group["lr"] = float(rates[0])
            self.optimizer.step()
            return
        group["lr"] = 1.0  # then scale each member's update by its own rate
        before = [p.detach().clone() for p in self.model.parameters()]
        self.optimizer.step()
        dtype = before[0].dtype
        scale = upload(rates, dtype, self.device)
        decay = (
            None
            if self.uniform_decay
            else upload(rates * self.weight_decay[self.active], dtype, self.device)
        )
        with torch.no_grad():
            for p, old in zip(self.model.parameters(), before, strict=True):
                shape = (-1, *[1] * (p.dim() - 1))
                new = torch.lerp(old, p, scale.view(shape))
                if decay is not None:  # AdamW's decoupled decay: old * (1 - rate * decay)
                    new -= decay.view(shape) * old
                p.copy_(new)

    def after_step(self, losses: torch.Tensor) -> None:
        """Record (on the device), and at sync points validate and retire members."""
        step, recipe = self.step, self.recipe
        self.record(losses)
        ends = step >= self.budget[self.active]  # known on the host: no sync
        evaluates = step % recipe["eval_every"] == 0
        if not (evaluates or ends.any() or step % recipe["log_every"] == 0):
            return
        diverged = self._host(self._get("status") == cube.DIVERGED)
        done = diverged | ends
        if evaluates or done.any():
            done |= self.validate(~diverged)
        if done.any():
            self.retire(done)

    def record(self, losses: torch.Tensor) -> None:
        """Last loss, first loss, loss curve and divergence of the active members, on device."""
        step, recipe = self.step, self.recipe
        loss = losses.to(torch.float64)
        training = self._get("status") == cube.OK  # not diverged before this step
        self._put("final_loss", torch.where(training, loss, self._get("final_loss")))
        if step == 1:
            self._put("first_loss", loss)
        if step % recipe["log_every"] == 0:
            column = step // recipe["log_every"] - 1
            curve = self.book["loss_curve"][:, column]
            seen = curve if self.rows is None else curve[self.rows]
            self._put("loss_curve", torch.where(training, loss, seen), column)
        diverged = training & self.diverged(loss)
        self._put("status", torch.where(diverged, cube.DIVERGED, self._get("status")))
        self._put("steps_trained", torch.where(diverged, step, self._get("steps_trained")))

    def diverged(self, losses: torch.Tensor) -> torch.Tensor:
        """Active members whose loss is NaN/inf or far above their first loss, (A,)."""
        limit = self.recipe["divergence_factor"] * self._get("first_loss")
        return ~torch.isfinite(losses) | (losses > limit)

    def validate(self, eligible: np.ndarray) -> np.ndarray:
        """Check validation errors, keep improved states; members out of patience, (A,)."""
        active, step = self.active, self.step
        if not self.validated:
            return np.zeros(len(active), dtype=bool)
        u, y, s = self._live(self.data["val"])
        with torch.no_grad():
            error = relative_l2(self.model(u, y), s).to(torch.float64)
        if step % self.recipe["eval_every"] == 0:  # members diverged before: no entry
            column = step // self.recipe["eval_every"] - 1
            status, trained = self._get("status"), self._get("steps_trained")
            fresh = (status == cube.OK) | (trained == step)
            curve = self.book["val_curve"][:, column]
            seen = curve if self.rows is None else curve[self.rows]
            self._put("val_curve", torch.where(fresh, error, seen), column)
        better = upload(eligible, torch.bool, self.device) & torch.isfinite(error)
        better &= error < self._get("best_error")
        self.keep(better)
        self._put("best_error", torch.where(better, error, self._get("best_error")))
        self._put("best_step", torch.where(better, step, self._get("best_step")))
        patience = self.recipe["patience"]
        if patience is None:
            return np.full(len(active), False)
        return self._host(step - self._get("best_step") >= patience)

    # ---------------------------------------------------------------- device bookkeeping
    def _get(self, name: str) -> torch.Tensor:
        """The active members' rows of a record, (A,)."""
        full = self.book[name]
        return full if self.rows is None else full[self.rows]

    def _put(self, name: str, value: torch.Tensor, column: int | None = None) -> None:
        """Set the active members' rows (of one column of a curve) of a record."""
        full = self.book[name]
        if column is None and self.rows is None:
            full.copy_(value)
        elif column is None:
            full[self.rows] = value
        elif self.rows is None:
            full[:, column] = value
        else:
            full[self.rows, column] = value

    def _host(self, flags: torch.Tensor) -> np.ndarray:
        """Read a device tensor on the host: the trainer's only device-to-host sync."""
        self.syncs += 1
        return flags.cpu().numpy()

    def _live(self, split: Split) -> Split:
        """The rows of a full-size split that belong to the active members."""
        return _rows(split, torch.as_tensor(self.active, device=split.u.device))

    def keep(self, which: torch.Tensor) -> None:
        """Save the current parameters of the active members `which` (A,) as their state."""
        with torch.no_grad():
            for kept, p in zip(self.kept, self.model.parameters(), strict=True):
                mask = which.view(-1, *[1] * (p.dim() - 1))
                current = kept if self.rows is None else kept[self.rows]
                value = torch.where(mask, p.detach(), current)
                if self.rows is None:
                    kept.copy_(value)
                else:
                    kept[self.rows] = value

    def retire(self, done: np.ndarray) -> None:
        """Remove stopped members from the batch: parameters, Adam moments, data."""
        stops = upload(done, torch.bool, self.device)
        training = self._get("status") == cube.OK
        if not self.validated:
            self.keep(stops & training)
        self._put(
            "steps_trained", torch.where(stops & training, self.step, self._get("steps_trained"))
        )
        keep = upload(~done, torch.bool, self.device)
        with torch.no_grad():
            for p in self.model.parameters():
                p.data, p.grad = p.data[keep], None
                for moment in ("exp_avg", "exp_avg_sq"):
                    state = self.optimizer.state.get(p, {})
                    if moment in state:
                        state[moment] = state[moment][keep]
        self._set_active(self.active[~done])

    def _set_active(self, active: np.ndarray) -> None:
        """The active members (host array), their device index, data rows and buffers."""
        self.active = active
        full = len(active) == len(self.members)
        self.rows = None if full else torch.as_tensor(active, device=self.device)
        self.train = self._live(self.data["train"])
        self._slice_buffers(active)

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
            "active": torch.from_numpy(self.active.copy()),
            **{name: self.book[name].cpu().clone() for name in self.book},
            "params": [p.detach().clone() for p in self.model.parameters()],
            "kept": [k.clone() for k in self.kept],
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        for name, saved in self.book.items():  # the same dtypes as the numpy arrays of old
            self.book[name] = state[name].to(saved.dtype).to(self.device)
        with torch.no_grad():
            for p, saved in zip(self.model.parameters(), state["params"], strict=True):
                p.data = saved
        self.kept = state["kept"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self._set_active(state["active"].numpy())


def _host_view(name: str) -> property:
    return property(lambda self: self.book[name].cpu().numpy(), doc=f"{name} per member (numpy)")


for _name in Trainer.ARRAYS[1:]:  # read on the host, e.g. by tests and results()
    setattr(Trainer, _name, _host_view(_name))


def upload(array, dtype, device) -> torch.Tensor:
    """A host array on the device; on CUDA through pinned memory, without a sync."""
    tensor = torch.as_tensor(array, dtype=dtype)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


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
        """Save the trainer's state every `every` steps."""
        if self.path is not None and trainer.step % self.every == 0:
            self.save(trainer)

    def save(self, trainer: Trainer, final: bool = False) -> bool:
        """Write the trainer's state (temp file, then rename); False: no path, or done
        (unless `final`: the state at the end of training)."""
        if self.path is None or not (final or len(trainer.active)):
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save({"key": self.key, "trainer": trainer.state_dict()}, tmp)
        os.replace(tmp, self.path)
        return True

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


class Stop:
    """SIGTERM and SIGINT caught in a training job: finish the step, checkpoint, exit.

    ``with Stop() as stop:`` installs a handler that only records the signal
    (``stop.signum``); ``Trainer.run`` checks it between steps and calls ``halt``. SLURM
    sends SIGTERM at preemption and ahead of the time limit (``--signal`` in
    ``profiles/slurm``), Ctrl-C sends SIGINT to the whole process group. The previous
    handlers come back on exit. Outside the main thread (where Python cannot install
    handlers) nothing is installed and signals act as before.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._record) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _record(self, signum: int, frame) -> None:
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def halt(self, trainer: Trainer, checkpoint: Checkpoint | None) -> None:
        """Write `trainer`'s checkpoint, say so in one line, exit with 128 + the signal."""
        at = f"{self.name} received at step {trainer.step} of {int(trainer.budget.max())}"
        if checkpoint is not None and checkpoint.save(trainer):
            log.warning("%s: checkpoint written to %s; rerun to resume", at, checkpoint.path)
        else:
            log.warning("%s: no checkpoint (runtime.checkpoint_every: 0); a rerun starts over", at)
        raise Interrupted(self.signum)


class Interrupted(SystemExit):
    """A training job stopped by a signal (after its checkpoint): exit status 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name} (exit status {self.code})"


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
