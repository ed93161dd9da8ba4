"""Pre-flight estimates of a training job's peak memory and wall time, from its spec alone.

Snakemake calls this at parse time for every training job: the estimates, with margins,
are the train rule's ``mem_mb`` and ``runtime`` (``get_train_mem_mb``,
``get_train_runtime`` in ``common.smk``), and a study with a job that cannot fit
``runtime.max_memory`` (default: this machine's memory) is refused before anything runs
(``check``), naming the settings that make the job large and the estimate.
``train.steps: 1.0e+12``, ``model.width: 1.0e+9`` or ``data.n_train: 1.0e+9`` would
otherwise fail inside a job with an allocator error naming no key.

The memory of a job is a sum of parts, each from the sizes that decide it:

- the process (Python, torch, xarray and netCDF loaded): ``PROCESS_MB``;
- parameters and their optimiser state: members x parameters x ``PARAMETER_COPIES``
  (parameter, gradient, Adam's two moments, the kept best state, the checkpoint's clones);
- data: the data file's arrays in float64 as read, their tensors in the training dtype,
  and each member's copy of its seed's rows (``Members.select``);
- activations: the larger of the training step's (kept for the backward pass, on the
  batch rows) and the evaluation's (every split's predictions at once);
- curves: the loss and validation curves, per member and logged step, in their copies
  (trainer, results, point file);
- the NTK measure's Jacobians when ``measure.ntk`` is on.

Wall time: start-up, plus steps x (a fixed overhead per step + FLOPs / ``FLOP_RATE``),
for forward and backward on the batch rows of every member (the largest member's rows:
with full batch every member's step costs as much as the largest n's).

Calibration: ``benchmarks/resources.py`` runs real ``train_point`` jobs, each in a process
of its own on one torch thread, and reads that process's peak RSS
(``VmHWM`` of ``/proc/self/status``) and wall time. Measured 2026-12-02 on 2 cores (AMD
EPYC), torch 2.13 CPU:

=============== =========== ============ ========== ===========
job             measured MB estimated MB measured s estimated s
=============== =========== ============ ========== ===========
tiny            396         421          6.0        8.0
default-column  444         483          44.0       68.0
wide            717         766          25.5       54.2
big             1125        1557         58.2       119.8
unaligned       664         743          27.1       18.4
=============== =========== ============ ========== ===========

(default-column: the default study's widest job, 15 members x 2000 steps; wide and big:
width 512 and 1024, depth 3, n_train 4000 and 8000; unaligned: random query points.) The
memory estimate lies above every measured peak, by 6-38%; the time estimate within a
factor of 2.2 either way, hence the rule's margin. They are estimates for sizing and
refusing jobs, not bounds: a GPU job's host memory and time differ (the CPU's estimate
is usually the larger).

Imports nothing heavy (reading a dataset's shapes opens its NetCDF header with netCDF4,
only for ``problem.name: dataset``): Snakemake imports it at parse time.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

from opscale.config import ConfigError, _report
from opscale.problems.registry import PROBLEMS

BYTES = {"float32": 4, "float64": 8}
MB = 2**20
PROCESS_MB = 420  # RSS of a training process once its imports are loaded (measured: 372)
PARAMETER_COPIES = 7  # parameter, gradient, Adam m and v, kept best, checkpoint clones (2)
CURVE_COPIES = 4  # trainer arrays, results, point dataset, NetCDF write buffer
SAVED_PER_UNIT = 2  # values kept per hidden unit and row for backward (input, activation)
STARTUP_S = 8.0  # imports, data file, model build, point file (measured: 8 s, tiny job)
STEP_OVERHEAD_S = 1.0e-3  # Python, optimiser and validation bookkeeping per step
FLOP_RATE = 3.0e10  # FLOP/s of a job on batched matmuls (measured: 10-60e9, see above)
BACKWARD_FACTOR = 2  # a backward pass costs two forward passes
RUNTIME_MARGIN, RUNTIME_FLOOR_MIN = 3.0, 10  # the rule's runtime: 3x the estimate + 10 min
# The rule's mem_mb: 1.5x the estimate, so that a scheduler that kills at mem_mb (SLURM's
# cgroups) leaves room for what the calibration did not cover (measures, other models).
MEMORY_MARGIN = 1.5


@dataclass(frozen=True)
class Shapes:
    """Per-function sizes a model sees: sensors m, queries q, query dimension, aligned."""

    sensors: int
    queries: int
    y_dim: int
    aligned: bool


@dataclass(frozen=True)
class Estimate:
    """A training job's estimated peak memory (bytes by part) and wall time (s)."""

    parts: dict  # "what (the keys that decide it)" -> bytes
    seconds: float

    @property
    def memory_mb(self) -> int:
        """Estimated peak resident memory, MB (checked against ``runtime.max_memory``)."""
        return math.ceil(sum(self.parts.values()) / MB)

    @property
    def request_mb(self) -> int:
        """Memory to ask the scheduler for, MB, with margin (the rule's ``mem_mb``)."""
        return math.ceil(MEMORY_MARGIN * self.memory_mb)

    @property
    def runtime_min(self) -> int:
        """Wall-time limit, minutes, with margin (the rule's ``runtime``)."""
        return math.ceil(RUNTIME_MARGIN * self.seconds / 60) + RUNTIME_FLOOR_MIN


