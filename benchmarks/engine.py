"""Benchmark the training engine against a plain PyTorch loop and DeepXDE.

All methods train the same DeepONet (branch [100, w, w], trunk [1, w, w], ReLU, Glorot
normal, Adam lr 1e-3, full batch, MSE) on the same data: the antiderivative of 1000 GRF
inputs (RBF, l = 0.2) at 100 sensors/points, tested on 1000 fresh functions.

Throughput is measured in interleaved, shuffled rounds (the machine's load varies, so
only medians and ratios measured in one run are meaningful), after one unmeasured warm-up
round of every method (`--warmup-rounds`), and reported as member-iterations per second
and achieved GFLOP/s (forward + 2x backward matmul FLOPs), next to the fp32 matmul peak
measured in the same run. The engine runs its whole training step (``train_step`` and the
bookkeeping of ``after_step``), as a job does. Accuracy: each method trains
`--accuracy-models` models (seeds) for `--accuracy-steps` steps (0: no accuracy run); the
test relative L2 errors are compared.

Threads. Every method runs with the same intra-op thread count (`--threads`, default:
the CPUs this process may use), set once through ``torch.set_num_threads`` (which sets
OpenMP's and MKL's too) and through OMP_NUM_THREADS / MKL_NUM_THREADS for anything
started later; the counts are checked before every measurement and printed in the report.
DeepXDE does not change them (checked for 1.15). Small per-model loops (plain, DeepXDE)
are dispatch-bound and gain little from a second thread, while the batched engine does,
so the ratios depend on the thread count and on what else the cores are doing: compare
only ratios of one run, with its thread count and load.

DeepXDE's ``Model.train(iterations=k)`` evaluates the loss on the training and the test set
at its start and its end: 4 forward passes over 1000 functions per round of k steps
(about 1.3 training steps' worth, ~1% at k = 100), counted in its time, as in its own use.

    python benchmarks/engine.py --reference-train /tmp/old_train.py   # A/B vs another train.py

    python benchmarks/engine.py                 # full run (~20-30 min on 2 cores)
    python benchmarks/engine.py --quick         # smoke run (~2 min)

DeepXDE is optional: ``pip install -e '.[bench]'`` (it is skipped if not importable).
Writes a Markdown report to stdout and appends it to benchmarks/RESULTS.md (--no-append
to skip).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import random
import statistics
import subprocess
import time
from pathlib import Path

os.environ.setdefault("DDE_BACKEND", "pytorch")


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _threads_from_argv(argv: list[str]) -> int:
    """--threads N (or --threads=N) from the command line, before torch is imported."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return _usable_cpus()


# OpenMP and MKL read these when they start: set them before torch is imported.
THREADS = _threads_from_argv(__import__("sys").argv[1:])
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from results_file import cpu_model, publish  # noqa: E402  (benchmarks/results_file.py)
from scipy.stats import mannwhitneyu, wilcoxon  # noqa: E402
from torch import nn  # noqa: E402

from opscale import config as cfg  # noqa: E402
from opscale import grid, problems, train  # noqa: E402
from opscale.evaluate import relative_l2  # noqa: E402
from opscale.models import build_model  # noqa: E402
from opscale.problems.tensors import Split  # noqa: E402

HERE = Path(__file__).resolve().parent
SENSORS = QUERIES = 100


# ---------------------------------------------------------------------------- data
def make_data(n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """GRF inputs and antiderivatives from opscale's own problem library (seed 0)."""
    config = cfg.validate_study(
        {"study": "bench", "seeds": [0], "data": {"n_train": n_train, "n_val": 1, "n_test": n_test}}
    )
    ds = problems.generate(grid.data_spec(grid.points(config)[0].spec))
    split = ds.split.values
    return {
        "u_train": ds.u.values[0, split == "train"],
        "s_train": ds.s.values[0, split == "train"],
        "u_test": ds.u.values[0, split == "test"],
        "s_test": ds.s.values[0, split == "test"],
        "y": ds.y.values,
    }


def _t(array) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32)


