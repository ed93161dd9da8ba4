"""Every figure a study draws, by name, and every file it writes (a registry).

Import-light (no matplotlib): Snakemake reads it at parse time for the outputs of the
``figures`` rule and their report categories. ``opscale.plots`` draws the scaling
figures (one function per name) and each analysis module draws its own; the tests check
that every registered figure has a drawing function and a caption
``workflow/report/<name>.rst``.

Every figure is written in each format of ``figures.format`` (png, pdf, svg), beside
each other under ``results/<study>/figures/``; the report shows the PNG. A study that
fits the scaling laws also gets ``INTERACTIVE`` (unless ``figures.interactive`` is off):
the two main scaling figures (error vs n and vs N) as one self-contained HTML page
(Bokeh, the core BokehJS inlined once: about 1.3 MB, so one page rather than one per
figure keeps the report small and fits its frame).
"""

from __future__ import annotations

from opscale.analyses import ANALYSES

SCALING = "Scaling"  # report category of the scaling figures
SCALING_FIGURES = (
    "error_vs_n_train",
    "error_vs_n_params",
    "error_heatmap",
    "fit_curves",
    "fit_residuals",
    "exponent_vs_dimension",
    "compute_frontier",
)
FORMATS = ("png", "pdf", "svg")  # figures.format: the formats a figure may be written in
REPORTED = "png"  # the format the report shows (always written)
INTERACTIVE = "scaling_interactive"  # the interactive page of the scaling figures
INTERACTIVE_FORMAT = "html"


def study_figures(fit_settings: dict) -> dict[str, str]:
    """Figure name -> report category for a study's resolved ``fit:`` settings.

    The scaling figures (category ``Scaling``) unless ``fit.scaling`` is off, then the
    figures of every analysis in ``fit.analyses`` (category: the analysis' name).
    """
    scaling = dict.fromkeys(SCALING_FIGURES, SCALING) if fit_settings["scaling"] else {}
    analysed = {
        figure: name for name in fit_settings["analyses"] for figure in ANALYSES[name].figures
    }
    return {**scaling, **analysed}


def figure_files(config: dict) -> list[tuple[str, str, str | None]]:
    """Every file the figures rule writes for a resolved study config, in order.

    ``(figure name, format, report category)``: the category only for the files the
    report holds (each figure's PNG and the interactive page), None for the other formats
    (they lie beside the PNG). Snakemake declares exactly these as the rule's outputs.
    """
    formats = [REPORTED] + [f for f in config["figures"]["format"] if f != REPORTED]
    files = [
        (name, fmt, category if fmt == REPORTED else None)
        for name, category in study_figures(config["fit"]).items()
        for fmt in formats
    ]
    if config["fit"]["scaling"] and config["figures"]["interactive"]:
        files.append((INTERACTIVE, INTERACTIVE_FORMAT, SCALING))
    return files