def estimate(spec: dict) -> Estimate:
    """Peak memory and wall time of the training job of a point spec (``opscale.grid``).

    Parameters
    ----------
    spec : dict
        A resolved point spec: problem, data, model, train, measure, seeds; ``data.n_train``
        is a list when the job trains several training-set sizes as members.
    """
    shapes = problem_shapes(spec["problem"])
    sizes = spec["data"]
    n_values = sizes["n_train"] if isinstance(sizes["n_train"], list) else [sizes["n_train"]]
    seeds, members = len(spec["seeds"]), len(spec["seeds"]) * len(n_values)
    n, rows = max(n_values), max(n_values) + sizes["n_val"] + sizes["n_test"]
    batch = min(n, spec["train"]["batch_size"] or n)
    bytes_per_value = BYTES[spec["train"]["dtype"]]
    model = spec["model"]
    steps = budget(spec["train"], n)
    per_row = shapes.sensors + shapes.queries * (1 if shapes.aligned else 1 + shapes.y_dim)
    width = model["width"]
    parts = {
        "the process (python, torch)": PROCESS_MB * MB,
        "parameters and optimiser state (model.width, model.depth, model.p, problem.sensors)": (
            members * n_params(model, shapes) * bytes_per_value * PARAMETER_COPIES
        ),
        "data (data.n_train, data.n_val, data.n_test, problem.sensors, problem.queries, seeds)": (
            rows * per_row * (seeds * (16 + bytes_per_value) + members * bytes_per_value)
        ),
        "activations (data.n_train or train.batch_size, model.width, model.depth, "
        "problem.queries)": members
        * bytes_per_value
        * max(saved_values(model, shapes, batch), evaluated_values(shapes, rows, width)),
        "loss and validation curves (train.steps or train.epochs, train.log_every, "
        "train.eval_every)": members
        * 8
        * CURVE_COPIES
        * (steps // spec["train"]["log_every"] + steps // spec["train"]["eval_every"]),
    }
    if "ntk" in spec.get("measure", {}):
        ntk = spec["measure"]["ntk"]
        points = ntk["functions"] * min(ntk["queries"] or shapes.queries, shapes.queries)
        parts["NTK Jacobians (measure.ntk, model.width)"] = (
            members * points * n_params(model, shapes) * 8 * 2
        )
    flops = members * (1 + BACKWARD_FACTOR) * forward_flops(model, shapes, batch)
    seconds = STARTUP_S + steps * (STEP_OVERHEAD_S + flops / FLOP_RATE)
    return Estimate(parts, seconds)


def budget(train: dict, n: int) -> int:
    """Steps of the longest member: ``train.steps``, or ``ceil(epochs n / batch)``."""
    if train["epochs"] is None:
        return train["steps"]
    return math.ceil(train["epochs"] * n / min(n, train["batch_size"] or n))


def problem_shapes(problem: dict) -> Shapes:
    """The per-function sizes of a problem's data, from its settings (or its files)."""
    name = problem["name"]
    if name == "dataset":
        return _dataset_shapes(problem)
    if name == "subspace_regression":
        return Shapes(problem["ambient_dim"], 1, 1, True)
    if name == "tanh_teacher":
        return Shapes(problem["dim"], 1, 1, True)
    d2 = PROBLEMS[name].output_dim(problem)
    aligned = problem["query_points"] == "grid"
    return Shapes(problem["sensors"], problem["queries"] ** d2, d2, aligned)


def _dataset_shapes(problem: dict) -> Shapes:
    from opscale.problems.datasets import files  # imports xarray: datasets only

    names = (problem["dataset"]["input"], problem["dataset"]["output"])
    try:
        u, s = _variable_shapes(str(files(problem)["train"]), names)
    except (OSError, KeyError, IndexError):
        return Shapes(1, 1, 1, True)  # the data job names what is wrong with the file
    return Shapes(math.prod(u[1:]), math.prod(s[1:]), len(s) - 1, True)


@functools.cache
def _variable_shapes(path: str, names: tuple) -> list[tuple]:
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        return [tuple(ds.variables[name].shape) for name in names]


def _layers(model: dict, inputs: int, outputs: int) -> list[int]:
    """Layer sizes of an MLP of the model's width and depth."""
    return [inputs, *[model["width"]] * (model["depth"] - 1), outputs]


def _mlp_params(sizes: list[int]) -> int:
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _mlp_flops(sizes: list[int], rows: int) -> int:
    return rows * sum(b * (2 * a + 1) for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def basis_functions(model: dict) -> int:
    """DeepONet's number p of basis functions (``model.p``; null means p = width)."""
    return model["p"] or model["width"]


def _deeponet(model: dict, shapes: Shapes) -> tuple[list[int], list[int]]:
    p = basis_functions(model)
    return _layers(model, shapes.sensors, p), _layers(model, shapes.y_dim, p)


def sensor_layer(model: dict, shapes: Shapes) -> int:
    """Weights and biases of a DeepONet's sensor layer: the branch's first layer, from u
    at the n_x sensors to its first hidden layer (to p with ``model.depth`` 1)."""
    branch, _ = _deeponet(model, shapes)
    return _mlp_params(branch[:2])


def n_params(model: dict, shapes: Shapes) -> int:
    """Trainable parameters of one member (the closed forms of ``opscale.models``)."""
    name = model["name"]
    if name == "deeponet":
        branch, trunk = _deeponet(model, shapes)
        return _mlp_params(branch) + _mlp_params(trunk) + 1
    if name == "mlp":
        return _mlp_params(_layers(model, shapes.sensors, shapes.queries))
    if name == "iterative":
        block = _mlp_params(_layers(model, shapes.sensors + shapes.queries, shapes.queries))
        return block * (1 if model["shared"] else model["iterations"])
    return model["width"] * (shapes.sensors + 1)  # two_layer


def forward_flops(model: dict, shapes: Shapes, rows: int) -> int:
    """Forward FLOPs of one member on `rows` functions (as the models count them)."""
    factor = 3 if model.get("linearized") else 1  # opscale.models.linearized.FLOPS_FACTOR
    name, q = model["name"], shapes.queries
    if name == "deeponet":
        branch, trunk = _deeponet(model, shapes)
        trunk_rows = q if shapes.aligned else rows * q
        flops = (
            _mlp_flops(branch, rows)
            + _mlp_flops(trunk, trunk_rows)
            + rows * q * (2 * trunk[-1] + 1)
        )
    elif name == "mlp":
        flops = _mlp_flops(_layers(model, shapes.sensors, q), rows)
    elif name == "iterative":
        block = _layers(model, shapes.sensors + q, q)
        flops = model["iterations"] * (_mlp_flops(block, rows) + 3 * rows * q)
    else:  # two_layer
        flops = rows * 2 * model["width"] * (shapes.sensors + 1)
    return factor * flops


def saved_values(model: dict, shapes: Shapes, rows: int) -> int:
    """Values one member's training step keeps for its backward pass on `rows` functions."""
    name, q, hidden = model["name"], shapes.queries, model["width"] * (model["depth"] - 1)
    output = rows * q * 3  # prediction, difference (kept by the fused loss), its gradient
    if name == "deeponet":
        p = basis_functions(model)
        trunk_rows = q if shapes.aligned else rows * q
        values = rows * (hidden + p) + trunk_rows * (hidden + p) + output
    elif name == "mlp":
        values = rows * hidden + output
    elif name == "iterative":
        values = model["iterations"] * rows * (shapes.sensors + 2 * q + hidden) + output
    else:  # two_layer
        values = rows * model["width"] + output
    return (3 if model.get("linearized") else 1) * SAVED_PER_UNIT * values


def evaluated_values(shapes: Shapes, rows: int, width: int) -> int:
    """Values one member's evaluation holds: every split's predictions, and their errors."""
    trunk = 0 if shapes.aligned else rows * shapes.queries * width
    return 3 * rows * shapes.queries + 2 * rows * width + trunk


def machine_memory_mb() -> int:
    """Physical memory of this machine, MB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MB


def max_memory_mb(runtime: dict) -> int:
    """The memory one training job may use: ``runtime.max_memory`` or this machine's."""
    return runtime.get("max_memory") or machine_memory_mb()


def check(config: dict, estimates: dict, source: str = "config") -> None:
    """Refuse a study with a training job whose estimate exceeds ``runtime.max_memory``.

    `estimates` maps point ids to ``Estimate``s. The message names the largest job, its
    estimate, and its parts with the settings that decide each, largest first.

    Raises
    ------
    ConfigError
        In the format of ``opscale.config.validate_study``'s errors.
    """
    source, limit = source or "config", max_memory_mb(config["runtime"])
    over = {point: e for point, e in estimates.items() if e.memory_mb > limit}
    if not over:
        return
    point, worst = max(over.items(), key=lambda item: item[1].memory_mb)
    if config["runtime"].get("max_memory"):
        allowed = f"runtime.max_memory = {limit} MB"
    else:
        allowed = f"this machine's memory, {size(limit * MB)} (runtime.max_memory: null)"
    total = sum(worst.parts.values())
    parts = sorted(worst.parts.items(), key=lambda item: -item[1])
    listed = "; ".join(f"{what} {size(value)}" for what, value in parts if value > total / 100)
    raise ConfigError(
        _report(
            source,
            [
                f"runtime.max_memory: {len(over)} of {len(estimates)} training job(s) would "
                f"not fit: job {point} needs an estimated {size(worst.memory_mb * MB)}, more "
                f"than {allowed}; its largest parts: {listed}"
            ],
        )
    )


def size(value: float) -> str:
    """Bytes as text in binary units: ``1.46 TiB``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
