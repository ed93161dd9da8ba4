"""opscale.progress: the heartbeat file, the log lines and the end-of-job summary."""

from __future__ import annotations

import json
import logging
import os
import socket

import numpy as np
import pytest

from opscale import progress
from opscale.progress import Heartbeat, Progress


def test_the_heartbeat_is_written_at_once_updated_by_its_thread_and_removed_on_success(tmp_path):
    path = tmp_path / "beats" / "p.json"
    with Heartbeat(path, interval=0.01) as beat:
        first = json.loads(path.read_text())
        beat.update(step=12, total=40)
        beat.done.wait(0.2)  # a few intervals: the thread rewrites the file
        later = json.loads(path.read_text())
    assert (first["pid"], first["host"], first["step"]) == (os.getpid(), socket.gethostname(), 0)
    assert (later["step"], later["total"]) == (12, 40) and later["updated"] > first["updated"]
    assert not path.exists() and not list(path.parent.glob(".*.tmp"))  # atomic, then gone
    assert progress.judge(first)[0]  # fresh and this process is alive


def test_a_job_that_raises_leaves_its_heartbeat_saying_why(tmp_path):
    path = tmp_path / "p.json"
    with pytest.raises(RuntimeError), Heartbeat(path) as beat:
        beat.update(step=3, total=9)
        raise RuntimeError("out of memory")
    beat = progress.read_heartbeat(path)
    assert beat["error"] == "out of memory" and "ended" in beat
    assert progress.judge(beat) == (False, "job ended at step 3/9: out of memory")


def test_an_unreadable_heartbeat_reads_as_none(tmp_path):
    (tmp_path / "p.json").write_text('{"pid": 1')  # a torn write (not possible: renamed)
    assert progress.read_heartbeat(tmp_path / "p.json") is None
    assert progress.read_heartbeat(tmp_path / "absent.json") is None


def test_the_eta_is_the_remaining_steps_at_the_loops_own_rate():
    beat = {"step": 150, "total": 250, "first_step": 50, "loop_started": 0.0, "updated": 20.0}
    assert progress.eta(beat) == pytest.approx(20.0)  # 100 steps in 20 s, 100 to go
    assert progress.eta(beat | {"step": 50}) is None  # no step yet: no rate


def test_progress_logs_one_plain_line_per_interval_and_feeds_the_heartbeat(caplog):
    beat = Heartbeat(None)
    bar = Progress(100, 0, beat, interval=0.0)
    assert bar.bar is None  # not a terminal: plain log lines, no tqdm
    with caplog.at_level(logging.INFO, logger="opscale.progress"):
        for step in (1, 2, 100):
            bar.report(step, lambda: (0.5, 0.25, 3, 4))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and not any("\r" in line for line in lines)
    assert lines[-1].startswith("step 100/100 (100%)  loss 0.5  best val 0.25  active 3/4  ")
    assert beat.fields["step"] == 100 and beat.fields["total"] == 100


def test_the_summary_line_counts_early_stops_and_divergences():
    results = {
        "status": np.array([0, 0, 1]),
        "steps_trained": np.array([40, 25, 7]),
        "val_rel_l2": np.array([0.2, 0.1, np.nan]),
        "test_rel_l2": np.array([0.3, 0.15, np.nan]),
    }
    line = progress.summary(results, np.array([40, 40, 40]), 12.34)
    assert line == (
        "job done: 3 members, best val rel L2 0.1, best test rel L2 0.15, 1 stopped early, "
        "1 diverged, wall time 12.3 s"
    )
