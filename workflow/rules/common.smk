# Config validation (once, at parse time), the grid, and the input functions of the rules.
from opscale import grid
from opscale.config import validate_study
from opscale.figures import study_figures
from opscale.layout import DATA_ID, POINT, StudyLayout
from opscale.problems.registry import problem_files

validate_study(config, source=", ".join(map(str, workflow.configfiles)) or "config")

LAYOUT = StudyLayout(config["study"])  # every path the rules write
POINTS = {point.id: point for point in grid.points(config)}
DATA = grid.data_specs(config)
# figure name -> report category: the scaling figures (unless fit.scaling is off), then
# those of the study's analyses (the registry: opscale.figures)
FIGURES = study_figures(config["fit"])


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


def get_problem_files(wildcards):
    """Files the data file `data_id` is built from: editing one rebuilds the data."""
    return problem_files(DATA[wildcards.data_id]["problem"])


def get_point_files(wildcards):
    """Every point file of the study."""
    return [LAYOUT.point_file(point) for point in POINTS]
