"""Every study file of config/studies is a valid study whose grid and data can be planned."""

from pathlib import Path

import pytest

from opscale import config as cfg
from opscale import grid
from opscale.problems import intrinsic_dim, output_dim
from tests.helpers import REPO

STUDIES = sorted((REPO / "config" / "studies").glob("*.yaml"))


def test_there_is_a_study_per_question_of_issue_3():
    names = {path.stem for path in STUDIES}
    assert {
        "finite-series-data",
        "finite-series-model",
        "grf-length-scales",
        "relu-subspace",
        "deepxde-antiderivative",
    } <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: Path(p).stem)
def test_study_validates_and_plans(path):
    config = cfg.load(path)
    points = grid.points(config)
    assert points and grid.data_specs(config)
    for point in points:  # every point's problem has well-defined theory inputs
        problem = point.spec["problem"]
        assert intrinsic_dim(problem) is None or intrinsic_dim(problem) >= 1
        assert output_dim(problem) >= 0


def test_the_b_sweep_gives_one_group_per_operator_and_b():
    config = cfg.load(REPO / "config" / "studies" / "finite-series-data.yaml")
    dims = {
        (p.coords["problem.name"], p.coords["problem.inputs.modes"]) for p in grid.points(config)
    }
    assert len(dims) == 10
    assert {intrinsic_dim(p.spec["problem"]) for p in grid.points(config)} == {2, 4, 8, 12, 16}
