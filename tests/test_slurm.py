"""The tiny study through a real SLURM (snakemake-executor-plugin-slurm), cube = local cube.

Needs a running SLURM (``sinfo`` answers). ``.ci/run`` starts a single-node one with
``.ci/slurm/start.sh`` (root on Debian), sets ``OPSCALE_SLURM=required`` and stops it
afterwards, by PID; with that variable set, a SLURM that does not answer fails the test
instead of skipping it. Elsewhere the test is skipped: start SLURM yourself to run it.

The run uses ``profiles/slurm`` as a user would, plus what a one-node SLURM
without accounting needs (``.ci/slurm/profile``: squeue status checks, threads capped at
the node's 2 CPUs), and is bounded by ``timeout -k 60 -s INT`` (Snakemake stops on SIGINT
only).

How training maps onto SLURM allocations (the second test measures it): one training job
trains its members (seeds, and the `members:` axes) as one batched model in one process,
so they always run at once, in one allocation. A Snakemake group of training jobs is one
``sbatch`` allocation, but the plugin (2.8.0 with slurm-jobstep 0.6.1) runs the group's
jobs one after another inside it (``--jobs 1`` and a blocking ``srun`` per job; upstream
issue snakemake-executor-plugin-slurm#469), so the profile sizes a group for one job at a
time (1 CPU) and the parallelism comes from groups running side by side. Parallel
efficiency = the jobs' busy time (Snakemake's benchmark ``s``) / the CPU time allocated
(allocation wall time x CPUs, from ``scontrol``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import datetime

import pytest

from opscale import cube
from tests.helpers import REPO, SNAKEMAKE, run_snakemake, tiny_config, write_config

pytestmark = pytest.mark.workflow
LIMIT = int(os.environ.get("OPSCALE_SLURM_TIMEOUT", "900"))  # s, for the SLURM run
TARGET = "results/tiny/cube.nc"
# One data job, then two training jobs (all n_train of a width per job), grouped into one.
STUDY = tiny_config(members=["data.n_train"])
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
# The efficiency study: 4 training jobs (one per width, each 4 models) of 30-55 s CPU on an
# idle core, 2 per group: 2 one-CPU allocations side by side on the 2-CPU node.
LONG = tiny_config(
    members=["data.n_train"],
    train={"steps": 60000, "eval_every": 10000, "log_every": 10000, "lr": 0.003},
    sweep={"model.width": [4, 6, 8, 10], "data.n_train": [8, 16]},
)
PER_GROUP = 2
EFFICIENCY = 0.85  # issue 18: the least parallel efficiency of the training allocations
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return probe.returncode == 0 and any(
        state in probe.stdout for state in ("idle", "mixed", "allocated")
    )


@pytest.fixture(scope="module")
def slurm():
    if slurm_answers():
        return
    if os.environ.get("OPSCALE_SLURM") == "required":
        pytest.fail("OPSCALE_SLURM=required but SLURM does not answer (sinfo)")
    pytest.skip("no SLURM here (start one with .ci/slurm/start.sh)")


def slurm_run(workdir, *extra):
    """The study through SLURM, bounded in time; (result, SLURM job ids, wall time in s)."""
    command = [
        "timeout",
        "-k",
        "60",
        "-s",
        "INT",
        str(LIMIT),
        str(SNAKEMAKE),
        TARGET,  # first: several options below take several values
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        "--profile",
        str(REPO / ".ci" / "slurm" / "profile"),
        *extra,
        "--configfile",
        str(workdir / "study.yaml"),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    jobs = SUBMITTED.findall(result.stdout + result.stderr)
    if result.returncode != 0:  # leave nothing queued behind a failed or timed-out run
        subprocess.run(["scancel", *jobs], capture_output=True)
    return result, jobs, wall


def test_the_tiny_study_through_slurm_gives_the_local_cube(slurm, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local, remote):
        workdir.mkdir()
        write_config(workdir / "study.yaml", STUDY)
    run_snakemake(local, local / "study.yaml", TARGET)
    result, jobs, wall = slurm_run(remote)
    print(f"SLURM run: {wall:.0f} s, {len(jobs)} sbatch submissions")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    # 1 data job + 1 group of the 2 training jobs (ungrouped it would be 3)
    assert len(jobs) == 2, jobs
    assert list((remote / ".snakemake" / "slurm_logs").glob("group_train*"))
    # Every variable but wall_time; provenance attributes aside, the attributes too.
    same = [cube.read(w / TARGET).drop_vars("wall_time") for w in (local, remote)]
    for ds in same:
        ds.attrs.update(opscale_version="", git_commit="")
    assert same[0].identical(same[1])


def allocation(job_id: str) -> dict:
    """SLURM's record of a job: start and end (s since the epoch, 1 s resolution), CPUs."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", shown))
    start, end = (
        datetime.fromisoformat(fields[key]).timestamp() for key in ("StartTime", "EndTime")
    )
    return {"start": start, "end": end, "cpus": int(fields["NumCPUs"])}


