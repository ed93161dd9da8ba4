"""Calibrate opscale.resources: measured peak memory and wall time of real training jobs.

Each job is one ``train_point`` call in a child process of its own, on one torch thread
like a rule's job (data generated first, in another); its peak RSS is that process's
``VmHWM`` (``/proc/self/status``) at its end, its wall time the child's. (Not
``getrusage``'s ``ru_maxrss``: Linux keeps the parent's peak at the fork across exec.)
Printed next to the estimate (``opscale.resources.estimate``) as a Markdown table:

    python benchmarks/resources.py            # every job
    python benchmarks/resources.py tiny wide  # some
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opscale import config as cfg  # noqa: E402
from opscale import grid, resources  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

DEFAULT_COLUMN = {  # the default study's widest column: 15 members, 2000 steps
    "study": "calibration",
    "seeds": [0, 1, 2],
    "data": {"n_train": 1000, "n_val": 200, "n_test": 500},
    "model": {"width": 80},
    "train": {"steps": 2000},
    "members": ["data.n_train"],
    "sweep": {"data.n_train": [25, 50, 100, 200, 400]},
}
JOBS = {
    "tiny": tiny_config(sweep={}),
    "default-column": DEFAULT_COLUMN,
    "wide": tiny_config(
        sweep={},
        seeds=[0, 1, 2],
        problem={"sensors": 100, "queries": 100},
        data={"n_train": 4000, "n_val": 200, "n_test": 2000},
        model={"width": 512, "depth": 3},
        train={"steps": 30, "eval_every": 10, "log_every": 10},
    ),
    "big": tiny_config(
        sweep={},
        seeds=[0, 1, 2],
        problem={"sensors": 100, "queries": 100},
        data={"n_train": 8000, "n_val": 200, "n_test": 4000},
        model={"width": 1024, "depth": 3},
        train={"steps": 10, "eval_every": 5, "log_every": 5},
    ),
    "unaligned": tiny_config(
        sweep={},
        problem={"sensors": 50, "queries": 50, "query_points": "random"},
        data={"n_train": 2000, "n_val": 100, "n_test": 500},
        model={"width": 64, "depth": 3},
        train={"steps": 30, "eval_every": 10, "log_every": 10},
    ),
}
DATA = (
    "import json, sys; from opscale import problems; "
    "problems.make_data_file(json.loads(sys.argv[1]), sys.argv[2])"
)
TRAIN = """
import json, sys
import torch
from opscale.train import train_point
torch.set_num_threads(1)
spec, data, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
train_point(spec, {}, data, out, {"device": "cpu", "compile": False, "checkpoint_every": 0})
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(peak[0].split()[1])  # KiB: the peak RSS of this process's own memory (not the parent's)
"""


def measure(name: str, study: dict, workdir: Path) -> dict:
    config = cfg.validate_study(study)
    point = grid.points(config)[0]
    data = workdir / f"{name}.nc"
    spec = grid.data_specs(config)[point.data_id]
    subprocess.run([sys.executable, "-c", DATA, json.dumps(spec), str(data)], check=True)
    started = time.perf_counter()
    out = workdir / f"{name}-point.nc"
    child = subprocess.run(
        [sys.executable, "-c", TRAIN, json.dumps(point.spec), str(data), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    peak_kib = int(child.stdout.split()[-1])
    estimate = resources.estimate(point.spec)
    return {
        "job": name,
        "measured MB": round(peak_kib / 1024),
        "estimated MB": estimate.memory_mb,
        "measured s": round(seconds, 1),
        "estimated s": round(estimate.seconds, 1),
    }


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, JOBS[name], Path(tmp)) for name in names or JOBS]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
