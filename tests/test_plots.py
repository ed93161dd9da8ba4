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


# ------------------------------------------------------- formats, dpi, interactive page
SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def _is_valid(path) -> bool:
    """A PNG by its signature, a PDF by its header, an SVG by its parsed root element."""
    from pathlib import Path
    from xml.etree import ElementTree

    fmt = Path(path).suffix[1:]
    if fmt == "svg":
        return ElementTree.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    return Path(path).read_bytes().startswith(SIGNATURES[fmt])


@pytest.fixture
def toy(monkeypatch):
    """The toy analysis of tests/analysis_toy.py: a figure drawn by an analysis' own code."""
    from opscale import analyses

    toy = analyses.Analysis("tests.analysis_toy", ("toy_figure",))
    monkeypatch.setitem(analyses.ANALYSES, "toy", toy)


def test_every_figure_is_written_in_every_format(tmp_path, toy):
    from opscale.figures import FORMATS

    cube.write(synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16)), tmp_path / "cube.nc")
    settings = {"bootstrap": 20, "backtest_bootstrap": 10, "analyses": ["toy"]}
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", settings)
    names = [*plots.FIGURES, "toy_figure"]  # the scaling figures and an analysis' one
    outputs = {name: [str(tmp_path / f"{name}.{fmt}") for fmt in FORMATS] for name in names}
    assert plots.draw_figures(tmp_path / "cube.nc", tmp_path / "fit.nc", outputs) == {}
    for paths in outputs.values():
        for path in paths:
            assert _is_valid(path), path


def test_dpi_sets_the_png_resolution(tmp_path, drawn):
    from PIL import Image

    obs, fits = drawn
    sizes = {}
    for dpi in (65, 130):
        path = tmp_path / f"heatmap-{dpi}.png"
        plots.save_figure(plots.error_heatmap(obs, fits), [path], dpi=dpi)
        with Image.open(path) as image:
            sizes[dpi] = image.size
            assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.01)
    # pixels = inches x dpi: twice the dpi, twice the pixels (to the rounding of the tight box)
    for axis in (0, 1):
        assert sizes[130][axis] == pytest.approx(2 * sizes[65][axis], abs=4)


def test_a_redrawn_vector_figure_has_the_same_bytes(tmp_path, drawn):
    obs, fits = drawn
    for name in ("a", "b"):
        plots.save_figure(plots.error_heatmap(obs, fits), [tmp_path / f"{name}.svg"])
        plots.save_figure(plots.error_heatmap(obs, fits), [tmp_path / f"{name}.pdf"])
    for fmt in ("svg", "pdf"):
        assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()


def test_the_figures_rule_declares_every_format_and_the_interactive_page():
    from opscale import figures
    from opscale.config import load_schema, validate_study
    from tests.helpers import tiny_config

    schema = load_schema()["properties"]["figures"]["properties"]
    assert set(schema["format"]["items"]["enum"]) == set(figures.FORMATS)
    default = validate_study(tiny_config())
    assert default["figures"] == {"format": ["png"], "dpi": plots.DPI, "interactive": True}
    config = validate_study(tiny_config(figures={"format": ["svg", "pdf"]}))
    files = figures.figure_files(config)
    for name in figures.SCALING_FIGURES:
        mine = {fmt: category for figure, fmt, category in files if figure == name}
        assert mine == {"png": "Scaling", "svg": None, "pdf": None}  # the report: the PNG
    assert (figures.INTERACTIVE, "html", "Scaling") in files
    assert len(files) == 3 * len(figures.SCALING_FIGURES) + 1
    off = validate_study(tiny_config(fit={"scaling": False}))
    assert figures.figure_files(off) == []
    static = validate_study(tiny_config(figures={"interactive": False}))
    assert [f for f in figures.figure_files(static) if f[0] == figures.INTERACTIVE] == []
    assert len(figures.figure_files(static)) == len(figures.SCALING_FIGURES)


def test_the_interactive_page_holds_the_law_and_no_remote_script(drawn):
    import json
    import re

    from opscale import tables
    from opscale.markdown import takeaway

    obs, fits = drawn
    page = plots.scaling_interactive(obs, fits)
    rows = tables.table(fits, "row").query("law == 'robust'").set_index("term")
    for x, term in plots.TERM_OF.items():  # each figure's exponent and interval, in the legend
        label = (
            f"robust law E + A N^-α + B n^-β: {x} exponent {tables.interval_cell(rows.loc[term])}"
        )
        assert f'"label":{{"type":"value","value":{json.dumps(label)}}}' in page  # escaped
    assert page.count("robust law E + A N^-") == 2  # one law line per figure
    headline = takeaway(tables.table(fits, "parameter"), rows.reset_index(), "all", "95%")
    assert f"<li>synthetic: {headline}</li>" in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.I)  # nothing fetched
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page, flags=re.I)
    assert page.count('"name":"Figure"') == 2 and page.count('"name":"Column"') == 1
    assert plots.NO_LAW not in page


