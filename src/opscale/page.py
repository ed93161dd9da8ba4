"""A study's pages in ``snakemake --report``: fit.md as HTML, and the landing text.

``fit_html(fits)`` renders fit.md (:func:`opscale.markdown.markdown`) as a standalone HTML
page (the report shows HTML in place; Markdown it only offers for download).
``landing(fits)`` is the report's landing text (reStructuredText, as Snakemake's
``report:`` takes it), written from the study itself: its model, problem, sweep, fit
method and the takeaway of every group, with the measured-vs-theory table. The workflow
uses it when the study has been fitted, ``workflow/report/workflow.rst`` before.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import markdown as markdown_lib
import xarray as xr

from opscale import cube as cubes
from opscale import tables
from opscale.figures import INTERACTIVE, INTERACTIVE_FORMAT
from opscale.markdown import markdown, takeaway

MODEL_NAMES = {
    "deeponet": "DeepONet (branch and trunk networks)",
    "mlp": "deep ReLU network (MLP)",
    "iterative": "iterated weight-shared operator block",
    "two_layer": "two-layer tanh network",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
"""


def fit_html(fits: xr.Dataset) -> str:
    """fit.md as a standalone HTML page (tables rendered, inline style, no scripts)."""
    body = markdown_lib.markdown(markdown(fits), extensions=["tables"])
    title = html.escape(f"opscale fit: {cubes.study_config(fits).get('study', '?')}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def landing(fits: xr.Dataset) -> str:
    """The report's landing text (reST) for a fitted study."""
    config = cubes.study_config(fits)
    study = config.get("study", "?")
    lines = [
        f"opscale study **{study}**: {describe_models(config)} on {describe_problem(config)}.",
        "",
        f"Sweep: {describe_sweep(config)}; seeds {_values(config.get('seeds', []))}, all "
        "seeds of a point trained together as one batched model.",
        "",
        describe_fit(fits),
        "",
        *_takeaways(fits, study),
        "",
        f"Every number is in results/{study}/ (cube.nc, fit.nc, exponents.csv); the page "
        "*fit.html* under **Fits** has every table.",
        "",
        describe_figures(fits, study),
    ]
    return _escape_jinja("\n".join(lines)) + "\n"


def describe_figures(fits: xr.Dataset, study: str) -> str:
    """Where the figures are: PNGs in the report, every format on disk, the interactive page."""
    text = (
        f"Every figure is in results/{study}/figures/: its PNG here, under its category, "
        "and its other formats (``figures.format``: pdf, svg) beside it."
    )
    config = cubes.study_config(fits)
    interactive = config.get("figures", {}).get("interactive", True)
    if tables.settings(fits).get("scaling", True) and interactive:
        text += (
            " The scaling figures error vs n and vs N are also interactive "
            f"(``figures.interactive``): *{INTERACTIVE}.{INTERACTIVE_FORMAT}* under "
            "**Scaling** (zoom, hover; no network needed)."
        )
    return text


def _takeaways(fits: xr.Dataset, study: str) -> list[str]:
    rows, parameters = tables.table(fits, "row"), tables.table(fits, "parameter")
    if rows.empty:
        return ["No scaling law was fitted (see the notes of fit.html)."]
    level = tables.confidence_label(fits)
    lines = ["Takeaway:", ""]
    for group in dict.fromkeys(rows["group"]):
        name = study if group == "all" else f"{study} ({group})"
        text = takeaway(parameters, rows, group, level)
        lines.append(f"- **{_rst(name)}**: {_rst(text)}")
    return lines


def describe_models(config: dict) -> str:
    """The study's model(s) in words: every swept ``model.name``, else the fixed one."""
    names = config.get("sweep", {}).get("model.name") or [config["model"]["name"]]
    words = [MODEL_NAMES.get(n, n) for n in names]
    linearized = " (linearized)" if config["model"].get("linearized") else ""
    return " and ".join(words) + linearized + " models"


def _spectrum_words(problem: dict) -> str:
    """How many dimensions GRF inputs span, in words (KL modes kept, b_eff at 99%)."""
    from opscale.problems.inputs import kl_spectrum

    try:
        spectrum = kl_spectrum(problem)
    except (KeyError, TypeError, ValueError):  # an unresolved config: say what is known
        return "infinite-dimensional"
    return (
        f"{spectrum['modes']} Karhunen-Loeve modes kept, b_eff {spectrum['b_eff'][0.99]} "
        "at 99% of the energy"
    )


def describe_problem(config: dict) -> str:
    """The problem and its input functions in words, with the intrinsic dimension b."""
    from opscale.problems.registry import intrinsic_dim

    problem = config["problem"]
    name = problem["name"].replace("_", " ")
    inputs = problem.get("inputs", {})
    if problem["name"] == "dataset":
        return f"the dataset {problem.get('dataset', {}).get('path', '?')}"
    try:
        b = intrinsic_dim(problem)
    except (KeyError, TypeError):
        b = None
    if problem["name"] in ("subspace_regression", "tanh_teacher"):
        return f"the {name} task in d = {b} dimensions"
    family = inputs.get("family", "?")
    if family == "grf":
        detail = (
            f"Gaussian random field inputs ({inputs.get('kernel')} kernel, length scale "
            f"{inputs.get('length_scale')}; {_spectrum_words(problem)})"
        )
    else:
        detail = f"{family} series inputs of b = {b} modes"
    return f"the {name} operator, {detail}"


def describe_sweep(config: dict) -> str:
    """``model.width`` 4, 8 × ``data.n_train`` 8, 16: each axis and its values."""
    axes = config.get("sweep", {})
    if not axes:
        return "none"
    return " × ".join(f"``{path}`` {_values(values)}" for path, values in axes.items())


def describe_fit(fits: xr.Dataset) -> str:
    """The fit method in one sentence, from the fit's settings."""
    settings = tables.settings(fits)
    level = tables.confidence_label(fits)
    if not settings.get("scaling", True):
        return "Fit: the analyses' own statistics (see fit.html)."
    return (
        "Fit: the robust additive law err = E + A N^-alpha + B n^-beta (Huber loss on log "
        f"error) with {level} bootstrap intervals ({settings.get('bootstrap', '?')} resamples, "
        f"scheme {settings.get('bootstrap_scheme', 'auto')}); log-log OLS slopes beside it "
        "as local slopes. An interval at a parameter's bound is censored: not identified."
    )


def write_pages(fit_path: str, html_path: str, landing_path: str) -> None:
    """Write fit.html and the landing text of the fit in `fit_path` (rule page)."""
    fits = cubes.read(fit_path)
    Path(html_path).write_text(fit_html(fits))
    Path(landing_path).write_text(landing(fits))


def _values(values) -> str:
    return ", ".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in values)


def _rst(text: str) -> str:
    """Inline text safe in reST: ``*``, backquotes and ``|`` taken literally."""
    for char in "\\*`|_":
        text = text.replace(char, "\\" + char)
    return text


def _escape_jinja(text: str) -> str:
    # Snakemake renders the landing text with Jinja first
    return re.sub(r"[{}]", lambda m: "{{ '" + m.group() + "' }}", text)
