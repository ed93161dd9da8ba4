"""Where a study stands, from the files on disk: every grid point is in one state.

========  ===================================================================================
state     definition (checked in this order)
========  ===================================================================================
running   its training job's heartbeat (``opscale.progress``) is fresh and, when written on
          this machine, its process is alive; shown with its step, total and ETA
done      its point file reads as a point file and every member's status is ``ok``
diverged  its point file reads, and at least one member's status is ``diverged``
failed    its point file exists but cannot be read (truncated, corrupt, not a point file);
          or there is none and its job's heartbeat is left behind: the job raised or was
          stopped (it wrote why), its process is gone (killed), or the heartbeat is stale
          (``STALE`` seconds: a dead node); or there is none and its training log records
          a failure (``job failed``, written by ``opscale.jobs``)
missing   no point file and no trace of an attempt: not trained yet (or killed within
          its first seconds, before its heartbeat's first write)
========  ===================================================================================

The ETA of a running job is its remaining steps at its own rate since its step loop
began (the heartbeat's), not a guess from other jobs' benchmark files: the jobs of a
sweep differ in size by orders of magnitude. Paths are relative to the working
directory of the Snakemake run (``--directory``), where ``results/<study>/`` (see
``opscale.layout``) lives; nothing of Snakemake's own (``.snakemake/``) is read.
Reading never changes a file.
``partial_cube`` builds the cube of the points that exist (``opscale collect``), the way
to get a cube after ``snakemake --keep-going`` left some points failed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from opscale import grid, progress
from opscale.layout import ROOT, StudyLayout

STATES = ("done", "running", "diverged", "failed", "missing")
UNFINISHED = ("running", "failed", "missing")
FAILURE_MARK = "job failed"  # what opscale.jobs logs when a rule's work raises


@dataclass(frozen=True)
class PointState:
    """One grid point: its id, state, point file and why it is in that state."""

    point: str
    state: str
    path: Path
    reason: str = ""


def study_status(config: dict, workdir: str | os.PathLike = ".") -> list[PointState]:
    """The state of every grid point of a validated study config, in grid order."""
    workdir = Path(workdir)
    return [point_state(config, p.id, workdir) for p in grid.points(config)]


def point_state(config: dict, point: str, workdir: Path) -> PointState:
    """The state of one grid point (see the module's table for the definitions)."""
    from opscale import cube

    layout = StudyLayout(config["study"])
    path = Path(layout.point_file(point))
    beat = progress.read_heartbeat(workdir / layout.heartbeat(point))
    running, why = progress.judge(beat) if beat is not None else (False, "")
    if running:
        return PointState(point, "running", path, why)
    if (workdir / path).exists():
        try:
            ds = cube.read_point(workdir / path)
        except cube.PointFileError as error:
            return PointState(point, "failed", path, next(iter(error.bad.values())))
        diverged = int((ds["status"] == cube.DIVERGED).sum())
        if diverged:
            return PointState(point, "diverged", path, f"{diverged} of {ds.sizes['member']}")
        return PointState(point, "done", path)
    log = Path(layout.train_log(point))
    if (workdir / log).is_file() and FAILURE_MARK in (workdir / log).read_text(errors="replace"):
        return PointState(point, "failed", path, f"see {log}" + (f": {why}" if why else ""))
    if beat is not None:
        return PointState(point, "failed", path, why)
    return PointState(point, "missing", path)


def summary(config: dict, states: list[PointState], show_done: bool = False) -> str:
    """A few lines for people: counts by state, then every point (not done) with its path."""
    counts = Counter(s.state for s in states)
    head = ", ".join(f"{counts[state]} {state}" for state in STATES)
    folder = StudyLayout(config["study"]).study_dir
    lines = [f"study {config['study']} ({folder}): {len(states)} points: {head}"]
    for state in STATES if show_done else [s for s in STATES if s != "done"]:
        lines += [_line(s) for s in states if s.state == state]
    return "\n".join(lines)


def _line(state: PointState) -> str:
    reason = f"  ({state.reason})" if state.reason else ""
    return f"  {state.state:<8} {state.path}{reason}"


def partial_cube(config: dict, workdir: str | os.PathLike = ".") -> tuple[Path, list[PointState]]:
    """Write the study cube from the point files that read, the others marked ``missing``.

    Returns
    -------
    path : Path
        The cube written, ``results/<study>/cube.nc`` under `workdir`.
    absent : list of PointState
        The points left out (running, failed or missing).
    """
    from opscale import cube

    workdir = Path(workdir)
    states = study_status(config, workdir)
    readable = [str(workdir / s.path) for s in states if s.state in ("done", "diverged")]
    out = workdir / StudyLayout(config["study"]).cube
    cube.collect_cube(readable, config, str(out))
    return out, [s for s in states if s.state in UNFINISHED]


# The command line (``opscale status``, ``opscale collect``; registered in opscale.cli).


def add_arguments(parser) -> None:
    """``--config FILE | --study NAME`` and ``--directory DIR`` of both commands."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", type=Path, help="a study file, e.g. config/studies/X.yaml")
    which.add_argument("--study", help="a study by name, found in config/ and config/studies/")
    parser.add_argument(
        "--directory",
        "-d",
        type=Path,
        default=Path("."),
        help="the run's working directory, holding results/ (default: .)",
    )


def add_status_arguments(parser) -> None:
    """The arguments of ``opscale status``: those of ``add_arguments`` and ``--all``."""
    add_arguments(parser)
    parser.add_argument("--all", action="store_true", help="list the done points too")


def study_configs(args) -> list[dict]:
    """The validated configs the arguments select.

    ``--config FILE``: that study; ``--study NAME``: the known study of that name (see
    ``known_study_files``); neither: every known study that has a ``results/<study>/``
    folder in the working directory.
    """
    from opscale.config import ConfigError, load

    try:
        if args.config is not None:
            return [load(args.config)]
        configs = [load(path) for path in known_study_files(args.directory)]
    except ConfigError as error:
        raise SystemExit(f"opscale: {error}") from None
    names = ", ".join(sorted({c["study"] for c in configs})) or "none"
    if args.study is None:
        chosen = [c for c in configs if _has_results(args.directory, c)]
        what = f"no study has results in {args.directory / ROOT}"
    else:
        chosen = [c for c in configs if c["study"] == args.study]
        what = f"no study named {args.study!r}"
    if not chosen:
        raise SystemExit(f"opscale: {what}; known studies: {names}")
    return chosen


def _has_results(workdir: Path, config: dict) -> bool:
    return (workdir / StudyLayout(config["study"]).study_dir).is_dir()


def known_study_files(workdir: Path) -> list[Path]:
    """config/config.yaml and config/studies/*.yaml of `workdir`, else of this checkout.

    An installed package (no checkout) knows its default study (package data).
    """
    from opscale.config import DEFAULT_CONFIG, REPO_ROOT

    for root in dict.fromkeys([workdir.resolve(), REPO_ROOT]):
        files = sorted((root / "config" / "studies").glob("*.yaml"))
        if (root / "config" / "config.yaml").is_file():
            files.insert(0, root / "config" / "config.yaml")
        if files:
            return files
    return [DEFAULT_CONFIG]


def run_status(args) -> int:
    """Print where each selected study stands; exit 1 while any point is not done/diverged."""
    unfinished = 0
    for config in study_configs(args):
        states = study_status(config, args.directory)
        print(summary(config, states, show_done=args.all))
        unfinished += sum(s.state in UNFINISHED for s in states)
    return 1 if unfinished else 0


def run_collect(args) -> int:
    """Write the cube of each selected study from the points that exist; list the others."""
    for config in study_configs(args):
        path, absent = partial_cube(config, args.directory)
        print(f"wrote {path}: {len(absent)} point(s) marked missing")
        print("\n".join(_line(s) for s in absent))
    return 0
