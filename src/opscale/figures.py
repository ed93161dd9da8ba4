"""Every figure a study draws, by name: the scaling figures and its analyses' (a registry).

Import-light (no matplotlib): Snakemake reads it at parse time for the outputs of the
``figures`` rule and their report categories. ``opscale.plots`` draws the scaling
figures (one function per name) and each analysis module draws its own; the tests check
that every registered figure has a drawing function and a caption
``workflow/report/<name>.rst``.
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
