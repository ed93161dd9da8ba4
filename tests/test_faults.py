"""Faults and bad input: every case of docs/faults.md's tables, with the message the user gets.

The bad-input table of docs/faults.md (the one list of faults) is parsed and each row is a
case here: its change to the tiny study must fail validation with its message, and the
rows marked ``snakemake`` run the real workflow and must leave results/ untouched. The
file faults (truncated and corrupt point files, a failing job under --keep-going) run
real Snakemake on a copy of a finished run.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from opscale import cube, grid, resources, status
from opscale.config import ConfigError, set_path, validate_study
from tests.helpers import REPO, run_snakemake, snakemake_command, tiny_config, write_config

TARGET = "results/tiny/cube.nc"
FAULTS = REPO / "docs" / "faults.md"
START, END = "<!-- bad-input-table: start -->", "<!-- bad-input-table: end -->"
DELETE = "<delete>"


def bad_inputs():
    """The rows of the bad-input table: (number, change, message, checked by)."""
    text = FAULTS.read_text()
    table = text.split(START, 1)[1].split(END, 1)[0]
    for line in table.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            yield pytest.param(yaml.safe_load(cells[1]), cells[2], cells[3], id=cells[0])


def fragments(message: str) -> list[str]:
    """The parts of a table's message: ``…`` joins parts of one message."""
    return [part.strip().strip("`") for part in message.split("…") if part.strip("` ")]


def apply(config: dict, change: dict) -> dict:
    """`config` with the table's change: dotted paths set, or deleted (``<delete>``)."""
    config = copy.deepcopy(config)
    for path, value in change.items():
        if value == DELETE:
            *parents, last = path.split(".")
            node = config
            for key in parents:
                node = node[key]
            del node[last]
        else:
            set_path(config, path, value)
    return config


def fault_rows():
    """The rows of the faults table (above the bad-input table): (fault, test)."""
    table = FAULTS.read_text().split("# Faults and bad input", 1)[1].split(START, 1)[0]
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[3].startswith("`"):
            yield cells[0], cells[3]


def test_every_row_of_the_faults_table_names_a_test_that_exists():
    sources = {path.name: path.read_text() for path in (REPO / "tests").glob("test_*.py")}
    rows = list(fault_rows())
    assert len(rows) >= 10
    for fault, cell in rows:
        for name in (n.strip("`").rstrip("…") for n in cell.split(", ")):
            name = name.removeprefix("tests/")
            found = name in sources or any(f"def {name}" in text for text in sources.values())
            assert found, f"faults table row {fault!r}: no test {name!r}"


def test_the_readme_lists_at_least_20_distinct_bad_inputs():
    rows = list(bad_inputs())
    assert len(rows) >= 20
    assert len({yaml.safe_dump(row.values[0]) for row in rows}) == len(rows)


