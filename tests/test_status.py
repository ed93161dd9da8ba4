"""opscale status: each state of a grid point, from files laid out as a real run leaves them."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from opscale import cli, cube, grid, status
from opscale.config import validate_study
from opscale.layout import StudyLayout
from tests.helpers import tiny_config, write_config
from tests.test_faults import _point


@pytest.fixture
def study(tmp_path):
    """The tiny study's four points in a fresh working directory: (config, ids, workdir)."""
    config = validate_study(tiny_config())
    ids = [p.id for p in grid.points(config)]
    return config, ids, tmp_path


def _place(workdir, config, point, source):
    path = workdir / StudyLayout(config["study"]).point_file(point)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)
    return path


def test_every_state_by_its_definition(study, tmp_path_factory):
    config, (done, diverged, unreadable, killed), workdir = study
    files = tmp_path_factory.mktemp("files")
    _place(workdir, config, done, _point(files, 4))
    bad = _place(workdir, config, diverged, _point(files, 8))
    ds = cube.read(bad).assign(status=("member", [cube.OK, cube.DIVERGED]))
    cube.write(cube.describe(ds), bad)
    _place(workdir, config, unreadable, _point(files, 16)).write_bytes(b"\x89HDF\r\n")
    # the heartbeat a killed job leaves: fresh, but its process is gone
    _heartbeat(workdir, config, killed, pid=_dead_pid(), step=7, total=40)
    states = {s.point: s for s in status.study_status(config, workdir)}
    assert {p: s.state for p, s in states.items()} == {
        done: "done",
        diverged: "diverged",
        unreadable: "failed",
        killed: "failed",
    }
    assert states[diverged].reason == "1 of 2"
    assert states[unreadable].reason.startswith("unreadable, truncated or corrupt")
    gone = f"process {_dead_pid.pid} on {socket.gethostname()} is gone at step 7/40: killed"
    assert states[killed].reason == gone


def test_a_failure_in_the_log_is_failed_and_no_trace_is_missing(study):
    config, (logged, untouched, *_), workdir = study
    relative = StudyLayout(config["study"]).train_log(logged)
    log = workdir / relative
    log.parent.mkdir(parents=True)
    log.write_text("2026-12-01 INFO ...\n2026-12-01 ERROR opscale: job failed\nTraceback ...\n")
    states = {s.point: s for s in status.study_status(config, workdir)}
    expected = ("failed", f"see {relative}")
    assert (states[logged].state, states[logged].reason) == expected
    assert states[untouched].state == "missing"


def test_the_command_prints_counts_and_paths_and_exits_1_while_unfinished(study, capsys):
    config, ids, workdir = study
    path = write_config(workdir / "study.yaml", tiny_config())
    assert cli.main(["status", "--config", str(path), "-d", str(workdir)]) == 1
    out = capsys.readouterr().out
    head = "study tiny (results/tiny): 4 points: 0 done, 0 running, 0 diverged, 0 failed, 4 "
    assert out.startswith(head)
    assert all(f"missing  results/tiny/points/{point}.nc" in out for point in ids)


def _heartbeat(workdir, config, point, **fields):
    """A heartbeat file of `point` as a training job writes it, `fields` replaced."""
    now = time.time()
    beat = {"pid": os.getpid(), "host": socket.gethostname(), "started": now - 30}
    beat |= {"updated": now, "step": 0, "total": None} | fields
    path = workdir / StudyLayout(config["study"]).heartbeat(point)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(beat))
    return path


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    if not hasattr(_dead_pid, "pid"):
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        _dead_pid.pid = child.pid
    return _dead_pid.pid


def test_a_heartbeat_is_running_while_fresh_and_alive_else_failed(study):
    config, (alive, stale, ended, elsewhere), workdir = study
    now = time.time()
    loop = {"first_step": 0, "loop_started": now - 10}
    _heartbeat(workdir, config, alive, step=100, total=400, **loop)
    _heartbeat(workdir, config, stale, step=5, total=40, updated=now - 3600)
    _heartbeat(workdir, config, ended, step=9, total=40, ended=now, error="stopped by SIGTERM")
    # another node's job: its pid means nothing here, only freshness counts
    _heartbeat(workdir, config, elsewhere, host="node-elsewhere", pid=_dead_pid())
    states = {s.point: s for s in status.study_status(config, workdir)}
    assert {p: s.state for p, s in states.items()} == {
        alive: "running",
        stale: "failed",
        ended: "failed",
        elsewhere: "running",
    }
    assert states[alive].reason == "step 100/400, eta 0:00:30"  # 100 steps in 10 s
    assert states[stale].reason == (
        "heartbeat stale for 1:00:00 at step 5/40: killed, or its node is gone"
    )
    assert states[ended].reason == "job ended at step 9/40: stopped by SIGTERM"
    assert states[elsewhere].reason == "starting: reading data, building the models"


def test_a_running_job_shows_with_its_step_count_during_a_real_run(tmp_path):
    """Poll ``opscale status`` while Snakemake trains the tiny study at 20000 steps."""
    from tests.helpers import snakemake_command

    train = tiny_config()["train"] | {"steps": 20000, "eval_every": 1000, "log_every": 1000}
    path = write_config(tmp_path / "study.yaml", tiny_config(train=train))
    config = validate_study(tiny_config(train=train))
    command = snakemake_command(tmp_path, path, "--cores", "1", "--until", "train")
    run = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    seen, deadline = [], time.time() + 300
    try:
        while run.poll() is None and time.time() < deadline:
            seen += [s for s in status.study_status(config, tmp_path) if s.state == "running"]
            # "starting: ...", then "step 5744/20000, eta 0:00:10": wait for one mid-loop
            if seen and re.match(r"step [1-9]", seen[-1].reason):
                break
            time.sleep(1)
        printed = subprocess.run(
            [sys.executable, "-m", "opscale.cli", "status", "--config", str(path), "-d", tmp_path],
            capture_output=True,
            text=True,
        ).stdout
    finally:  # Snakemake and its jobs: its whole process group
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    print(printed)
    assert seen, "no running point seen"
    assert "1 running" in printed and "  running  results/tiny/points/" in printed
    assert re.search(r"running  results/tiny/points/\S+\.nc  \(step [1-9]\d*/20000, eta ", printed)
