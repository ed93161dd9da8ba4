"""Shared test helpers: a tiny study (seconds, not minutes) and a real Snakemake runner."""

from __future__ import annotations

import contextlib
import copy
import re
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# The tiny study (the workflow's .test/ configuration, run end to end by test_workflow.py).
TINY_FILE = REPO / ".test" / "config.yaml"
TINY = yaml.safe_load(TINY_FILE.read_text())


def tiny_config(**sections) -> dict:
    """The tiny study, with whole top-level sections replaced by `sections`."""
    config = copy.deepcopy(TINY)
    config.update(copy.deepcopy(sections))
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(workdir: Path, config: Path, *args: str) -> list[str]:
    """The command line of the real workflow on `config`, with `workdir` as working directory."""
    # --configfile takes several values, so it comes last, after any target
    return [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        *args,
        "--configfile",
        str(config),
    ]


def run_snakemake(workdir: Path, config: Path, *args: str, check: bool = True):
    """Run the real workflow on `config` with `workdir` as working directory."""
    cmd = snakemake_command(workdir, config, *args)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned_jobs(workdir: Path, config: Path, *targets: str) -> dict[str, int]:
    """Jobs a dry run would execute, by rule ({} when there is nothing to do)."""
    out = run_snakemake(workdir, config, "--dry-run", *targets).stdout
    if "Job stats:" not in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return {rule: int(count) for rule, count in (line.split() for line in table) if rule != "total"}


def synthetic_cube(
    alpha=0.5,
    beta=0.8,
    floor=0.0,
    noise=0.05,
    seeds=5,
    rng_seed=0,
    widths=(4, 8, 16, 32),
    n_train=(16, 32, 64, 128, 256),
    seed_noise=None,
    seed_slope=0.0,
):
    """A study cube with a planted law err = floor + 3 N^-alpha + 2 n^-beta (times noise).

    Noise is multiplicative log-normal with standard deviation `noise` per model, plus a
    shift shared by all models of a seed (like nested data) of sd `seed_noise` (default:
    `noise`; 0 for independent models), plus a seed effect that changes along n: a slope
    in log n of sd `seed_slope` per seed (centred on the mean log n).
    N = 10 width^2; training FLOPs are 6 N n x 100 steps (full batch).
    """
    import json

    import numpy as np
    import xarray as xr

    from opscale import cube
    from opscale.config import validate_study

    rng = np.random.default_rng(rng_seed)
    widths, n_train = [int(w) for w in widths], [int(n) for n in n_train]
    n_params = np.array([10 * w * w for w in widths], float)
    law = floor + 3 * n_params[:, None] ** -alpha + 2 * np.array(n_train, float)[None] ** -beta
    seed_effect = rng.normal(0, noise if seed_noise is None else seed_noise, seeds)
    log_n = np.log(np.array(n_train, float))
    along_n = (log_n - log_n.mean())[None, :, None] * rng.normal(0, 1, seeds) * seed_slope
    err = law[..., None] * np.exp(
        seed_effect + along_n + rng.normal(0, noise, (len(widths), len(n_train), seeds))
    )
    dims = ("width", "n_train", "seed")
    flops = 600.0 * n_params[:, None] * np.array(n_train, float)[None]
    config = validate_study(  # resolved, as collect stores it
        {
            "study": "synthetic",
            "data": {"n_train": 256},
            "sweep": {"model.width": widths, "data.n_train": n_train},
        }
    )
    ds = xr.Dataset(
        {
            "test_rel_l2": (dims, err),
            "train_flops": (dims, np.broadcast_to(flops[..., None], err.shape).copy()),
            "status": (dims, np.zeros(err.shape, "int8")),
        },
        # as collect lays it out: n_params a coordinate of the model axis
        coords={
            "width": widths,
            "n_params": ("width", n_params.astype(int)),
            "n_train": n_train,
            "seed": np.arange(seeds),
        },
        attrs={
            "config": json.dumps(config),
            "axes": json.dumps({"width": "model.width", "n_train": "data.n_train"}),
        },
    )
    return cube.describe(ds)


def models_cube():
    """Two planted studies stacked on a swept model.name (deeponet: alpha 0.5, mlp: 0.3)."""
    import json

    import xarray as xr

    from opscale.config import validate_study

    parts = [synthetic_cube(alpha=a, rng_seed=i) for i, a in enumerate((0.5, 0.3))]
    ds = xr.concat(parts, dim="model").assign_coords(model=["deeponet", "mlp"])
    ds = ds.transpose("model", "width", "n_train", "seed")
    config = json.loads(parts[0].attrs["config"])
    config["sweep"] = {"model.name": ["deeponet", "mlp"], **config["sweep"]}
    axes = {"model": "model.name", "width": "model.width", "n_train": "data.n_train"}
    return ds.assign_attrs(config=json.dumps(validate_study(config)), axes=json.dumps(axes))


def planted_table(rows=200, alpha=0.5, beta=0.8, floor=0.05, noise=0.1, rng_seed=0):
    """An unreplicated irregular table: one run per (N, n), both log-uniform over 2 decades.

    err = floor + 3 N^-alpha + 2 n^-beta times log-normal noise of sd `noise`;
    N in [100, 10^4], n in [10, 1000] (integers).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rng_seed)
    n_params = np.round(10 ** rng.uniform(2, 4, rows))
    n_train = np.round(10 ** rng.uniform(1, 3, rows))
    err = floor + 3 * n_params**-alpha + 2 * n_train**-beta
    err = err * np.exp(rng.normal(0, noise, rows))
    return pd.DataFrame({"params": n_params, "samples": n_train, "loss": err})


# A job of a ``script:`` rule runs as ``python .snakemake/scripts/tmpXXXX.<script>.py``
# (under a bash that Snakemake starts); <script> names the rule's script.
RULE_SCRIPT = re.compile(r"^tmp\w+\.(\w+)\.py$")


def job_processes(pid: int) -> list[tuple[psutil.Process, str]]:
    """The rule-script processes below process `pid` (a Snakemake), with their script names.

    Found from the process tree: the python processes whose last argument is a script
    that Snakemake wrote to ``.snakemake/scripts/`` (``make_data``, ``train``, ...).
    """
    try:
        tree = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    jobs = []
    for process in tree:
        with contextlib.suppress(psutil.Error, IndexError):
            argv = process.cmdline()
            match = RULE_SCRIPT.match(Path(argv[-1]).name)
            if match and "python" in Path(argv[0]).name:
                jobs.append((process, match.group(1)))
    return jobs


def job_log(process: psutil.Process) -> Path | None:
    """The log file a running job has open (its rule's ``log:``), None if none yet."""
    with contextlib.suppress(psutil.Error):
        for opened in process.open_files():
            if "/logs/" in opened.path and opened.path.endswith(".log"):
                return Path(opened.path)
    return None


def study_folder(parent, name: str, study: dict) -> Path:
    """A fresh working folder `parent/name` holding `study` as study.yaml."""
    workdir = Path(parent) / name
    workdir.mkdir()
    write_config(workdir / "study.yaml", study)
    return workdir


def run_ok(command: list[str]) -> subprocess.CompletedProcess:
    """Run `command` to completion; its output is the failure message if it fails."""
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def load_script(relative: str):
    """A script of the repository that is not a package module (e.g. docs/generate.py)."""
    import importlib.util

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