# ---------------------------------------------------------------------------- methods
class Engine:
    """opscale's batched engine: S members, one AdamW, shared data."""

    def __init__(self, data, members: int, width: int, compile: bool, seed0: int = 0, module=train):
        table = module.Members(
            np.arange(seed0, seed0 + members),
            np.full(members, len(data["u_train"])),
            np.zeros(members, dtype=int),
            False,
        )
        split = {
            "train": Split(_t(data["u_train"])[None], _t(data["y"]), _t(data["s_train"])[None]),
            "val": Split(_t(data["u_test"])[None, :0], _t(data["y"]), _t(data["s_test"])[None, :0]),
            "test": Split(_t(data["u_test"])[None], _t(data["y"]), _t(data["s_test"])[None]),
        }
        self.data = table.select(split)
        spec = {"name": "deeponet", "width": width, "depth": 2, "p": None, "activation": "relu"}
        self.model = build_model(spec, module.shapes(self.data), table.generators(), torch.float32)
        recipe = cfg.validate_study({"study": "b"})["train"] | {
            "steps": 10**9,
            "eval_every": 10**9,
            "log_every": 10**9,
        }
        self.trainer = module.Trainer(self.model, self.data, recipe, table, compile=compile)
        self.members = members
        self.initial = dict(self.model.named_parameters())
        self.initial = {name: p.detach().clone() for name, p in self.initial.items()}

    def steps(self, k: int) -> None:
        """k whole steps of the training loop (the step and its bookkeeping)."""
        trainer = self.trainer
        for _ in range(k):
            trainer.step += 1
            trainer.after_step(trainer.train_step())

    def test_errors(self) -> list[float]:
        test = self.data["test"]
        with torch.no_grad():
            return relative_l2(self.model(test.u, test.y), test.s).tolist()


class PlainDeepONet(nn.Module):
    """The DeepONet a researcher writes with nn.Linear (same layers and init as DeepXDE)."""

    def __init__(self, width: int):
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(SENSORS, width), nn.ReLU(), nn.Linear(width, width))
        self.trunk = nn.Sequential(
            nn.Linear(1, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.b0 = nn.Parameter(torch.zeros(1))
        for layer in [*self.branch, *self.trunk]:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, u, y):
        return self.branch(u) @ self.trunk(y).T + self.b0


class Plain:
    """One plain PyTorch model at a time (a per-model loop); `fused` uses Adam(fused=True)."""

    def __init__(self, data, width: int, fused: bool = False, seed: int = 0):
        torch.manual_seed(seed)
        self.model = PlainDeepONet(width)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=1e-3, **({"fused": True} if fused else {})
        )
        self.u, self.y, self.s = _t(data["u_train"]), _t(data["y"]), _t(data["s_train"])
        self.test = (_t(data["u_test"]), _t(data["s_test"]))
        self.loss = nn.MSELoss()
        self.members = 1

    def start_from(self, engine: Engine, member: int) -> Plain:
        """Take the initial weights of one engine member (a seed-matched comparison)."""
        initial = {k: v[member] for k, v in engine.initial.items()}
        with torch.no_grad():
            for net in ("branch", "trunk"):
                for j, layer in enumerate(getattr(self.model, net)[::2]):
                    layer.weight.copy_(initial[f"{net}.layers.{j}.weight"].T)
                    layer.bias.copy_(initial[f"{net}.layers.{j}.bias"][0])
            self.model.b0.copy_(initial["bias"].flatten())
        return self

    def steps(self, k: int) -> None:
        for _ in range(k):
            self.optimizer.zero_grad()
            self.loss(self.model(self.u, self.y), self.s).backward()
            self.optimizer.step()

    def test_errors(self) -> list[float]:
        with torch.no_grad():
            pred = self.model(self.test[0], self.y)
        return relative_l2(pred[None], self.test[1][None]).tolist()


class DeepXDE:
    """DeepXDE 1.15's DeepONetCartesianProd, trained with its own Model.train loop."""

    def __init__(self, data, width: int, seed: int = 0):
        import deepxde as dde

        dde.config.set_random_seed(seed)
        self.dde = dde
        triple = dde.data.TripleCartesianProd(
            X_train=(data["u_train"].astype(np.float32), data["y"].astype(np.float32)),
            y_train=data["s_train"].astype(np.float32),
            X_test=(data["u_test"].astype(np.float32), data["y"].astype(np.float32)),
            y_test=data["s_test"].astype(np.float32),
        )
        net = dde.nn.DeepONetCartesianProd(
            [SENSORS, width, width], [1, width, width], "relu", "Glorot normal"
        )
        self.model = dde.Model(triple, net)
        self.model.compile("adam", lr=1e-3)
        self.data, self.members = data, 1

    def steps(self, k: int) -> None:
        self.model.train(iterations=k, display_every=10**9, verbose=0)

    def test_errors(self) -> list[float]:
        pred = self.model.predict(
            (self.data["u_test"].astype(np.float32), self.data["y"].astype(np.float32))
        )
        return relative_l2(_t(pred)[None], _t(self.data["s_test"])[None]).tolist()


def deepxde_available() -> bool:
    try:
        import deepxde  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: skip it
        return False
    return True


