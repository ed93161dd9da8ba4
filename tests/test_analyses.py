import numpy as np
import pytest

from opscale import analyses, config, fit, plots, tables
from opscale import cube as cubes
from opscale.markdown import markdown
from tests.helpers import synthetic_cube, tiny_config

TOY = analyses.Analysis("tests.analysis_toy", ("toy_figure",))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(analyses.ANALYSES, "toy", TOY)


def test_an_analysis_adds_its_tables_and_section_after_the_scaling_fit(toy):
    cube = synthetic_cube(seeds=3)
    fits = fit.fit(cube, {"bootstrap": 0, "backtest_bootstrap": 0, "analyses": ["toy"]})
    medians = tables.table(fits, "toy_median")
    expected = cube["test_rel_l2"].median(["n_train", "seed"]).values
    assert np.allclose(medians["test_rel_l2"], expected)
    text = markdown(fits)
    assert "## Measured vs theory" in text and text.index("## Measured") < text.index("## Toy")


def test_scaling_off_leaves_only_the_analyses(toy):
    fits = fit.fit(synthetic_cube(seeds=3), {"scaling": False, "analyses": ["toy"]})
    assert tables.table(fits, "row").empty
    text = markdown(fits)
    assert "## Toy" in text and "Measured vs theory" not in text


def test_analysis_figures_are_drawn_from_the_cube_and_fit(toy, tmp_path):
    cube = synthetic_cube(seeds=3)
    fits = fit.fit(cube, {"scaling": False, "analyses": ["toy"]})
    cubes.write(cube, tmp_path / "cube.nc")
    cubes.write(fits, tmp_path / "fit.nc")
    out = tmp_path / "toy_figure.png"
    plots.draw_figures(str(tmp_path / "cube.nc"), str(tmp_path / "fit.nc"), {"toy_figure": out})
    assert out.stat().st_size > 1000
    assert analyses.figures(["toy"]) == {"toy_figure": "toy"}


def test_an_unknown_analysis_is_refused_by_name():
    registered = "registered values: iteration, recovery, linearization"
    with pytest.raises(config.ConfigError, match=rf"fit.analyses\[0\]: 'recovry' .*{registered}"):
        config.validate_study(tiny_config(fit={"analyses": ["recovry"]}))
