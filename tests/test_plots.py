"""Every figure draws from a cube and its fit, also when the fit had to skip steps."""

import pytest

from opscale import cube, fit, plots
from tests.helpers import models_cube, synthetic_cube

CUBES = {
    "planted": lambda: synthetic_cube(floor=0.02),
    "tiny": lambda: synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16)),
    "models": models_cube,  # a swept model.name: one fit group (and panel) per model
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


def test_figures_plot_the_fitted_response(tmp_path):
    # fit.response: val_rel_l2 crashed every scaling figure with KeyError: 'test_rel_l2'.
    ds = synthetic_cube(floor=0.02)
    ds = ds.rename(test_rel_l2="val_rel_l2")
    cube.write(ds, tmp_path / "cube.nc")
    settings = {"bootstrap": 30, "backtest_bootstrap": 20, "response": "val_rel_l2"}
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", settings)
    outputs = {figure: str(tmp_path / f"{figure}.png") for figure in plots.FIGURES}
    plots.draw_figures(tmp_path / "cube.nc", tmp_path / "fit.nc", outputs)
    for path in outputs.values():
        assert (tmp_path / path).stat().st_size > 5_000


def test_every_registered_figure_has_a_function_and_a_caption():
    from opscale import analyses, figures
    from tests.helpers import REPO

    assert set(plots.FIGURES) == set(figures.SCALING_FIGURES)
    for name in figures.SCALING_FIGURES:
        assert (REPO / "workflow" / "report" / f"{name}.rst").is_file(), name
    for analysis in analyses.ANALYSES.values():
        module = __import__(analysis.module, fromlist=["_"])
        for name in analysis.figures:
            assert callable(getattr(module, name)), name
            assert (REPO / "workflow" / "report" / f"{name}.rst").is_file(), name


def _described(path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return image.text.get("Description", "")


def test_every_model_diverged_draws_figures_that_say_why(tmp_path, caplog):
    # every model diverged (lr 1000): seaborn raised TypeError and failed the figures rule
    ds = synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16))
    ds["status"][:] = cube.DIVERGED
    cube.write(ds, tmp_path / "cube.nc")
    settings = {"bootstrap": 30, "backtest_bootstrap": 20}
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", settings)
    outputs = {figure: str(tmp_path / f"{figure}.png") for figure in plots.FIGURES}
    with caplog.at_level("ERROR", logger="opscale.plots"):
        failed = plots.draw_figures(tmp_path / "cube.nc", tmp_path / "fit.nc", outputs)
    reason = "ValueError: no model to plot: of 8 models, 8 diverged and 0 are missing"
    assert set(failed) == set(outputs)
    for name, path in outputs.items():
        assert failed[name].startswith(reason)
        assert _described(path) == failed[name]  # the figure that says so
        assert f"figure {name} could not be drawn" in caplog.text
    assert "Traceback" in caplog.text


def test_one_failing_figure_does_not_stop_the_others(tmp_path, monkeypatch, caplog):
    cube.write(synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16)), tmp_path / "cube.nc")
    settings = {"bootstrap": 30, "backtest_bootstrap": 20}
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", settings)
    broken, *others = list(plots.FIGURES)

    def fails(obs, fits):
        raise TypeError("'NoneType' object is not iterable")

    monkeypatch.setitem(plots.FIGURES, broken, fails)
    outputs = {figure: str(tmp_path / f"{figure}.png") for figure in plots.FIGURES}
    with caplog.at_level("ERROR", logger="opscale.plots"):
        failed = plots.draw_figures(tmp_path / "cube.nc", tmp_path / "fit.nc", outputs)
    assert failed == {broken: "TypeError: 'NoneType' object is not iterable"}
    assert _described(outputs[broken]) == failed[broken]
    assert "in fails" in caplog.text  # the traceback
    for name in others:
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000
        assert _described(outputs[name]) == ""


# ------------------------------------------------------- figures that carry the headline
@pytest.fixture(scope="module")
def drawn():
    """Observations and fit of a planted study (one group), as the figures read them."""
    from opscale.scaling.observations import grouping_axes

    ds = synthetic_cube(floor=0.02)
    fits = fit.fit(ds, {"bootstrap": 30, "backtest_bootstrap": 20})
    obs = plots._labelled(plots._plotted(ds, "test_rel_l2"), grouping_axes(ds))
    return obs, fits


def _texts(figure) -> str:
    legends = [t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().texts]
    legends += [t.get_text() for leg in figure.legends for t in leg.texts]
    titles = [ax.get_title() for ax in figure.axes]
    return "\n".join(legends + titles + [t.get_text() for ax in figure.axes for t in ax.texts])


@pytest.mark.parametrize(("name", "x"), [("error_vs_n_train", "n"), ("error_vs_n_params", "N")])
def test_the_scaling_figures_draw_the_robust_law_with_its_exponent(drawn, name, x):
    from opscale import tables

    obs, fits = drawn
    text = _texts(plots.FIGURES[name](obs, fits))
    row = tables.table(fits, "row").query("law == 'robust' and term == @plots.TERM_OF[@x]")
    assert "robust law" in text and tables.interval_cell(row.iloc[0]) in text
    assert "synthetic" in text and "all" not in text.split()


def test_the_theory_curve_is_drawn_only_where_a_power_law_bound_applies(drawn):
    obs, fits = drawn  # a GRF study: b infinite, the Lipschitz (logarithmic) bound
    text = _texts(plots.exponent_vs_dimension(obs, fits))
    assert "no power-law bound applies" in text and "theory (finite inputs" not in text
    finite = fits.assign(
        theory=fits.theory.copy(data=["deeponet_finite_inputs"] * fits.sizes["row"])
    )
    finite["intrinsic_dim"] = finite.intrinsic_dim.fillna(4.0)
    text = _texts(plots.exponent_vs_dimension(obs, finite))
    assert "theory (finite inputs, upper bound)" in text and "no power-law bound" not in text


def test_a_law_that_could_not_be_fitted_is_said_on_the_figure(drawn):
    obs, fits = drawn
    bare = fits.drop_vars([v for v in fits.data_vars if v.startswith("fitted_")])
    figure = plots.error_vs_n_train(obs, bare)
    assert any(plots.NO_LAW in t.get_text() for t in figure.texts)