# ---------------------------------------------------------------------------- measuring
def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of a square matmul with the process's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def threads() -> dict[str, str]:
    """The thread settings in force now (torch intra-op and inter-op, OpenMP/MKL env)."""
    return {
        "torch": str(torch.get_num_threads()),
        "interop": str(torch.get_num_interop_threads()),
        **{name: os.environ.get(name, "unset") for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def _check_threads(name: str, expected: int) -> None:
    """Every method measured with the same intra-op threads (a library could change them)."""
    if torch.get_num_threads() != expected:
        raise RuntimeError(f"{name}: torch threads {torch.get_num_threads()} != {expected}")


def throughput(
    methods: dict, rounds: int, steps: int, warmup_rounds: int = 1
) -> dict[str, list[float]]:
    """Member-iterations/s of each method per round, in shuffled interleaved order.

    The first `warmup_rounds` rounds are run the same way and not recorded.
    """
    speeds = {name: [] for name in methods}
    order = list(methods)
    expected = torch.get_num_threads()
    for round_ in range(-warmup_rounds, rounds):
        random.Random(round_).shuffle(order)
        lap = {}
        for name in order:
            method = methods[name]
            _check_threads(name, expected)
            start = time.perf_counter()
            method.steps(steps)
            lap[name] = method.members * steps / (time.perf_counter() - start)
        if round_ >= 0:
            for name, speed in lap.items():
                speeds[name].append(speed)
        print(
            f"round {round_ + 1}/{rounds}{' (warm-up)' if round_ < 0 else ''}, load {load()}: "
            + ", ".join(f"{n} {lap[n]:.0f}" for n in methods),
            flush=True,
        )
    return speeds


def build(name: str, data, width: int, seed: int = 0, reference=None):
    """A fresh method by name: engine-S<k>[-compiled][-ref], plain, plain-fused, deepxde.

    ``plain-matched`` (accuracy only) is the plain loop started from the engine's initial
    weights for the same seed, so the two differ only in how they compute. ``-ref``: the
    engine with the Trainer of the `reference` module (``--reference-train``).
    """
    if name.startswith("engine"):
        members = int(name.split("-")[1][1:])
        module = reference if name.endswith("-ref") else train
        compiled = "-compiled" in name
        return Engine(data, members, width, compiled, seed, module)
    if name.startswith("plain"):
        return Plain(data, width, name == "plain-fused", seed)
    return DeepXDE(data, width, seed)


def warm(methods: dict) -> dict[str, float]:
    """First steps of every method (compilation included); seconds each."""
    seconds = {}
    for name, method in methods.items():
        start = time.perf_counter()
        method.steps(3)
        seconds[name] = time.perf_counter() - start
    return seconds


def accuracy(names, data, models: int, steps: int, width: int) -> dict[str, list[float]]:
    """Test errors of `models` models of each method after `steps` steps ({}: no models)."""
    errors = {}
    if models <= 0:
        return errors
    for name in names:
        if name.startswith("engine"):
            method = Engine(data, models, width, "-compiled" in name)
            method.steps(steps)
            errors[name] = method.test_errors()
        else:
            errors[name] = []
            initial = Engine(data, models, width, False) if name == "plain-matched" else None
            for seed in range(models):
                method = build(name.removesuffix("-matched"), data, width, seed)
                if initial is not None:
                    method.start_from(initial, seed)
                method.steps(steps)
                errors[name] += method.test_errors()
        print(f"accuracy {name}: median {statistics.median(errors[name]):.4f}", flush=True)
    return errors


# ---------------------------------------------------------------------------- report
def machine() -> str:
    model = cpu_model()
    settings = threads()
    return (
        f"{model}, {os.cpu_count()} logical CPUs ({_usable_cpus()} usable), threads: "
        f"torch {settings['torch']} intra-op / {settings['interop']} inter-op, "
        f"OMP_NUM_THREADS={settings['OMP_NUM_THREADS']}, "
        f"MKL_NUM_THREADS={settings['MKL_NUM_THREADS']} (the same for every method), "
        f"torch {torch.__version__}, Python {platform.python_version()}"
        f"{', DeepXDE ' + _deepxde_version() if deepxde_available() else ''}"
    )


def _deepxde_version() -> str:
    import deepxde

    return deepxde.__version__


def step_flops(width: int, functions: int = 1000) -> int:
    """FLOPs of one training step of one model (forward + 2x backward, opscale's count)."""
    spec = {"name": "deeponet", "width": width, "depth": 2, "p": None, "activation": "relu"}
    model = build_model(
        spec,
        {"sensors": SENSORS, "y_dim": 1, "queries": QUERIES},
        [torch.Generator()],
        torch.float32,
    )
    return (1 + train.BACKWARD_FACTOR) * model.flops(functions, QUERIES)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(args, peak, speeds, warmup, errors, flops: int, started_load) -> str:
    ref = {k: statistics.median(v) for k, v in speeds.items()}
    lines = [
        f"## Engine benchmark, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. Load average at start / end: {started_load} / {load()}.",
        f"Command: `python benchmarks/engine.py {' '.join(args.argv)}` "
        f"(git {git_commit()}). fp32 matmul peak (2048², same run): **{peak:.0f} GFLOP/s**.",
        f"Throughput: width {args.width}, {args.rounds} interleaved rounds of {args.steps} steps "
        f"after {args.warmup_rounds} unmeasured warm-up round(s); medians (min–max).",
        "",
        "| method | member-it/s | GFLOP/s | % of peak | vs DeepXDE | vs plain "
        "| first 3 steps (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in speeds.items():
        gflops = ref[name] * flops / 1e9
        lines.append(
            f"| {name} | {ref[name]:.0f} ({min(values):.0f}–{max(values):.0f}) | {gflops:.1f} | "
            f"{100 * gflops / peak:.0f}% | {_ratio(ref, name, 'deepxde')} | "
            f"{_ratio(ref, name, 'plain')} | {warmup[name]:.1f} |"
        )
    if errors:
        lines += [
            "",
            f"Accuracy: {args.accuracy_models} models per method, "
            f"{args.accuracy_steps} full-batch steps, mean relative L2 test error.",
            "",
            "| method | median | min | max | Mann-Whitney p vs the first |",
            "|---|---|---|---|---|",
        ]
        first = next(iter(errors.values()))
        lines += [
            f"| {n} | {statistics.median(e):.4f} | {min(e):.4f} | {max(e):.4f} | "
            f"{mannwhitneyu(first, e).pvalue:.2f} |"
            for n, e in errors.items()
        ]
        lines += _paired(errors)
    return "\n".join(lines) + "\n"


def _paired(errors: dict[str, list[float]]) -> list[str]:
    """Seed by seed, engine vs the plain loop from the same initial weights."""
    engine = next((e for n, e in errors.items() if n.startswith("engine")), None)
    if engine is None or "plain-matched" not in errors:
        return []
    ratio = np.array(errors["plain-matched"]) / np.array(engine)
    return [
        "",
        f"Seed-matched (plain loop started from each engine member's initial weights): "
        f"plain/engine error ratio median {np.median(ratio):.3f} "
        f"(min {ratio.min():.3f}, max {ratio.max():.3f}); Wilcoxon signed-rank p = "
        f"{wilcoxon(errors['plain-matched'], engine).pvalue:.2f}.",
    ]


def _ratio(ref, name, base) -> str:
    return f"{ref[name] / ref[base]:.2f}x" if base in ref else "-"


def git_commit() -> str:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=HERE
    )
    return out.stdout.strip() or "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--threads", type=int, default=_usable_cpus(), help="intra-op threads of every method"
    )
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--members", default="1,4,16,64", help="engine sizes S")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="steps per round and method")
    parser.add_argument("--warmup-rounds", type=int, default=1, help="unmeasured first rounds")
    parser.add_argument(
        "--reference-train",
        help="a train.py (e.g. an older copy) whose Trainer also runs, as engine-S<k>-ref",
    )
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--accuracy-models", type=int, default=16)
    parser.add_argument(
        "--accuracy-methods",
        default="engine-S16,plain,deepxde",
        help="methods whose test errors are compared (comma-separated)",
    )
    parser.add_argument("--accuracy-steps", type=int, default=10000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else __import__("sys").argv[1:]
    if args.quick:
        args.rounds, args.steps, args.accuracy_models, args.accuracy_steps = 2, 20, 2, 200
        args.members = "1,16"
    if args.threads != THREADS:  # main(argv) called from Python with its own --threads
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    torch.set_num_threads(args.threads)  # also OpenMP's and MKL's for this process
    reference = _load_module(args.reference_train) if args.reference_train else None
    started_load = load()
    data = make_data(1000, 1000)
    peak = matmul_peak()
    names = [f"engine-S{s}" for s in args.members.split(",")]
    names += [] if args.no_compile else [f"{n}-compiled" for n in names]
    names += [f"{n}-ref" for n in names] if reference else []
    names += ["plain", "plain-fused"] + (["deepxde"] if deepxde_available() else [])
    methods = {name: build(name, data, args.width, reference=reference) for name in names}
    names.append("plain-matched")  # accuracy only
    warmup = warm(methods)
    rounds = throughput(methods, args.rounds, args.steps, args.warmup_rounds)
    speeds = {k: v for k, v in rounds.items() if v}
    accuracy_names = [n for n in args.accuracy_methods.split(",") if n in names]
    errors = accuracy(accuracy_names, data, args.accuracy_models, args.accuracy_steps, args.width)
    text = report(args, peak, speeds, warmup, errors, step_flops(args.width), started_load)
    publish(text, append=not args.no_append)


def _load_module(path: str):
    """A Python file as a module (a reference copy of opscale/train.py)."""
    spec = importlib.util.spec_from_file_location("reference_train", path)
    module = importlib.util.module_from_spec(spec)
    __import__("sys").modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
