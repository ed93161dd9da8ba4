"""The study's pages in the report: fit.html, the landing text, and a real browser on them."""

import shutil
import subprocess

import pytest

from opscale import cube, fit, page, tables
from opscale.tables import number
from tests.helpers import TINY_FILE, run_snakemake, synthetic_cube

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


@pytest.mark.workflow
@pytest.mark.skipif(_browser() is None, reason="no chromium binary (.ci/run installs Debian's)")
def test_the_report_opens_in_a_browser_with_the_headline_in_its_dom(tmp_path):
    config = shutil.copyfile(TINY_FILE, tmp_path / "study.yaml")
    run_snakemake(tmp_path, config)
    run_snakemake(tmp_path, config, "--report", "results/report.html")
    study = tmp_path / "results" / "tiny"
    fits = cube.read(study / "fit.nc")
    report = (tmp_path / "results" / "report.html").as_uri()
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", report).stdout
    parameters, rows = tables.table(fits, "parameter"), tables.table(fits, "row")
    headline = page.takeaway(parameters, rows, "all", tables.confidence_label(fits))
    assert "opscale study" in dom and "tiny" in dom
    assert headline.split(" (")[0] in dom  # the law with its exponents, e.g. err ≈ ... N^-0.6
    assert "Takeaway" in dom and "fit.html" in dom
    shot = tmp_path / "landing.png"
    _chromium("--window-size=1400,1000", f"--screenshot={shot}", report)
    assert shot.stat().st_size > 10_000