@pytest.mark.parametrize(
    ("change", "message", "checked_by"),
    [row for row in bad_inputs() if "validate_study" in row.values[2]],
)
def test_a_bad_input_fails_validation_naming_the_key(change, message, checked_by):
    with pytest.raises(ConfigError) as error:
        validate_study(apply(tiny_config(), change), source="study.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("invalid study config (study.yaml), nothing was run:")


@pytest.mark.parametrize(
    ("change", "message", "checked_by"),
    [row for row in bad_inputs() if "preflight" in row.values[2]],
)
def test_a_job_past_the_memory_limit_is_refused_before_anything_runs(change, message, checked_by):
    config = validate_study(apply(tiny_config(), change), source="study.yaml")
    estimates = {point.id: resources.estimate(point.spec) for point in grid.points(config)}
    with pytest.raises(ConfigError) as error:
        resources.check(config, estimates, "study.yaml")
    for part in fragments(message):
        assert part in str(error.value)
    assert str(error.value).startswith("invalid study config (study.yaml), nothing was run:")


# --- real Snakemake on a finished run ---------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A working directory where the tiny study's cube has been built."""
    workdir = tmp_path_factory.mktemp("finished")
    run_snakemake(workdir, write_config(workdir / "study.yaml", tiny_config()), TARGET)
    return workdir


@pytest.fixture
def workdir(finished, tmp_path):
    """A private copy of the finished run (files, mtimes and Snakemake's metadata)."""
    return Path(shutil.copytree(finished, tmp_path / "run", symlinks=True))


def snapshot(directory: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.rglob("*") if p.is_file()}


def deterministic(path: Path):
    ds = cube.read(path).drop_vars("wall_time")
    return ds.assign_attrs(opscale_version="", git_commit="")


def point_files(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "tiny" / "points").glob("*.nc"))


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("change", "message", "checked_by"),
    [row for row in bad_inputs() if "snakemake" in row.values[2]],
)
def test_a_bad_input_stops_snakemake_and_changes_nothing(workdir, change, message, checked_by):
    before = snapshot(workdir / "results")
    bad = write_config(workdir / "bad.yaml", apply(tiny_config(), change))
    result = run_snakemake(workdir, bad, TARGET, check=False)
    assert result.returncode != 0
    for part in fragments(message):
        assert part in result.stdout + result.stderr
    assert snapshot(workdir / "results") == before


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("study: tiny\nmodel: {width: 8\n", "Config file is not valid JSON or YAML"),
        (None, "No such file or directory: '"),
        (
            yaml.safe_dump(tiny_config(), sort_keys=False) + "seeds: [0]\n",
            "duplicate key 'seeds' on lines 2, ",
        ),
    ],
    ids=["yaml-syntax-error", "file-not-found", "duplicate-key"],
)
def test_a_broken_study_file_stops_snakemake_and_changes_nothing(workdir, content, message):
    before = snapshot(workdir / "results")
    path = workdir / "nope.yaml"
    if content is not None:
        path.write_text(content)
    result = run_snakemake(workdir, path, TARGET, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert snapshot(workdir / "results") == before


@pytest.mark.workflow
def test_a_truncated_point_file_is_named_and_the_command_given_recomputes_it(workdir, finished):
    bad, *others = point_files(workdir)
    intact = {p: p.stat().st_mtime_ns for p in others}
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    result = run_snakemake(workdir, workdir / "study.yaml", TARGET, check=False)
    assert result.returncode != 0
    message = (workdir / "results" / "tiny" / "logs" / "collect.log").read_text()
    relative = str(bad.relative_to(workdir))
    assert f"{relative}: unreadable, truncated or corrupt" in message
    assert f"snakemake --forcerun {relative}" in message
    assert status.point_state(tiny_config(), bad.stem, workdir).state == "failed"
    run_snakemake(workdir, workdir / "study.yaml", TARGET, "--forcerun", relative)
    assert deterministic(workdir / TARGET).identical(deterministic(finished / TARGET))
    assert {p: p.stat().st_mtime_ns for p in others} == intact  # only the bad one retrained


def _truncated(data):
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncated, "unreadable, truncated or corrupt (OSError: [Errno -101] NetCDF: HDF error"),
        (lambda data: b"", "unreadable, truncated or corrupt (OSError: [Errno -51]"),
        (lambda data: np.random.default_rng(0).bytes(len(data)), "unreadable, truncated or"),
        (lambda data: data[:8], "unreadable, truncated or corrupt"),
    ],
    ids=["truncated", "empty", "random-bytes", "header-only"],
)
def test_collect_names_every_unreadable_point_file(tmp_path, damage, reason):
    good, bad = _point(tmp_path, 4), _point(tmp_path, 8)
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(cube.PointFileError) as error:
        cube.collect([str(good), str(bad)], {"sweep": {"model.width": [4, 8]}})
    assert f"{bad}: {reason}" in str(error.value)
    assert str(good) not in str(error.value)
    assert f"snakemake --forcerun {bad} " in str(error.value)


def test_collect_refuses_a_netcdf_file_that_is_not_a_point_file(tmp_path):
    good, other = _point(tmp_path, 4), tmp_path / "not-a-point.nc"
    cube.write(cube.read(good).drop_vars(["test_rel_l2", "loss_curve"]), other)
    with pytest.raises(cube.PointFileError, match="not a point file: it lacks test_rel_l2"):
        cube.collect([str(good), str(other)], {"sweep": {"model.width": [4, 8]}})


def _point(tmp_path: Path, width: int) -> Path:
    seeds = 2
    rng = np.random.default_rng(width)
    results = {
        name: rng.random(seeds)
        for name in ("test_rel_l2", "train_rel_l2", "val_rel_l2", "test_linf", "final_loss")
    }
    results |= {
        "status": np.zeros(seeds, int),
        "loss_curve": rng.random((seeds, 3)),
        "step": np.arange(3),
        "val_curve": rng.random((seeds, 2)),
        "eval": np.arange(2),
        "best_step": np.full(seeds, 2),
        "steps_trained": np.full(seeds, 3),
        "n_params": np.full(seeds, 10),
        "train_flops": np.full(seeds, 1000),
        "wall_time": np.full(seeds, 1.0),
    }
    path = tmp_path / f"width{width}.nc"
    ds = cube.point_dataset(results, {}, {"model.width": width}, {"seed": list(range(seeds))})
    cube.write(ds, path)
    return path