def busy_time(benchmark) -> tuple[float, float]:
    """A job's wall and CPU time (s) in its Snakemake benchmark file (its own process)."""
    names, values = (line.split("\t") for line in benchmark.read_text().splitlines()[:2])
    row = dict(zip(names, values, strict=True))
    return float(row["s"]), float(row["cpu_time"])


def members_run(log_text: str) -> dict[str, tuple[float, float]]:
    """Per training job in a group's SLURM log: (start, end) as its inner Snakemake saw them.

    A job starts at the stamp before ``localrule train:`` (the srun'd Snakemake that runs
    it) and ends at the first ``Finished`` stamp after that.
    """
    spans, stamp, running = {}, None, None
    for line in log_text.splitlines():
        if found := STAMP.match(line.strip()):
            stamp = datetime.strptime(found[1], "%a %b %d %H:%M:%S %Y").timestamp()
        elif line.startswith("localrule train:"):
            running = {"start": stamp}
        elif running is not None and line.strip().startswith("wildcards: point="):
            running["point"] = line.split("point=", 1)[1].strip()
        elif running is not None and line.startswith("Finished jobid:"):
            spans[running["point"]] = (running["start"], stamp)
            running = None
    return spans


def test_training_groups_run_side_by_side_with_parallel_efficiency_of_85_percent(slurm, tmp_path):
    write_config(tmp_path / "study.yaml", LONG)
    result, jobs, wall = slurm_run(tmp_path, "--group-components", f"train={PER_GROUP}")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    logs = sorted((tmp_path / ".snakemake" / "slurm_logs").glob("group_train*/**/*.log"))
    groups = {log.stem: members_run(log.read_text()) for log in logs}  # SLURM job id: jobs
    assert len(groups) == 2 and set(groups) <= set(jobs), (groups, jobs)
    points = [p.stem for p in (tmp_path / "results" / "tiny" / "points").glob("*.nc")]
    # every training job ran inside one of the two allocations, 2 in each
    assert sorted(p for spans in groups.values() for p in spans) == sorted(points)
    assert all(len(spans) == PER_GROUP for spans in groups.values()), groups
    held = {job: allocation(job) for job in groups}
    benchmarks = tmp_path / "results" / "tiny" / "benchmarks" / "train"
    times = [busy_time(benchmarks / f"{point}.tsv") for point in points]
    busy, cpu = [t[0] for t in times], [t[1] for t in times]
    for job, spans in groups.items():
        # one CPU each: the plugin runs a group's jobs one after another (plugin #469);
        # if this fails, a plugin upgrade runs them at once: size groups for that again
        assert held[job]["cpus"] == 1, held[job]
        (a0, a1), (b0, b1) = sorted(spans.values())
        assert a1 <= b0, f"jobs of group {job} overlapped: {spans}"
    # the two allocations ran side by side (overlap of at least half the shorter one)
    first, second = held.values()
    overlap = min(first["end"], second["end"]) - max(first["start"], second["start"])
    assert overlap > 0.5 * min(h["end"] - h["start"] for h in held.values()), held
    allocated = sum((h["end"] - h["start"]) * h["cpus"] for h in held.values())
    span = max(h["end"] for h in held.values()) - min(h["start"] for h in held.values())
    efficiency = sum(busy) / allocated
    # CPU time falls short of busy time only where other work shares the node's CPUs
    print(
        f"SLURM run {wall:.0f} s; training: {len(points)} jobs, busy {sum(busy):.1f} s "
        f"(each {min(busy):.1f}-{max(busy):.1f} s; CPU {sum(cpu):.1f} s) in {len(held)} "
        f"allocations of {allocated:.0f} CPU-s; parallel efficiency {efficiency:.1%} "
        f"(of the node's 2 CPUs over the {span:.0f} s of training: {sum(busy) / span / 2:.1%}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    assert efficiency >= EFFICIENCY
