# Config validation (once, at parse time), the grid, and the input functions of the rules.
import yaml
from snakemake.utils import update_config

from opscale import grid, resources
from opscale.config import read_yaml, validate_study
from opscale.figures import study_figures
from opscale.layout import DATA_ID, POINT, StudyLayout
from opscale.problems.registry import problem_files


def typed_config_overrides(args):
    """`--config KEY=VALUE` entries, each VALUE read as YAML (as a study file would be).

    Snakemake types a top-level value only: in `seeds=[0]` or `train={steps: 10}` every
    inner value stays a string. A VALUE that is not YAML stays as Snakemake read it.
    """
    overrides = {}
    for arg in args or []:
        key, _, value = arg.partition("=")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    return overrides


# Snakemake read the study files itself, keeping the last of duplicate keys: refuse them.
for configfile_path in workflow.configfiles:
    read_yaml(configfile_path)
# --config was merged last (over the study file): merge it again, typed.
CONFIG_ARGS = workflow.config_settings.config_args or []
update_config(config, typed_config_overrides(CONFIG_ARGS))
validate_study(
    config,
    source=", ".join(
        [*map(str, workflow.configfiles), *(f"--config {a}" for a in CONFIG_ARGS)]
    )
    or "config",
)

LAYOUT = StudyLayout(config["study"])  # every path the rules write
POINTS = {point.id: point for point in grid.points(config)}
# Pre-flight: each training job's memory and time (the train rule's resources); a job that
# cannot fit runtime.max_memory (default: this machine's) is refused before anything runs.
ESTIMATES = {point_id: resources.estimate(p.spec) for point_id, p in POINTS.items()}
resources.check(config, ESTIMATES, ", ".join(map(str, workflow.configfiles)))
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


def get_train_mem_mb(wildcards):
    """Memory (MB) of the point's training job: its estimate, with margin."""
    return ESTIMATES[wildcards.point].request_mb


def get_train_runtime(wildcards):
    """Wall-time limit (minutes) of the point's training job: its estimate, with margin."""
    return ESTIMATES[wildcards.point].runtime_min


def get_point_files(wildcards):
    """Every point file of the study."""
    return [LAYOUT.point_file(point) for point in POINTS]
