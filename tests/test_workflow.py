"""The real workflow, end to end, on the tiny study (real Snakemake, real NetCDF files)."""

import shutil

import pytest

from opscale import cube
from opscale.figures import SCALING_FIGURES
from tests.helpers import TINY_FILE, planned_jobs, run_snakemake, tiny_config, write_config

pytestmark = pytest.mark.workflow
FIGURES = SCALING_FIGURES  # the registry the rules read


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A working directory where the tiny study (.test/config.yaml) has run to completion."""
    workdir = tmp_path_factory.mktemp("finished")
    config = shutil.copyfile(TINY_FILE, workdir / "study.yaml")
    run_snakemake(workdir, config)
    return workdir


@pytest.fixture
def workdir(finished, tmp_path):
    """A private copy of the finished run (files, mtimes and Snakemake's metadata)."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def _snapshot(directory):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.rglob("*") if p.is_file()}


def test_a_fresh_run_produces_cube_fit_figures_and_report(workdir):
    study = workdir / "results" / "tiny"
    ds = cube.read(study / "cube.nc")
    assert ds.test_rel_l2.dims == ("width", "n_train", "seed")
    assert ds.sizes == {"width": 2, "n_train": 2, "seed": 2, "step": 4, "eval": 4}
    assert (ds.status == cube.OK).all()
    assert {"config", "opscale_version", "git_commit"} <= set(ds.attrs)
    assert "| all | joint | N (parameters) |" in (study / "fit.md").read_text()
    assert {"exponent", "ci_low", "ci_high"} <= set(cube.read(study / "fit.nc").data_vars)
    for name in FIGURES:
        assert (study / "figures" / f"{name}.png").stat().st_size > 1000
    assert len(list((study / "points").glob("*.nc"))) == 4
    assert len(list((study / "logs" / "train").glob("*.log"))) == 4
    run_snakemake(workdir, workdir / "study.yaml", "--report", "results/report.html")
    assert (workdir / "results" / "report.html").stat().st_size > 10_000


def test_a_rerun_has_nothing_to_do(workdir):
    assert planned_jobs(workdir, workdir / "study.yaml") == {}


def test_adding_a_width_trains_only_the_new_points(workdir):
    points = workdir / "results" / "tiny" / "points"
    before = _snapshot(points)
    config = tiny_config(sweep={"model.width": [4, 8, 16], "data.n_train": [8, 16]})
    path = write_config(workdir / "study.yaml", config)
    expected = {"train": 2, "collect": 1, "fit": 1, "page": 1, "figures": 1, "all": 1}
    assert planned_jobs(workdir, path) == expected
    run_snakemake(workdir, path)
    after = _snapshot(points)
    assert {p: after[p] for p in before} == before  # old files untouched
    assert len(after) == 6
    ds = cube.read(workdir / "results" / "tiny" / "cube.nc")
    assert list(ds.width.values) == [4, 8, 16]
    assert (ds.status == cube.OK).all()


def test_figures_are_redrawn_without_training(workdir):
    figures = workdir / "results" / "tiny" / "figures"
    shutil.rmtree(figures)
    assert planned_jobs(workdir, workdir / "study.yaml", "figures") == {"figures": 1}
    run_snakemake(workdir, workdir / "study.yaml", "figures")
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(FIGURES)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"widht": 8}}, "unknown key(s) 'widht' (did you mean 'width'?)"),
        ({"model": {"width": -8}}, "model.width: -8 is less than the minimum of 1"),
        ({"sweep": {"model.width": [4, -8]}}, "sweep.model.width[1] = -8"),
    ],
)
def test_a_bad_config_fails_before_any_job_and_changes_nothing(workdir, sections, message):
    before = _snapshot(workdir / "results")
    path = write_config(workdir / "bad.yaml", tiny_config(**sections))
    result = run_snakemake(workdir, path, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert _snapshot(workdir / "results") == before