@pytest.mark.workflow
def test_keep_going_completes_the_other_points_and_the_cube_marks_the_missing(workdir):
    config = validate_study(tiny_config())
    for path in point_files(workdir):
        path.unlink()
    (workdir / TARGET).unlink()
    broken = sorted((workdir / "results" / "tiny" / "data").glob("*.nc"))[0]
    broken.write_bytes(b"not NetCDF")  # its training jobs fail, the others' data is fine
    result = run_snakemake(workdir, workdir / "study.yaml", TARGET, "--keep-going", check=False)
    assert result.returncode != 0
    states = {s.point: s for s in status.study_status(config, workdir)}
    failed = {p for p, s in states.items() if s.state == "failed"}
    assert failed and len(failed) < len(states)
    assert {s.state for p, s in states.items() if p not in failed} == {"done"}
    assert all(states[p].reason.startswith("see results/tiny/logs/train/") for p in failed)
    shown = _opscale(workdir, "status")
    assert shown.returncode == 1 and f"{len(failed)} failed" in shown.stdout
    assert _opscale(workdir, "collect").returncode == 0
    ds = cube.read(workdir / TARGET)
    flat = ds.status.stack(point=[d for d in ds.status.dims if d != "seed"])
    assert int((flat == cube.MISSING).all("seed").sum()) == len(failed)
    assert int((flat == cube.OK).all("seed").sum()) == len(states) - len(failed)


def _opscale(workdir: Path, command: str) -> subprocess.CompletedProcess:
    opscale = Path(sys.executable).parent / "opscale"
    args = [str(opscale), command, "--config", "study.yaml", "--directory", str(workdir)]
    return subprocess.run(args, capture_output=True, text=True, cwd=workdir)


@pytest.mark.parametrize(
    ("width", "reason"),
    [
        (16, "not on the study's grid: width = 16, not one of model.width: [4, 8]"),
        (np.nan, "not on the study's grid: width = nan, not one of model.width: [4, 8]"),
        (None, "not on the study's grid: it has no coordinate width (model.width)"),
    ],
    ids=["another-value", "nan", "no-coordinate"],
)
def test_collect_refuses_a_point_file_off_the_grid_instead_of_dropping_it(tmp_path, width, reason):
    good, stray = _point(tmp_path, 4), _point(tmp_path, 8)
    ds = cube.read(stray)
    ds = ds.drop_vars("width") if width is None else ds.assign_coords(width=width)
    cube.write(ds, stray)
    with pytest.raises(cube.PointFileError) as error:
        cube.collect([str(good), str(stray)], {"sweep": {"model.width": [4, 8]}})
    assert f"{stray}: {reason}" in str(error.value)
    assert str(good) not in str(error.value)


LOCKED = (
    "Error: Directory cannot be locked. Please make sure that no other Snakemake process is "
    "trying to create the same files in the following directory:"
)


@pytest.mark.workflow
def test_a_second_run_on_a_running_study_is_refused_and_the_first_completes(tmp_path):
    # long enough that the first run still holds its lock when the second has parsed
    study = tiny_config(train={"steps": 8000, "eval_every": 50, "log_every": 50, "lr": 0.003})
    config = write_config(tmp_path / "study.yaml", study)
    first = subprocess.Popen(
        snakemake_command(tmp_path, config, TARGET),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    locks = tmp_path / ".snakemake" / "locks"
    while first.poll() is None and not (locks.is_dir() and any(locks.iterdir())):
        time.sleep(0.05)
    # the dry run (it takes no lock) beside the second: each pays Snakemake's start-up
    with ThreadPoolExecutor(2) as pool:
        dry_run = pool.submit(run_snakemake, tmp_path, config, TARGET, "--dry-run", check=False)
        second = run_snakemake(tmp_path, config, TARGET, check=False)
        running = first.poll() is None
        dry = dry_run.result()
    output, _ = first.communicate(timeout=600)
    assert running, f"the first run ended before the second was refused:\n{output}"
    assert second.returncode != 0
    assert LOCKED in second.stderr and str(tmp_path) in second.stderr
    assert "Execute" not in second.stdout + second.stderr  # it started no job
    assert dry.returncode == 0 and "Job stats:" in dry.stdout
    assert first.returncode == 0, output
    assert (cube.read(tmp_path / TARGET).status == cube.OK).all()
    assert not locks.exists() or not any(locks.iterdir())  # the first run released its lock
    again = run_snakemake(tmp_path, config, TARGET)
    assert "Nothing to be done" in again.stdout + again.stderr
