"""Every path under ``results/<study>/``: the one place that spells them.

A study's folder, relative to the working directory of the Snakemake run
(``--directory``)::

    results/<study>/
        data/<data_id>.nc              input functions and solutions (rule data)
        points/<point_id>.nc           one trained job: all its members (rule train)
        checkpoints/<point_id>.pt      a training job's last checkpoint (resume after a kill),
                                       kept until collect has read its point file
        heartbeats/<point_id>.json     a running training job's pid, host and step
                                       (opscale.progress; read by opscale status)
        cube.nc                        the study cube (rule collect)
        fit.nc, fit.md                 fitted exponents, as NetCDF and as a table (rule fit)
        exponents.csv                  every law's parameters, one tidy row each (rule fit)
        fit.html, landing.rst          fit.md as the report's page, the report's landing text
                                       (rule page)
        figures/<name>.png             the figures of the report (rule figures), and
        figures/<name>.pdf, .svg       in the other formats of figures.format;
        figures/scaling_interactive.html  the scaling figures, interactive
        logs/<rule>.log                the log of a one-job rule (collect, fit, figures)
        logs/<rule>/<wildcard>.log     the log of each job of a rule (data, train)
        benchmarks/<rule>.tsv          Snakemake's timing of a job, named like its log
        benchmarks/<rule>/<wildcard>.tsv

Paths are strings with ``/``, exactly as Snakemake names the files (``--forcerun``
and its other options take these strings). Give a method a wildcard (``POINT``,
``DATA_ID``) instead of an id and it returns the rule's pattern. Standard library only:
the Snakefile imports this module while it parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = "results"  # the folder of every study's folder

# The rules' wildcards: a path of a wildcard is the pattern of the rule that makes it.
POINT = "{point}"
DATA_ID = "{data_id}"


@dataclass(frozen=True)
class StudyLayout:
    """The files of one study, relative to the run's working directory.

    Parameters
    ----------
    study : str
        The study's name (``study:`` of its config).
    root : str
        The folder holding every study's folder.
    """

    study: str
    root: str = ROOT

    @property
    def study_dir(self) -> str:
        """The study's folder, ``results/<study>``."""
        return f"{self.root}/{self.study}"

    def data_file(self, data_id: str) -> str:
        """The data file `data_id` (``DATA_ID`` for the pattern)."""
        return f"{self.study_dir}/data/{data_id}.nc"

    @property
    def points_dir(self) -> str:
        """The folder of the point files: every trained job of the study."""
        return f"{self.study_dir}/points"

    def point_file(self, point_id: str) -> str:
        """The point file of grid point `point_id` (``POINT`` for the pattern)."""
        return f"{self.points_dir}/{point_id}.nc"

    def remove_checkpoints(self, point_paths) -> int:
        """Delete the checkpoints of the point files `point_paths` (once collect has read
        them: until then a finished job's checkpoint lets its rerun skip training)."""
        removed = 0
        for path in point_paths:
            checkpoint = Path(self.checkpoint(Path(path).stem))
            if checkpoint.exists():
                checkpoint.unlink()
                removed += 1
        return removed

    def checkpoint(self, point_id: str) -> str:
        """The training checkpoint of grid point `point_id` (``POINT`` for the pattern)."""
        return f"{self.study_dir}/checkpoints/{point_id}.pt"

    def heartbeat(self, point_id: str) -> str:
        """The heartbeat of grid point `point_id`'s training job (``POINT`` for the pattern)."""
        return f"{self.study_dir}/heartbeats/{point_id}.json"

    def train_log(self, point_id: str) -> str:
        """The training log of grid point `point_id` (``POINT`` for the pattern)."""
        return self.log("train", point_id)

    @property
    def cube(self) -> str:
        """The study cube."""
        return f"{self.study_dir}/cube.nc"

    @property
    def fit(self) -> str:
        """The fit tables (NetCDF)."""
        return f"{self.study_dir}/fit.nc"

    @property
    def fit_table(self) -> str:
        """The fit as Markdown tables."""
        return f"{self.study_dir}/fit.md"

    @property
    def exponents(self) -> str:
        """The tidy table of every fitted law's parameters (CSV)."""
        return f"{self.study_dir}/exponents.csv"

    @property
    def fit_page(self) -> str:
        """fit.md as an HTML page: the study's page in the report."""
        return f"{self.study_dir}/fit.html"

    @property
    def landing(self) -> str:
        """The report's landing text for the fitted study (reStructuredText)."""
        return f"{self.study_dir}/landing.rst"

    def figure(self, name: str, fmt: str = "png") -> str:
        """The figure `name` in format `fmt` (png, pdf, svg; html: an interactive page)."""
        return f"{self.study_dir}/figures/{name}.{fmt}"

    def log(self, rule: str, wildcard: str | None = None) -> str:
        """The log of rule `rule`'s job; one per `wildcard` value for rules with one."""
        return f"{self.study_dir}/logs/{_job_name(rule, wildcard)}.log"

    def benchmark(self, rule: str, wildcard: str | None = None) -> str:
        """Snakemake's benchmark (a TSV of timings) of a job, named like its log."""
        return f"{self.study_dir}/benchmarks/{_job_name(rule, wildcard)}.tsv"


def _job_name(rule: str, wildcard: str | None) -> str:
    # a rule of many jobs gets a folder of its own, one file per job
    return rule if wildcard is None else f"{rule}/{wildcard}"
