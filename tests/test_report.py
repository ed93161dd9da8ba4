"""The study's pages in the report: fit.html, the landing text, and a real browser on them."""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from opscale import cube, fit, page, plots, tables
from opscale.figures import FORMATS, INTERACTIVE, SCALING_FIGURES
from opscale.tables import number
from tests.helpers import planned_jobs, run_snakemake, synthetic_cube, tiny_config, write_config

FAST = {"bootstrap": 40, "backtest_bootstrap": 20}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def fits():
    return fit.fit(synthetic_cube(floor=0.01, rng_seed=3), FAST)


def test_fit_html_renders_every_table_with_the_takeaway_first(fits):
    text = page.fit_html(fits)
    assert text.startswith("<!DOCTYPE html>") and "<table>" in text and "<th>" in text
    assert text.index("Takeaway") < text.index("Measured vs theory")
    alpha = tables.table(fits, "parameter").set_index("name").estimate["alpha"]
    assert f"N^-{number(alpha)}" in text
    assert "deeponet_lipschitz" not in text


def test_the_landing_text_is_written_from_the_study(fits):
    text = page.landing(fits)
    assert "DeepONet" in text and "DeepONet-family" not in text
    assert "``model.width`` 4, 8, 16, 32 × ``data.n_train`` 16, 32, 64, 128, 256" in text
    assert "{'" not in text and "robust additive law" in text and "bootstrap" in text
    assert "err ≈ " in text
    assert "results/synthetic/figures/" in text and "*scaling_interactive.html*" in text


def test_an_mlp_study_is_not_called_deeponet():
    config = {"model": {"name": "mlp"}, "sweep": {}}
    assert page.describe_models(config) == "deep ReLU network (MLP) models"
    both = {"model": {"name": "deeponet"}, "sweep": {"model.name": ["deeponet", "mlp"]}}
    assert "DeepONet" in page.describe_models(both) and "MLP" in page.describe_models(both)


def _browser():
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    command = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """The tiny study run in every figure format, with its report (results/report.html)."""
    workdir = tmp_path_factory.mktemp("reported")
    config = write_config(workdir / "study.yaml", tiny_config(figures={"format": list(FORMATS)}))
    run_snakemake(workdir, config)
    run_snakemake(workdir, config, "--report", "results/report.html")
    return workdir


def _embedded(report: Path, filename: str) -> bytes:
    """The file `filename` as the report embeds it (a base64 data URI)."""
    pattern = rf'"data:[^;"]+;charset=utf8;filename={re.escape(filename)};base64,([^"]+)"'
    (data,) = re.findall(pattern, report.read_text())
    return base64.b64decode(data)


@pytest.mark.workflow
@pytest.mark.skipif(_browser() is None, reason="no chromium binary (.ci/run installs Debian's)")
def test_the_report_opens_in_a_browser_with_the_headline_in_its_dom(reported, tmp_path):
    study = reported / "results" / "tiny"
    fits = cube.read(study / "fit.nc")
    report = (reported / "results" / "report.html").as_uri()
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", report).stdout
    parameters, rows = tables.table(fits, "parameter"), tables.table(fits, "row")
    headline = page.takeaway(parameters, rows, "all", tables.confidence_label(fits))
    assert "opscale study" in dom and "tiny" in dom
    assert headline.split(" (")[0] in dom  # the law with its exponents, e.g. err ≈ ... N^-0.6
    assert "Takeaway" in dom and "fit.html" in dom and "scaling_interactive.html" in dom
    shot = tmp_path / "landing.png"
    _chromium("--window-size=1400,1000", f"--screenshot={shot}", report)
    assert shot.stat().st_size > 10_000


@pytest.mark.workflow
@pytest.mark.skipif(_browser() is None, reason="no chromium binary (.ci/run installs Debian's)")
def test_the_interactive_figure_of_the_report_draws_offline(reported, tmp_path):
    study = reported / "results" / "tiny"
    interactive = study / "figures" / f"{INTERACTIVE}.html"
    embedded = _embedded(reported / "results" / "report.html", interactive.name)
    assert embedded == interactive.read_bytes()  # the report holds the page itself
    opened = tmp_path / interactive.name  # what the report's frame shows, opened alone
    opened.write_bytes(embedded)
    offline = ("--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>")
    dom = _chromium(*offline, "--virtual-time-budget=10000", "--dump-dom", opened.as_uri()).stdout
    # plotly drew both figures (its SVG), with the law's exponent in a rendered legend entry
    assert dom.count('class="main-svg"') >= 4  # two plots, two SVG layers each
    legends = [re.sub(r"<[^>]+>", "", t) for t in re.findall(r'class="legendtext".*?</text>', dom)]
    fits = cube.read(study / "fit.nc")
    for x, ols in (("n", "data"), ("N", "model")):
        law = "robust" if "fitted_robust" in fits else ols  # the law the headline reports
        exponent = plots._interactive_exponent(fits, "all", x, law)
        assert any(exponent in text for text in legends), (exponent, legends)


@pytest.mark.workflow
@pytest.mark.skipif(_browser() is None, reason="no chromium binary (.ci/run installs Debian's)")
def test_the_interactive_figure_shows_in_the_report_frame(reported, tmp_path):
    # the report shows an HTML item in an iframe whose src is its data URL, as here
    report = (reported / "results" / "report.html").read_text()
    name = f"{INTERACTIVE}.html"
    (uri,) = re.findall(rf'"(data:text/html;[^"]*filename={re.escape(name)};base64,[^"]+)"', report)
    frame = tmp_path / "frame.html"
    frame.write_text(f'<iframe src="{uri}" style="width:1200px;height:1100px;border:0"></iframe>')
    shot = tmp_path / "frame.png"
    _chromium(
        "--window-size=1250,1150",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        frame.as_uri(),
    )
    page = base64.b64decode(uri.split(",", 1)[1]).decode()
    if not plots.fits_report_frame(page):
        pytest.xfail(f"{len(uri)} characters: over Chromium's 2 MiB URL limit (full plotly.js)")
    assert shot.stat().st_size > 50_000  # two drawn plots, not a blank frame (~7 kB)


@pytest.mark.workflow
def test_every_format_is_declared_and_one_deleted_file_is_redrawn_alone(reported, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(reported, copy, symlinks=True)
    figures = copy / "results" / "tiny" / "figures"
    names = {p.name for p in figures.iterdir()}
    expected = {f"{n}.{fmt}" for n in SCALING_FIGURES for fmt in FORMATS}
    assert names == expected | {f"{INTERACTIVE}.html"}
    (figures / "fit_curves.svg").unlink()
    assert planned_jobs(copy, copy / "study.yaml") == {"figures": 1, "all": 1}
    run_snakemake(copy, copy / "study.yaml")
    assert (figures / "fit_curves.svg").read_text().lstrip().startswith("<?xml")
    assert planned_jobs(copy, copy / "study.yaml") == {}
