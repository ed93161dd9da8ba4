"""opscale.layout: the paths of a study, and that the workflow's rules write exactly there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opscale import grid
from opscale.config import validate_study
from opscale.layout import DATA_ID, POINT, StudyLayout
from tests.helpers import run_snakemake, tiny_config, write_config

LAYOUT = StudyLayout("tiny")


def test_the_paths_of_a_study():
    assert LAYOUT.study_dir == "results/tiny"
    assert LAYOUT.data_file("d-1") == "results/tiny/data/d-1.nc"
    assert LAYOUT.points_dir == "results/tiny/points"
    assert LAYOUT.point_file("p-1") == "results/tiny/points/p-1.nc"
    assert LAYOUT.checkpoint("p-1") == "results/tiny/checkpoints/p-1.pt"
    assert LAYOUT.train_log("p-1") == "results/tiny/logs/train/p-1.log"
    assert (LAYOUT.cube, LAYOUT.fit, LAYOUT.fit_table) == (
        "results/tiny/cube.nc",
        "results/tiny/fit.nc",
        "results/tiny/fit.md",
    )
    assert LAYOUT.figure("error_heatmap") == "results/tiny/figures/error_heatmap.png"
    assert LAYOUT.log("fit") == "results/tiny/logs/fit.log"
    assert LAYOUT.benchmark("data", "d-1") == "results/tiny/benchmarks/data/d-1.tsv"
    assert StudyLayout("s", root="out").cube == "out/s/cube.nc"


def test_a_wildcard_gives_the_pattern_of_a_rule():
    assert LAYOUT.point_file(POINT) == "results/tiny/points/{point}.nc"
    assert LAYOUT.log("data", DATA_ID) == "results/tiny/logs/data/{data_id}.log"


def _expected(rule: str, wildcard: str | None) -> dict[str, list[str]]:
    """What the layout says a job of `rule` (with its wildcard's value) writes."""
    per_job = {
        "data": lambda: [LAYOUT.data_file(wildcard)],
        "train": lambda: [LAYOUT.point_file(wildcard)],
        "collect": lambda: [LAYOUT.cube],
        "fit": lambda: [LAYOUT.fit, LAYOUT.fit_table, LAYOUT.exponents],
        "page": lambda: [LAYOUT.fit_page, LAYOUT.landing],
    }
    return {
        "output": per_job[rule](),
        "log": [LAYOUT.log(rule, wildcard)],
        "benchmark": [LAYOUT.benchmark(rule, wildcard)],
    }


def _planned(workdir: Path) -> list[dict[str, list[str]]]:
    """Every job of a dry run of the tiny study: rule, and each printed field's paths."""
    config = write_config(workdir / "study.yaml", tiny_config())
    out = run_snakemake(workdir, config, "--dry-run").stdout
    jobs = []
    for block in re.split(r"^(?:local)?rule ", out, flags=re.M)[1:]:
        fields = re.findall(r"^    (\w+): (.*)$", block, flags=re.M)  # e.g. '    log: a.log'
        jobs.append({"rule": [block.split(":", 1)[0]]} | {k: v.split(", ") for k, v in fields})
    return jobs


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    return _planned(tmp_path_factory.mktemp("dry-run"))


def test_every_job_of_the_workflow_writes_where_the_layout_says(planned):
    config = validate_study(tiny_config())
    wildcards = {"data": set(grid.data_specs(config)), "train": {p.id for p in grid.points(config)}}
    seen = {rule: set() for rule in wildcards}
    for job in planned:
        rule = job["rule"][0]
        if rule in ("all", "figures"):
            continue
        wildcard = job["wildcards"][0].split("=", 1)[1] if "wildcards" in job else None
        seen.get(rule, set()).add(wildcard)
        fields = {key: job.get(key) for key in ("output", "log", "benchmark")}
        assert fields == _expected(rule, wildcard), rule
    assert seen == wildcards  # one job per data file and per grid point, with their ids


def test_the_figures_are_where_the_layout_says(planned):
    (job,) = [job for job in planned if job["rule"] == ["figures"]]
    outputs = [Path(f) for f in job["output"]]
    assert outputs and all(LAYOUT.figure(p.stem, p.suffix[1:]) == str(p) for p in outputs)
    assert job["log"] == [LAYOUT.log("figures")]
    assert job["benchmark"] == [LAYOUT.benchmark("figures")]
