"""Lose nothing: kill -9 the whole Snakemake process tree mid-sweep, resume, compare.

The sweep is killed at random moments (delays drawn from a seeded generator), and once
right after a training job's first checkpoint, each time
resumed with the documented commands (``snakemake --unlock`` then ``snakemake
--rerun-incomplete``, same options), and killed again; the final cube must equal an
uninterrupted run's bit for bit (every variable but ``wall_time``). Two uninterrupted
runs of the same config must also give bit-identical cubes (CPU determinism). SIGTERM to a
training job (what SLURM sends at preemption and ahead of the time limit, which
``profiles/slurm`` asks for) makes it write its checkpoint and exit non-zero; the rerun
resumes from that checkpoint's step, to the same cube.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import re
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest
import torch

from opscale import cube, status
from opscale.config import validate_study
from opscale.layout import StudyLayout
from tests import helpers
from tests.helpers import REPO, job_log, job_processes, tiny_config

pytestmark = pytest.mark.workflow
KILL_POINTS = int(os.environ.get("OPSCALE_KILL_POINTS", "3"))
KILL_SEED = int(os.environ.get("OPSCALE_KILL_SEED", "0"))
# Long enough to be killed inside a training job, with checkpoints to resume from.
STUDY = tiny_config(
    train={"steps": 600, "eval_every": 50, "log_every": 50, "lr": 0.003},
    runtime={"checkpoint_every": 100},
    members=["data.n_train"],
)
TARGET = "results/tiny/cube.nc"
# Differ between identical runs by design: timing, and provenance attributes.
NOT_DETERMINISTIC = ("wall_time",)


def snakemake_command(workdir, *args):
    """The Snakemake command line of these tests (the cube only: no fit or figures)."""
    return helpers.snakemake_command(workdir, workdir / "study.yaml", TARGET, *args)


def run(workdir, *args):
    return helpers.run_ok(snakemake_command(workdir, *args))


def fresh(tmp_path, name):
    return helpers.study_folder(tmp_path, name, STUDY)


def deterministic(ds):
    """The cube without what differs between identical runs (see NOT_DETERMINISTIC)."""
    return ds.drop_vars(NOT_DETERMINISTIC).assign_attrs(opscale_version="", git_commit="")


def assert_same_cube(a, b):
    assert deterministic(cube.read(a)).identical(deterministic(cube.read(b)))


def kill_tree(process: subprocess.Popen) -> list[str]:
    """SIGKILL Snakemake and every process below it, as a dying node would.

    Returns what was running: the script (or program) of each process killed.
    """
    parent = psutil.Process(process.pid)
    tree = [parent, *parent.children(recursive=True)]
    running = [_what(member) for member in tree]
    os.killpg(process.pid, signal.SIGKILL)  # its own session: one signal for the group
    for member in tree:  # and anything that left the group
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    process.wait()
    return running


def _what(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return os.path.basename(process.cmdline()[-1])
    return "?"


def kill_after(workdir, delay: float, args=(), when=None) -> tuple[bool, list[str]]:
    """Start the sweep, SIGKILL its tree `delay` s after start (or after `when()` holds).

    Returns whether it was still running, and what was killed.
    """
    process = subprocess.Popen(
        snakemake_command(workdir, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while when is not None and not when() and process.poll() is None:
        time.sleep(0.02)
    time.sleep(delay)
    if process.poll() is not None:
        return False, []
    return True, kill_tree(process)


def checkpointed(workdir):
    """A condition: some training job has written its first checkpoint."""
    return lambda: any((workdir / "results" / "tiny" / "checkpoints").glob("*.pt"))


def readable_files(workdir):
    """Every NetCDF file under results/ opens: no half-written file is ever in place."""
    files = sorted((workdir / "results").rglob("*.nc"))
    for path in files:
        cube.read(path)
    return files


def assert_status_shows_killed_jobs(workdir) -> int:
    """Every point whose job was killed shows as failed: its heartbeat names the dead pid.

    Snakemake's incomplete markers (its private naming, read here as the test's oracle
    only) say which jobs were killed; one killed in its first seconds, before its
    heartbeat's first write, left no trace and is missing.
    """
    markers = workdir / ".snakemake" / "incomplete"
    outputs = {base64.urlsafe_b64decode(p.name).decode() for p in markers.glob("*") if p.is_file()}
    config = validate_study(copy.deepcopy(STUDY))
    killed = [s for s in status.study_status(config, workdir) if str(s.path) in outputs]
    layout = StudyLayout(config["study"])
    for state in killed:
        beat = workdir / layout.heartbeat(state.point)
        expected = ("failed", "is gone") if beat.exists() else ("missing", "")
        assert (state.state, expected[1] in state.reason) == (expected[0], True), state
    return len(killed)


def assert_locked_until_unlocked(workdir):
    """A killed run leaves Snakemake's lock: the plain rerun refuses, --unlock clears it."""
    command = snakemake_command(workdir, "--rerun-incomplete")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert "--unlock" in result.stdout + result.stderr
    run(workdir, "--unlock")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the study, and its wall time (s)."""
    workdir = fresh(tmp_path_factory.mktemp("reference"), "run")
    started = time.perf_counter()
    run(workdir)
    return workdir, time.perf_counter() - started


def test_the_same_config_twice_gives_bit_identical_cubes(reference, tmp_path):
    workdir = fresh(tmp_path, "again")
    run(workdir)
    assert_same_cube(reference[0] / TARGET, workdir / TARGET)
    assert not cube.read(workdir / TARGET).wall_time.isnull().all()  # excluded, not absent


def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    reference_dir, wall = reference
    workdir = fresh(tmp_path, "killed")
    rng = np.random.default_rng(KILL_SEED)
    # Each kill lands within the first 40% of what a whole run takes, so it is mid-sweep.
    delays = rng.uniform(0.1 * wall, 0.4 * wall, KILL_POINTS)
    # ... and one more right after a training job's first checkpoint, so the resumed
    # training starts from it (the random ones mostly land in start-up, before any).
    moments = [(delay, None) for delay in delays] + [(0.0, checkpointed(workdir))]
    for i, (delay, when) in enumerate(moments):
        alive, tree = kill_after(workdir, delay, ("--rerun-incomplete",), when)
        assert alive, f"kill {i} at {delay:.1f} s came after the run had finished"
        readable_files(workdir)
        killed_points = assert_status_shows_killed_jobs(workdir)
        moment = "at the first checkpoint" if when else f"{delay:.1f} s after start"
        print(f"kill {i}: {moment}, killed {tree}, {killed_points} points left failed")
        if when is not None:  # a training job was running, so Snakemake held its lock
            assert_locked_until_unlocked(workdir)
        else:
            run(workdir, "--unlock")
    resumed = run(workdir, "--rerun-incomplete")
    assert "Nothing to be done" not in resumed.stdout + resumed.stderr
    assert_same_cube(reference_dir / TARGET, workdir / TARGET)
    assert (cube.read(workdir / TARGET).status == cube.OK).all()
    logs = (workdir / "results" / "tiny" / "logs" / "train").glob("*.log")
    assert any("resumed from" in log.read_text() for log in logs)


SIGTERM_LINE = re.compile(
    r"SIGTERM received at step (\d+) of (\d+): checkpoint written to (\S+); rerun to resume"
)
RESUMED = re.compile(r"resumed from (\S+) at step (\d+)")


def sigterm_training_jobs(workdir, process) -> list[str]:
    """Once a checkpoint is written, SIGTERM every training job past its first checkpoint.

    Returns the point ids of the jobs signalled (each found from the log file it holds open).
    """
    checkpoints = workdir / "results" / "tiny" / "checkpoints"
    while not any(checkpoints.glob("*.pt")) and process.poll() is None:
        time.sleep(0.02)
    signalled = []
    for job, script in job_processes(process.pid):
        log = job_log(job)
        if script == "train" and log and (checkpoints / f"{log.stem}.pt").exists():
            job.send_signal(signal.SIGTERM)
            signalled.append(log.stem)
    return signalled


def test_sigterm_in_a_training_job_checkpoints_and_the_rerun_resumes_from_it(reference, tmp_path):
    workdir = fresh(tmp_path, "sigterm")
    process = subprocess.Popen(
        snakemake_command(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    signalled = sigterm_training_jobs(workdir, process)
    output = process.communicate(timeout=600)[0]
    assert signalled, "no training job was running past a checkpoint"
    assert process.returncode != 0, output  # the job exited non-zero: Snakemake stops
    logs = workdir / "results" / "tiny" / "logs" / "train"
    stopped = {}
    for point in signalled:
        line = SIGTERM_LINE.search((logs / f"{point}.log").read_text())
        assert line, (logs / f"{point}.log").read_text()
        step, total, path = int(line[1]), int(line[2]), workdir / line[3]
        saved = torch.load(path, weights_only=True)  # the atomic writer's file: it reads
        assert saved["trainer"]["step"] == step < total == STUDY["train"]["steps"]
        stopped[point] = step
    run(workdir)  # the job failed and Snakemake exited: no lock, a plain rerun resumes
    for point, step in stopped.items():
        resumed = RESUMED.search((logs / f"{point}.log").read_text())
        assert resumed and int(resumed[2]) == step, f"{point} did not resume at step {step}"
    assert_same_cube(reference[0] / TARGET, workdir / TARGET)
    assert not any((workdir / "results" / "tiny" / "checkpoints").glob("*.pt"))


def test_the_slurm_profile_asks_for_sigterm_ahead_of_the_time_limit(tmp_path):
    """Every training job asks SLURM for SIGTERM at least 60 s (its event resolution)
    before its time limit, and well inside it."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    workdir = fresh(tmp_path, "slurm")
    profile = ("--workflow-profile", str(REPO / "profiles" / "slurm"), "--dry-run")
    result = run(workdir, *profile)
    resources = re.findall(r"rule train:.*?resources: ([^\n]*)", result.stdout, re.S)
    assert len(resources) == 2, result.stdout  # the two training jobs of the study
    for line in resources:
        lead = re.search(r"slurm_extra=--signal=TERM@(\d+)(?:,|$)", line)
        runtime = re.search(r"runtime=(\d+)", line)
        assert lead and runtime, line
        assert 60 < int(lead[1]) < 60 * int(runtime[1]) / 2, line
