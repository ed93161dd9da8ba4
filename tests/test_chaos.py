"""Chaos: random SIGKILL, SIGTERM and SIGINT at Snakemake and at its jobs, then resume.

The whole tiny study (data, train, collect, fit, figures) is run again and again, each
run hit by one event drawn from a seeded generator (``OPSCALE_CHAOS_SEED``, default 0;
``OPSCALE_CHAOS_EVENTS`` of them, default 20): a signal (SIGKILL, SIGTERM or SIGINT) sent
either to Snakemake's process group (Snakemake and every job it runs, as a dying node, a
``kill -TERM -<pgid>`` or a Ctrl-C would) or to one job process (the python of a rule
script, found from the process tree), at a moment drawn within the first 70% of a stage's
job (as long as that job took in an uninterrupted run; for training, of its training
loop, so that the signal lands among checkpoints), the stages taken in pipeline order
(data 3, train 6, collect 3, fit 4, figures 4 of 20) so that every one is hit. After
each run: every file is checked, a leftover lock is cleared with ``--unlock``, and the
next run resumes with ``--rerun-incomplete``. When a study finishes before the next
event could land, its cube is checked and the event goes to a fresh study. At the end:

- 0 corrupted files: every ``.nc`` under results/ reads with xarray, every checkpoint
  loads with ``torch.load(weights_only=True)`` (checked after every event too);
- 0 member trainings repeated from scratch (criterion below);
- a cube bit-identical to an uninterrupted run's (every variable but ``wall_time``).

Repeated from scratch. Each training attempt (one job in one run) states its starting
step as its loop begins (``training from step N of T`` in its log: 0, or the step of the
checkpoint it resumed from, which the line before names). An attempt repeats trained
work when it starts below the step of the checkpoint its job had on disk when the run
began (from scratch: at step 0, although a checkpoint of the job, or its point file, was
there). Steps trained after the last checkpoint and then SIGKILLed are not saved work: fewer than
``runtime.checkpoint_every`` of them are redone by design. An attempt killed before its
loop began (in its imports) trained nothing and is not counted.

The counts (events by kind, target and stage; files checked; attempts, resumes, repeats)
are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psutil
import pytest
import torch
import xarray as xr

from opscale import cube
from tests import helpers
from tests.helpers import job_processes, tiny_config

pytestmark = pytest.mark.workflow
EVENTS = int(os.environ.get("OPSCALE_CHAOS_EVENTS", "20"))
SEED = int(os.environ.get("OPSCALE_CHAOS_SEED", "0"))
# Long enough training for checkpoints to resume from (one every 100 of 2000 steps), in
# 4 training jobs (one per point: 2 widths x 2 training-set sizes, 2 seeds each), so that
# a signal to one of the 2 running has more of them to land in.
STUDY = tiny_config(
    train={"steps": 2000, "eval_every": 50, "log_every": 50, "lr": 0.003},
    runtime={"checkpoint_every": 100},
)
STAGES = ("data", "train", "collect", "fit", "figures")
# Share of the events per stage (training, where work can be lost, gets the most).
SHARES = {"data": 3, "train": 6, "collect": 3, "fit": 4, "figures": 4}
STAGE_OF = {  # rule script -> stage (page renders fit.md: part of the fit stage)
    "make_data": "data",
    "train": "train",
    "collect": "collect",
    "fit": "fit",
    "page": "fit",
    "figures": "figures",
}
BENCHMARKS = {  # the reference run's benchmark files of each rule script's jobs
    "make_data": "data/*.tsv",
    "train": "train/*.tsv",
    "collect": "collect.tsv",
    "fit": "fit.tsv",
    "page": "page.tsv",
    "figures": "figures.tsv",
}
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
TARGETS = ("snakemake", "job")
LATEST = 0.7  # an event comes within this fraction of its stage's job duration
WAIT = 300  # s: longest a run may take after its event before it counts as hung
NOT_DETERMINISTIC = ("wall_time",)
START = re.compile(r"training from step (\d+) of (\d+)")  # logged as its loop begins
RESUMED = re.compile(r"resumed from \S+ at step (\d+)")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.M)  # a log line's time


@dataclass
class Event:
    stage: str  # the stage aimed at
    kind: str  # SIGKILL, SIGTERM or SIGINT
    target: str  # snakemake (its process group) or job (one job process)
    fraction: float  # when, as a fraction of the duration of the first job of the stage seen
    hit: str = ""  # the stage running when the signal went out ("" if none was sent)


@dataclass
class Tally:
    """What the chaos did and what was checked."""

    events: list[Event] = field(default_factory=list)
    files: Counter = field(default_factory=Counter)  # checks by file type
    corrupted: list[str] = field(default_factory=list)
    unlocks: int = 0
    hung: int = 0
    rounds: int = 1  # studies run from scratch (a new one when one finished before its event)
    attempts: int = 0  # training attempts that began their loop
    resumed: int = 0  # ... of which from a checkpoint
    repeats: list[str] = field(default_factory=list)  # attempts that lost saved work
    members_repeated: int = 0


def plan(rng: np.random.Generator, count: int) -> list[Event]:
    """`count` events, in pipeline order over the stages by SHARES.

    Within a stage, (kind, target) pairs are drawn without replacement from the 6 (then
    again, past 6), so that a stage of 6 events (training, of 20) gets every pair once.
    """
    weights = np.array([SHARES[s] for s in STAGES], float)
    bounds = np.cumsum(weights / weights.sum()) * count
    stages = [STAGES[int(np.searchsorted(bounds, i, side="right"))] for i in range(count)]
    pairs = list(itertools.product(SIGNALS, TARGETS))
    events = []
    for stage in STAGES:
        n = stages.count(stage)
        draws = np.concatenate([rng.permutation(len(pairs)) for _ in range(-(-n // len(pairs)))])
        for k in draws[:n]:
            kind, target = pairs[k]
            events.append(Event(stage, kind, target, float(rng.uniform(0, LATEST))))
    return events


def command(workdir, *args):
    return helpers.snakemake_command(workdir, workdir / "study.yaml", *args)


def run(workdir, *args):
    return helpers.run_ok(command(workdir, *args))


def fresh(tmp_path, name):
    return helpers.study_folder(tmp_path, name, STUDY)


def durations(workdir) -> dict[str, float]:
    """Seconds the longest job of each rule script took (the run's benchmark files), and
    the longest training loop (``train_loop``: from its first line to the log's last)."""
    bench = workdir / "results" / "tiny" / "benchmarks"
    took = {
        script: max(
            float(path.read_text().splitlines()[1].split("\t")[0]) for path in bench.glob(p)
        )
        for script, p in BENCHMARKS.items()
    }
    logs = (workdir / "results" / "tiny" / "logs" / "train").glob("*.log")
    took["train_loop"] = max(1.0, *(_loop_seconds(log.read_text()) for log in logs))
    return took


def _loop_seconds(text: str) -> float:
    began = STAMP.findall(text[: START.search(text).start()])[-1]
    stamps = [
        datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in (began, STAMP.findall(text)[-1])
    ]
    return (stamps[1] - stamps[0]).total_seconds()


def ended(job: psutil.Process) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return not job.is_running() or job.status() == psutil.STATUS_ZOMBIE
    return True


def training_begins(process, job: psutil.Process) -> None:
    """Wait until training job `job` begins its loop (or ends, or the run does)."""
    while process.poll() is None and not ended(job):
        log = helpers.job_log(job)
        if log is not None and START.search(log.read_text()):
            return
        time.sleep(0.02)


def running(pid: int) -> list[tuple[psutil.Process, str]]:
    """The live job processes below Snakemake `pid`, with their rule scripts, in stage order."""
    jobs = []
    for job, script in job_processes(pid):
        with contextlib.suppress(psutil.Error):
            if job.status() != psutil.STATUS_ZOMBIE:
                jobs.append((job, script))
    return sorted(jobs, key=lambda job: STAGES.index(STAGE_OF[job[1]]))


def wait_for_stage(process, stage: str) -> tuple[psutil.Process, str] | None:
    """Wait until a job of `stage` or a later one runs: that job (None: the run ended)."""
    later = set(STAGES[STAGES.index(stage) :])
    while process.poll() is None:
        for job, script in running(process.pid):
            if STAGE_OF[script] in later:
                return job, script
        time.sleep(0.05)
    return None


def strike(process, event: Event, took: dict[str, float]) -> list[psutil.Process]:
    """Send `event`'s signal; sets ``event.hit``. Returns the processes it may have hit.

    Its moment: ``event.fraction`` of the reference duration of the first job of its
    stage (or of a later one, if its stage is done) after that job appears (for a
    training job: of its training loop, after the loop begins, so that it lands among
    checkpoints); or the end of that job, if it ends sooner (a resumed training job is
    shorter), so that the signal goes to what comes right after it, not further on.
    """
    first = wait_for_stage(process, event.stage)
    if first is None:
        return []
    anchor, script = first
    if script == "train":
        training_begins(process, anchor)
        script = "train_loop"
    deadline = time.perf_counter() + event.fraction * took[script]
    while time.perf_counter() < deadline and process.poll() is None and not ended(anchor):
        time.sleep(0.02)
    while process.poll() is None:
        jobs, tree = running(process.pid), _tree(process.pid)
        # a job of the stage aimed at, else of the earliest stage running
        aimed = [job for job in jobs if STAGE_OF[job[1]] == event.stage] or jobs
        if event.target == "job" and not aimed:
            time.sleep(0.02)  # between two jobs: aim at the next one
            continue
        try:
            if event.target == "job":
                aimed[0][0].send_signal(SIGNALS[event.kind])
            else:
                os.killpg(process.pid, SIGNALS[event.kind])
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue  # it ended just now: aim again
        event.hit = STAGE_OF[aimed[0][1]] if aimed else "between jobs"
        if event.target == "snakemake" and event.kind == "SIGKILL":
            for member in tree:  # and anything that left the group, as a dead node would
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
        return tree
    return []


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    return []


def settle(process, tree, tally: Tally) -> None:
    """Wait for the run to end and for every process it had to go; kill a hung one."""
    try:
        process.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        tally.hung += 1
        process.kill()
        process.wait()
    for member in psutil.wait_procs(tree, timeout=30)[1]:  # outlived the run
        tally.hung += 1
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()


def check_files(workdir, tally: Tally) -> None:
    """Every NetCDF file reads with xarray; every checkpoint loads as weights only."""
    results = workdir / "results"
    for path in sorted(results.rglob("*.nc")):
        tally.files["nc"] += 1
        try:
            xr.load_dataset(path)
        except Exception as error:  # any failure to read is a corrupted file
            tally.corrupted.append(f"{path.relative_to(workdir)}: {error!r}")
    for path in sorted(results.rglob("*.pt")):
        tally.files["pt"] += 1
        try:
            torch.load(path, weights_only=True)
        except Exception as error:
            tally.corrupted.append(f"{path.relative_to(workdir)}: {error!r}")


def unlock_if_locked(workdir, tally: Tally) -> None:
    """Clear the lock a killed Snakemake leaves, as docs/resume.md says (``--unlock``)."""
    if any((workdir / ".snakemake" / "locks").glob("*")):
        run(workdir, "--unlock")
        tally.unlocks += 1


def saved_work(workdir) -> dict[str, int]:
    """Per training job (point id): the step its saved work reaches before a run.

    The checkpoint's step; a point file counts as saved at its last step (it is only
    retrained when Snakemake holds it incomplete).
    """
    tiny = workdir / "results" / "tiny"
    saved = {path.stem: STUDY["train"]["steps"] for path in (tiny / "points").glob("*.nc")}
    for path in (tiny / "checkpoints").glob("*.pt"):
        with contextlib.suppress(Exception):  # a corrupted one is counted by check_files
            saved[path.stem] = int(torch.load(path, weights_only=True)["trainer"]["step"])
    return saved


def audit_training(workdir, since_ns: int, saved: dict[str, int], tally: Tally) -> None:
    """Count the training attempts of the run begun at `since_ns` and those that repeat."""
    for log in (workdir / "results" / "tiny" / "logs" / "train").glob("*.log"):
        text = log.read_text()
        begun = START.search(text)
        if log.stat().st_mtime_ns < since_ns or begun is None:
            continue  # not this run's attempt, or it never began training
        start, resumed = int(begun[1]), RESUMED.search(text)
        assert resumed is None or int(resumed[1]) == start, text
        tally.attempts += 1
        tally.resumed += resumed is not None
        if start < saved.get(log.stem, 0):
            tally.repeats.append(f"{log.stem}: started at step {start}, saved {saved[log.stem]}")
            tally.members_repeated += int(re.search(r"(\d+) members", text)[1])


def chaos_run(workdir, event: Event | None, took: dict[str, float], tally: Tally) -> int:
    """One resumed run, hit by `event` (None: left to finish), then checked; its status."""
    saved, since = saved_work(workdir), time.time_ns()
    args = ("--rerun-incomplete",)
    if event is None:
        returncode = run(workdir, *args).returncode
    else:
        process = subprocess.Popen(
            command(workdir, *args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        settle(process, strike(process, event, took), tally)
        returncode = process.returncode
    audit_training(workdir, since, saved, tally)
    check_files(workdir, tally)
    unlock_if_locked(workdir, tally)
    return returncode


def finish(workdir, reference, tally: Tally) -> None:
    """Resume a study to its end: nothing left incomplete, its cube the reference's."""
    chaos_run(workdir, None, {}, tally)
    assert not incomplete_outputs(workdir)
    ours, theirs = (cube.read(d / "results" / "tiny" / "cube.nc") for d in (workdir, reference))
    strip = {"opscale_version": "", "git_commit": ""}
    assert (
        ours.drop_vars(NOT_DETERMINISTIC)
        .assign_attrs(**strip)
        .identical(theirs.drop_vars(NOT_DETERMINISTIC).assign_attrs(**strip))
    ), f"{workdir}: the cube differs from an uninterrupted run's"


def incomplete_outputs(workdir) -> list[str]:
    markers = workdir / ".snakemake" / "incomplete"
    return [base64.urlsafe_b64decode(p.name).decode() for p in markers.glob("*") if p.is_file()]


def report(tally: Tally) -> str:
    hit = [e for e in tally.events if e.hit]
    by = Counter((e.kind, e.target) for e in hit)
    stages = Counter(e.hit for e in hit)
    lines = [
        f"chaos (seed {SEED}): {len(hit)} events",
        "  by kind and target: "
        + ", ".join(f"{k} -> {t}: {by[k, t]}" for k in SIGNALS for t in TARGETS),
        "  by stage hit: " + ", ".join(f"{s}: {n}" for s, n in stages.most_common()),
        f"  studies run: {tally.rounds}; unlocks needed: {tally.unlocks}; "
        f"hung processes: {tally.hung}",
        f"  files checked: {sum(tally.files.values())} ({tally.files['nc']} .nc, "
        f"{tally.files['pt']} checkpoints); corrupted: {len(tally.corrupted)}",
        f"  training attempts: {tally.attempts}, resumed from a checkpoint: {tally.resumed}; "
        f"repeated from scratch or behind a checkpoint: {len(tally.repeats)} attempts, "
        f"{tally.members_repeated} members",
    ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the whole study."""
    workdir = fresh(tmp_path_factory.mktemp("chaos"), "reference")
    run(workdir)
    return workdir


def test_random_signals_over_every_stage_lose_nothing(reference, tmp_path):
    took = durations(reference)
    tally = Tally(events=plan(np.random.default_rng(SEED), EVENTS))
    started = time.perf_counter()
    workdir, reached = fresh(tmp_path, "round1"), 0
    for event in tally.events:
        if STAGES.index(event.stage) < reached:  # its stage is done here: a new study
            finish(workdir, reference, tally)
            tally.rounds += 1
            workdir, reached = fresh(tmp_path, f"round{tally.rounds}"), 0
        while chaos_run(workdir, event, took, tally) == 0 and not event.hit:
            # the study finished before the event came: check it, and start a new one
            assert tally.rounds <= len(tally.events), "events keep coming after the end"
            finish(workdir, reference, tally)
            tally.rounds += 1
            workdir, reached = fresh(tmp_path, f"round{tally.rounds}"), 0
        assert event.hit, f"the run ended by itself, with an error, before {event}"
        if event.hit in STAGES:
            reached = max(reached, STAGES.index(event.hit))
    finish(workdir, reference, tally)
    print(f"\n{report(tally)}\n  wall time: {time.perf_counter() - started:.0f} s")
    for event in tally.events:
        print(f"    aimed at {event.stage:8} {event.kind:8} -> {event.target:10} hit {event.hit}")
    assert not tally.corrupted, tally.corrupted
    assert not tally.repeats, tally.repeats
    assert tally.hung == 0
    assert set(STAGES) <= {e.hit for e in tally.events}, "a stage was never hit"
