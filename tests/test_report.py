"""The study's pages in the report: fit.html, the landing text, and a real browser on them."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from opscale import cube, fit, page, plots, tables
from opscale.figures import FORMATS, INTERACTIVE, SCALING_FIGURES
from opscale.tables import number
from tests.helpers import (
    load_script,
    planned_jobs,
    run_snakemake,
    synthetic_cube,
    tiny_config,
    write_config,
)

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
    assert "deeponet_effective_dim" not in text


def test_the_landing_text_is_written_from_the_study(fits):
    text = page.landing(fits)
    assert "DeepONet" in text and "DeepONet-family" not in text
    assert "``model.width`` 4, 8, 16, 32 × ``data.n_train`` 16, 32, 64, 128, 256" in text
    assert "{'" not in text and "robust additive law" in text and "bootstrap" in text
    assert "err ≈ " in text
    assert "results/synthetic/figures/" in text and "*scaling_interactive.html*" in text
    assert "16 Karhunen-Loeve modes kept, b_eff 5 at 99% of the energy" in text  # l = 0.2


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


def _undrawn_colours(shot: Path, page: str) -> list[str]:
    """The line colours of `page`'s figures of which the screenshot `shot` has fewer than
    20 pixels (Bokeh draws on a canvas, in no DOM). Each figure has its own palette
    (``plots.PALETTES``), so a figure left blank leaves its colours out."""
    from PIL import Image

    document = page.split("/* END bokeh.min.js */")[-1]
    colours = set(re.findall(r'"(#[0-9a-f]{6})"', document)) - {"#000000"}
    assert len(colours) >= 4, colours  # two lines per figure at least
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)

    def drawn(colour: str) -> bool:
        rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        return (np.abs(pixels - rgb).max(axis=-1) <= 8).sum() >= 20  # a marker's inside

    return [colour for colour in sorted(colours) if not drawn(colour)]


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
    console = ("--enable-logging=stderr", "--v=0")  # the page's console log on stderr
    opening = _chromium(
        *offline, *console, "--virtual-time-budget=10000", "--dump-dom", opened.as_uri()
    )
    dom = opening.stdout
    assert 'class="bk-Column"' in dom  # BokehJS ran offline: the figures' root is built
    assert "document idle" in opening.stderr  # BokehJS' log: every view rendered
    assert "Uncaught" not in opening.stderr  # no script error
    fits = cube.read(study / "fit.nc")
    parameters, rows = tables.table(fits, "parameter"), tables.table(fits, "row")
    headline = page.takeaway(parameters, rows, "all", tables.confidence_label(fits))
    assert f"<li>tiny: {headline}</li>" in dom  # the headline above the figures
    shot = tmp_path / "page.png"
    _chromium(
        *offline,
        "--window-size=1250,1400",
        "--virtual-time-budget=10000",
        f"--screenshot={shot}",
        opened.as_uri(),
    )
    assert _undrawn_colours(shot, embedded.decode()) == []  # every line drawn, both figures


# a reader's clicks in the report: Results > Scaling, then the eye button of the page `{name}`
OPEN_ITEM = load_script("docs/screenshots.py").OPEN_ITEM  # the reader's two clicks


@pytest.mark.workflow
@pytest.mark.skipif(_browser() is None, reason="no chromium binary (.ci/run installs Debian's)")
def test_the_interactive_figure_shows_in_the_report_frame(reported, tmp_path):
    # the report shows an HTML item in an iframe whose src is its data URL (2 MiB at most)
    report = (reported / "results" / "report.html").read_text()
    name = f"{INTERACTIVE}.html"
    (uri,) = re.findall(rf'"(data:text/html;[^"]*filename={re.escape(name)};base64,[^"]+)"', report)
    shown = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert plots.fits_report_frame(shown) and len(uri) <= plots.FRAME_LIMIT, len(uri)
    clicked = tmp_path / "report.html"  # the report itself, opened on the interactive item
    end = report.rindex("</body>")
    clicked.write_text(report[:end] + OPEN_ITEM.replace("{name}", name) + report[end:])
    shot = tmp_path / "report-interactive.png"
    _chromium(
        "--window-size=1600,1250",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        clicked.as_uri(),
    )
    assert _undrawn_colours(shot, shown) == []  # both figures drawn in its frame, not blank


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


def test_the_landing_text_names_the_interactive_page_only_when_it_is_drawn(fits):
    config = json.loads(fits.attrs["config"])
    config["figures"] = {**config.get("figures", {}), "interactive": False}
    off = fits.assign_attrs(config=json.dumps(config))
    assert "scaling_interactive.html" in page.landing(fits)
    assert "scaling_interactive.html" not in page.landing(off)
