"""The tiny study through a real SLURM (snakemake-executor-plugin-slurm), cube = local cube.

Needs a running SLURM (``sinfo`` answers). ``.ci/run`` starts a single-node one with
``.ci/slurm/start.sh`` (root on Debian), sets ``OPSCALE_SLURM=required`` and stops it
afterwards, by PID; with that variable set, a SLURM that does not answer fails the test
instead of skipping it. Elsewhere the test is skipped: start SLURM yourself to run it.

The run uses ``profiles/slurm`` as a user would, plus what a one-node SLURM
without accounting needs (``.ci/slurm/profile``: squeue status checks, group size caps
of 2 CPUs), and is bounded by ``timeout -k 60 -s INT`` (Snakemake stops on SIGINT only).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from opscale import cube
from tests.helpers import REPO, SNAKEMAKE, run_snakemake, tiny_config, write_config

pytestmark = pytest.mark.workflow
LIMIT = int(os.environ.get("OPSCALE_SLURM_TIMEOUT", "900"))  # s, for the SLURM run
TARGET = "results/tiny/cube.nc"
# One data job, then two training jobs (all n_train of a width per job), grouped into one.
STUDY = tiny_config(members=["data.n_train"])
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


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


def slurm_run(workdir):
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
