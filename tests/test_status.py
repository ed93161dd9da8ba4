"""opscale status: each state of a grid point, from files laid out as a real run leaves them."""

from __future__ import annotations

import base64
import shutil

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
    config, (done, diverged, unreadable, incomplete), workdir = study
    files = tmp_path_factory.mktemp("files")
    _place(workdir, config, done, _point(files, 4))
    bad = _place(workdir, config, diverged, _point(files, 8))
    ds = cube.read(bad).assign(status=("member", [cube.OK, cube.DIVERGED]))
    cube.write(cube.describe(ds), bad)
    _place(workdir, config, unreadable, _point(files, 16)).write_bytes(b"\x89HDF\r\n")
    # the marker Snakemake writes when a job starts: .snakemake/incomplete/<b64 of output>
    key = base64.urlsafe_b64encode(StudyLayout(config["study"]).point_file(incomplete).encode())
    (workdir / ".snakemake" / "incomplete").mkdir(parents=True)
    (workdir / ".snakemake" / "incomplete" / key.decode()).write_text("{}")
    states = {s.point: s for s in status.study_status(config, workdir)}
    assert {p: s.state for p, s in states.items()} == {
        done: "done",
        diverged: "diverged",
        unreadable: "failed",
        incomplete: "failed",
    }
    assert states[diverged].reason == "1 of 2"
    assert states[unreadable].reason.startswith("unreadable, truncated or corrupt")
    assert states[incomplete].reason.startswith("incomplete")


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
    assert out.startswith("study tiny (results/tiny): 4 points: 0 done, 0 diverged, 0 failed, 4 ")
    assert all(f"missing  results/tiny/points/{point}.nc" in out for point in ids)
