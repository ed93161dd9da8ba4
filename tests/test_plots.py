"""Every figure draws from a cube and its fit, also when the fit had to skip steps."""

import pytest

from opscale import cube, fit, plots
from tests.helpers import synthetic_cube

CUBES = {
    "planted": lambda: synthetic_cube(floor=0.02),
    "tiny": lambda: synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16)),
}


@pytest.mark.parametrize("name", CUBES)
def test_every_figure_is_drawn(tmp_path, name):
    cube.write(CUBES[name](), tmp_path / "cube.nc")
    settings = {"bootstrap": 30, "backtest_bootstrap": 20}
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", settings)
    outputs = {figure: str(tmp_path / f"{figure}.png") for figure in plots.FIGURES}
    plots.draw_figures(tmp_path / "cube.nc", tmp_path / "fit.nc", outputs)
    for path in outputs.values():
        assert (tmp_path / path).stat().st_size > 5_000