def test_a_group_without_its_law_says_so_and_the_others_draw_theirs(tmp_path):
    fits = fit.fit(models_cube(), {"bootstrap": 20, "backtest_bootstrap": 10})
    from opscale.scaling.observations import grouping_axes

    ds = models_cube()
    obs = plots._labelled(plots._plotted(ds, "test_rel_l2"), grouping_axes(ds))
    fitted = fits["fitted_robust"].copy()
    fitted.loc[{"model": "mlp"}] = float("nan")  # the mlp group's law failed
    fits = fits.assign(fitted_robust=fitted)
    figure = plots.error_vs_n_train(obs, fits)
    notes = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in figure.axes}
    assert [title for title, texts in notes.items() if plots.NO_LAW in texts] == [
        next(t for t in notes if "model=mlp" in t)
    ]
    page = plots.scaling_interactive(obs, fits)
    assert f"synthetic: model=mlp: {plots.NO_LAW}" in page
    assert "synthetic: model=deeponet: no law" not in page


def test_a_failed_figure_says_why_in_every_format(tmp_path):
    paths = [tmp_path / f"broken.{fmt}" for fmt in ("png", "pdf", "svg")]
    reason = "ValueError: no model to plot"
    plots.save_figure(plots._failure("broken", reason), paths, description=reason)
    assert _described(paths[0]) == reason
    assert f"/Subject ({reason})".encode() in paths[1].read_bytes()
    assert f"<dc:description>{reason}</dc:description>" in paths[2].read_text()


def test_an_interactive_page_that_fails_says_why(tmp_path, monkeypatch):
    from opscale.figures import INTERACTIVE

    cube.write(synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16)), tmp_path / "cube.nc")
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", {"bootstrap": 0})

    def fails(obs, fits):
        raise KeyError("fitted_robust")

    monkeypatch.setitem(plots.PAGES, INTERACTIVE, fails)
    outputs = {INTERACTIVE: [str(tmp_path / f"{INTERACTIVE}.html")], "error_heatmap": []}
    failed = plots.draw_figures(tmp_path / "cube.nc", tmp_path / "fit.nc", outputs)
    assert failed == {INTERACTIVE: "KeyError: 'fitted_robust'"}
    text = (tmp_path / f"{INTERACTIVE}.html").read_text()
    assert "could not be drawn" in text and "KeyError: &#x27;fitted_robust&#x27;" in text


def test_the_interactive_log_axis_is_labelled_in_full():
    ticks = plots._log_ticks([0.03, 0.3, float("nan")])  # 1, 2, 5 x 10^k within 0.1 decade
    assert ticks == {0.05: "0.05", 0.1: "0.1", 0.2: "0.2"}
    assert plots._log_ticks([float("nan"), -1.0]) == {}  # nothing to place: Bokeh's own ticks


def test_the_page_inlines_the_installed_bokehjs_once_and_links_nowhere(drawn):
    import re
    from pathlib import Path

    import bokeh

    page = plots.scaling_interactive(*drawn)
    assert re.findall(r"/\* BEGIN (\S+) \*/", page) == ["bokeh.min.js"]  # the core bundle only
    (inlined,) = re.findall(
        r"/\* BEGIN bokeh\.min\.js \*/\n(.*?)/\* END bokeh\.min\.js", page, re.S
    )
    installed = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js"
    assert inlined.strip() == installed.read_text(encoding="utf-8").strip()
    assert f'.version="{bokeh.__version__}"' in inlined  # BokehJS of the Python package
    assert f'"version":"{bokeh.__version__}"' in page  # the document it draws
    rest = page.replace(inlined, "")  # the page around BokehJS (whose code names URLs)
    assert "http://" not in rest and "https://" not in rest  # no script, link or logo out
    assert rest.count('"logo":null') == 2 and '"name":"HelpTool"' not in rest  # docs.bokeh.org


def test_the_report_frame_limit_counts_the_base64_data_url():
    from pathlib import Path

    import bokeh

    header = len("data:text/html;charset=utf8;filename=scaling_interactive.html;base64,")
    largest = 3 * ((plots.FRAME_LIMIT - header) // 4)  # base64: 4 characters per 3 bytes
    assert plots.fits_report_frame("a" * largest)
    assert not plots.fits_report_frame("a" * (largest + 3))
    assert not plots.fits_report_frame("é" * (largest // 2 + 2))  # bytes (UTF-8), not characters
    bokehjs = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js"
    assert plots.fits_report_frame(bokehjs.read_text(encoding="utf-8"))  # 1.3 MB: it fits
    assert not plots.fits_report_frame("x" * 4_800_000)  # the full plotly.js did not
