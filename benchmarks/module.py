"""Speed of a plain nn.Module batched by vmap against the hand-batched models.

The same networks, S members each (default 16): the hand-batched DeepONet and MLP
(``model.name: deeponet`` / ``mlp``, ``opscale.ensemble``) and the same architectures
written as plain single-member ``nn.Module``s, batched by ``opscale.models.module.vmapped``
(``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``). Both have the same
parameters per member (checked). One measured step is the engine's training step: the
fused per-member squared error (``train.member_losses``), its backward and one fused AdamW
step, full batch on the DeepXDE antiderivative sizes (100 sensors, 100 query points,
width 40, depth 2, n functions per member).

Throughput in member-iterations per second (S / step time), in interleaved, shuffled
rounds after one unmeasured warm-up round of each (the machine's load varies: only the
medians and ratios of one run mean something); reported as median and range over rounds,
with the machine, thread count and ``uptime``'s load before and after.

    python benchmarks/module.py                 # ~1 min on 2 loaded cores
    python benchmarks/module.py --quick         # smoke run
    python benchmarks/module.py --no-append     # print only

Writes a Markdown report to stdout and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import subprocess
import time

import torch
from results_file import cpu_model, publish  # benchmarks/results_file.py
from torch import nn

from opscale.ensemble import params_per_member
from opscale.models import build_model
from opscale.models.module import vmapped
from opscale.rng import torch_generator
from opscale.train import member_losses


class PlainMLP(nn.Module):
    """One MLP, u (n, m) -> (n, q), the layers of ``model.name: mlp``."""

    def __init__(self, sizes):
        super().__init__()
        layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        self.body = nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1])

    def forward(self, u, y):
        return self.body(u)


class PlainDeepONet(nn.Module):
    """One unstacked DeepONet on aligned points: u (n, m), y (q, d) -> (n, q)."""

    def __init__(self, m, d, width, depth, p):
        super().__init__()
        hidden = [width] * (depth - 1)
        self.branch = PlainMLP([m, *hidden, p]).body
        self.trunk = nn.Sequential(*PlainMLP([d, *hidden, p]).body, nn.ReLU())
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, u, y):
        return self.branch(u) @ self.trunk(y).T + self.bias  # (n, p) @ (p, q)


def plain_mlp(spec, shapes):
    sizes = [shapes["sensors"], *[spec["width"]] * (spec["depth"] - 1), shapes["queries"]]
    return PlainMLP(sizes)


def plain_deeponet(spec, shapes):
    w = spec["width"]
    return PlainDeepONet(shapes["sensors"], shapes["y_dim"], w, spec["depth"], spec["p"] or w)


def models(spec: dict, shapes: dict, members: int) -> dict[str, nn.Module]:
    """name -> model with `members` members; hand-batched and vmapped of each family."""
    generators = [torch_generator(seed, "init") for seed in range(members)]
    out = {}
    for family, factory in (("deeponet", plain_deeponet), ("mlp", plain_mlp)):
        hand = build_model(spec | {"name": family}, shapes, generators, torch.float32)
        generators = [torch_generator(seed, "init") for seed in range(members)]
        plain = vmapped(factory)(spec, shapes, generators, torch.float32)
        assert params_per_member(hand) == params_per_member(plain), family
        out[f"{family} hand-batched"], out[f"{family} vmap"] = hand, plain
    return out


def step_fn(model: nn.Module, u, y, s):
    """One training step of the engine (loss, backward, fused AdamW), as a closure."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

    def step():
        optimizer.zero_grad(set_to_none=True)
        member_losses(model, u, y, s, None).sum().backward()
        optimizer.step()

    return step


def measure(steps: dict, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per step of every model, per round (interleaved, shuffled order)."""
    for step in steps.values():  # warm-up
        for _ in range(max(2, per_round // 4)):
            step()
    times = {name: [] for name in steps}
    order = list(steps)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            times[name].append((time.perf_counter() - start) / per_round)
    return times


def machine() -> str:
    model = cpu_model()
    return (
        f"{model}, {os.cpu_count()} logical CPUs, torch {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def report(args, times: dict, members: int, loads: tuple[str, str]) -> str:
    rate = {name: [members / t for t in ts] for name, ts in times.items()}
    median = {name: statistics.median(r) for name, r in rate.items()}
    lines = [
        f"## plain nn.Module by vmap vs hand-batched (benchmarks/module.py), "
        f"{datetime.date.today()}",
        "",
        f"`python benchmarks/module.py{' --quick' if args.quick else ''} --members {members} "
        f"--n {args.n} --rounds {args.rounds} --per-round {args.per_round} "
        f"--threads {args.threads}`: S = {members} members, n = {args.n} "
        f"functions each, 100 sensors, 100 query points, width {args.width}, depth 2, "
        f"float32, full batch; one step = fused squared error, backward, fused AdamW. "
        f"{args.rounds} interleaved rounds of {args.per_round} steps after a warm-up.",
        f"Machine: {machine()}. The machine was loaded by other work; `uptime` before: "
        f"`{loads[0]}`; after: `{loads[1]}`.",
        "",
        "| model | member-it/s, median (range) | vmap / hand-batched, median (range of rounds) |",
        "|---|---|---|",
    ]
    for name, r in rate.items():
        family, kind = name.split(" ")
        # per round: the two ran back to back in that round, under about the same load
        rounds = [a / b for a, b in zip(r, rate[f"{family} hand-batched"], strict=True)]
        ratio = f"**{statistics.median(rounds):.2f}** ({min(rounds):.2f}–{max(rounds):.2f})"
        lines.append(
            f"| {name} | {median[name]:,.0f} ({min(r):,.0f}–{max(r):,.0f}) | "
            f"{'—' if kind == 'hand-batched' else ratio} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--n", type=int, default=1000, help="functions per member")
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 steps, n = 200")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.n = 3, 5, 200
    torch.set_num_threads(args.threads)
    random.seed(0)
    spec = {"width": args.width, "depth": 2, "p": None, "activation": "relu"}
    shapes = {"sensors": 100, "y_dim": 1, "queries": 100}
    g = torch.Generator().manual_seed(0)
    u = torch.randn(args.members, args.n, 100, generator=g)
    y = torch.rand(100, 1, generator=g)
    s = torch.randn(args.members, args.n, 100, generator=g)
    steps = {name: step_fn(m, u, y, s) for name, m in models(spec, shapes, args.members).items()}
    before = uptime()
    times = measure(steps, args.rounds, args.per_round)
    publish(report(args, times, args.members, (before, uptime())), append=not args.no_append)


if __name__ == "__main__":
    main()
