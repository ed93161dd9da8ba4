"""fit.md for people: the takeaway first, one number format, no internal keys."""

import re

import pytest

from opscale import fit, tables
from opscale.markdown import markdown, takeaway
from opscale.tables import number
from tests.helpers import synthetic_cube

FAST = {"bootstrap": 40, "backtest_bootstrap": 20}


@pytest.fixture(scope="module")
def planted():
    """A planted law with a floor (E = 0.01) and its fit.md."""
    fits = fit.fit(synthetic_cube(floor=0.01, rng_seed=2), FAST)
    return fits, markdown(fits)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (6.075e-18, "6.08e-18"),
        (102.7, "103"),
        (0.09383, "0.0938"),
        (1.0, "1.00"),
        (9.996, "10.0"),
        (0.0, "0"),
        (-3.2, "-3.20"),
        (123456, "1.23e5"),
        (float("nan"), "n/a"),
    ],
)
def test_numbers_have_three_significant_figures(value, text):
    assert number(value) in {text, text.replace("6.08", "6.07")}  # binary rounding of .075


def test_the_takeaway_comes_first_and_carries_the_robust_law(planted):
    fits, text = planted
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections[0] == "Takeaway"
    p = tables.table(fits, "parameter").query("law == 'robust'").set_index("name").estimate
    line = next(line for line in text.splitlines() if line.startswith("- **synthetic**"))
    assert f"{number(p.A)} N^-{number(p.alpha)}" in line
    assert f"{number(p.B)} n^-{number(p.beta)}" in line and "robust law" in line


def test_an_unidentified_exponent_is_said_in_the_takeaway():
    fits = fit.fit(synthetic_cube(alpha=6.0), FAST)
    rows, parameters = tables.table(fits, "row"), tables.table(fits, "parameter")
    line = takeaway(parameters, rows, "all", "95%")
    assert "N exponent" in line and "not identified" in line and line.startswith("err ≈ ")


def test_without_the_robust_law_the_takeaway_says_local_slopes(planted):
    fits, _ = planted
    rows, parameters = tables.table(fits, "row"), tables.table(fits, "parameter")
    line = takeaway(parameters.iloc[0:0], rows, "all", "95%")
    assert "local slopes" in line and "N^-" in line


def test_fit_md_prints_no_registry_key_and_one_number_format(planted):
    fits, text = planted
    assert set(tables.table(fits, "row").theory) <= {"deeponet_effective_dim"}  # in fit.nc
    assert "deeponet_effective_dim" not in text and "effective dimension (a heuristic)" in text
    assert "log k (FLOPs)" not in text and "ln k" in text
    # no number with 4 or more significant decimals (0.09383, 0.5236, 6.075e-18)
    assert not re.search(r"\b0\.0*[1-9]\d{3,}", text)
    assert not re.search(r"\d\.\d{3,}e", text)


def test_the_size_section_names_each_count_and_gives_verdicts_only_on_the_theorem_s(planted):
    fits, text = planted
    section = text.split("## Model size as the theorem counts it", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| all |")]
    counted = {line.split(" | ")[2]: line for line in rows}
    assert set(counted) == {
        "N (all parameters)",
        "the law in N and n",
        "p (basis functions)",
        "envelope min over N",
    }
    assert "no verdict" in counted["p (basis functions)"]
    assert "no verdict" not in counted["envelope min over N"]
    # the headline stays on N: one row per axis
    headline = text.split("## Measured vs theory", 1)[1].split("\n## ", 1)[0]
    assert len([line for line in headline.splitlines() if line.startswith("| synthetic")]) == 2
