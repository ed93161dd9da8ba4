# Config validation (once, at parse time), the grid, and the input functions of the rules.
from opscale import grid
from opscale.analyses import figures as analysis_figures
from opscale.config import validate_study
from opscale.layout import DATA_ID, POINT, StudyLayout

validate_study(config, source=", ".join(map(str, workflow.configfiles)) or "config")

LAYOUT = StudyLayout(config["study"])  # every path the rules write
POINTS = {point.id: point for point in grid.points(config)}
DATA = grid.data_specs(config)
SCALING_FIGURES = (
    "error_vs_n_train",
    "error_vs_n_params",
    "error_heatmap",
    "fit_curves",
    "fit_residuals",
    "exponent_vs_dimension",
    "compute_frontier",
)
# figure name -> report category: the scaling figures (unless fit.scaling is off), then
# those of the study's analyses
FIGURES = {
    **(
        {name: "Scaling" for name in SCALING_FIGURES}
        if config["fit"]["scaling"]
        else {}
    ),
    **analysis_figures(config["fit"]["analyses"]),
}


wildcard_constraints:
    point=r"[A-Za-z0-9._-]+",
    data_id=r"[A-Za-z0-9._-]+",


def get_point_spec(wildcards):
    """Resolved parameters (problem, data, model, train, seeds) of a grid point."""
    return POINTS[wildcards.point].spec


def get_point_coords(wildcards):
    """The point's value on every swept axis."""
    return POINTS[wildcards.point].coords


def get_data_file(wildcards):
    """The data file a grid point trains on."""
    return LAYOUT.data_file(POINTS[wildcards.point].data_id)


def _dataset_files(problem):
    # a heavy import (xarray, scipy), paid only by studies that read a dataset
    from opscale.problems.datasets import files

    return [str(path) for path in files(problem).values()]


# Files a problem's data are read from, by problem.name (generated problems read none).
PROBLEM_FILES = {"dataset": _dataset_files}


def get_problem_files(wildcards):
    """Files the data file `data_id` is built from: editing one rebuilds the data."""
    problem = DATA[wildcards.data_id]["problem"]
    return PROBLEM_FILES.get(problem["name"], lambda problem: [])(problem)


def get_point_files(wildcards):
    """Every point file of the study."""
    return [LAYOUT.point_file(point) for point in POINTS]
