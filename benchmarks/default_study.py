"""Time the default study end to end at several git revisions (before/after comparisons).

Each revision is checked out into a temporary git worktree and runs the default study
(``config/config.yaml`` of that revision) from an empty working directory, with this
checkout's virtual environment and that revision's package on PYTHONPATH. Reported: wall
time of the whole ``snakemake`` run (data, training, collect, fit, figures; no report),
the sum of the training jobs' own wall times (from their ``benchmark:`` files) and the
number of jobs. Rounds alternate the revisions, so a change in the machine's load hits
both alike.

    python benchmarks/default_study.py 3e61cd7 HEAD            # one round
    python benchmarks/default_study.py 3e61cd7 HEAD --rounds 2

Appends a Markdown table to benchmarks/RESULTS.md (``--no-append`` to skip).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import publish  # benchmarks/results_file.py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def checkout(rev: str, root: Path) -> Path:
    """A worktree of `rev` under `root` (removed by ``cleanup``)."""
    path = root / f"rev-{rev}"
    git = ["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(path), rev]
    subprocess.run(git, check=True, capture_output=True)
    return path


def cleanup(path: Path) -> None:
    git = ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)]
    subprocess.run(git, check=False, capture_output=True)


def run_study(tree: Path, cores: int) -> dict:
    """Run the default study of `tree` in a fresh working directory; its timings."""
    with tempfile.TemporaryDirectory(prefix="opscale-default-") as workdir:
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        cmd = [str(SNAKEMAKE), "-s", str(tree / "Snakefile"), "-d", workdir]
        cmd += ["--cores", str(cores), "--configfile", str(tree / "config" / "config.yaml")]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        wall = time.perf_counter() - start
        jobs = list(Path(workdir).glob("results/*/benchmarks/train/*.tsv"))
        return {"wall": wall, "train_jobs": len(jobs), "train_seconds": sum(map(_seconds, jobs))}


def _seconds(tsv: Path) -> float:
    with open(tsv) as fh:
        return float(next(csv.DictReader(fh, delimiter="\t"))["s"])


def report(revs: dict[str, str], runs: dict[str, list[dict]], args) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"## Default study end to end, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} logical CPUs, `--cores {args.cores}`; load average at the "
        f"end {load}. Command: `python benchmarks/default_study.py {' '.join(args.revs)} "
        f"--rounds {args.rounds}`.",
        "",
        "| revision | wall time (s), median (all) | training jobs | sum of job times (s) |",
        "|---|---|---|---|",
    ]
    for rev, commit in revs.items():
        walls = [r["wall"] for r in runs[rev]]
        lines.append(
            f"| {rev} ({commit}) | {statistics.median(walls):.0f} "
            f"({', '.join(f'{w:.0f}' for w in walls)}) | {runs[rev][0]['train_jobs']} | "
            f"{statistics.median(r['train_seconds'] for r in runs[rev]):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revs", nargs="+", help="git revisions to compare")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    revs = {
        rev: subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", rev],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for rev in args.revs
    }
    runs = {rev: [] for rev in revs}
    with tempfile.TemporaryDirectory(prefix="opscale-revs-") as root:
        trees = {rev: checkout(rev, Path(root)) for rev in revs}
        try:
            for round_ in range(args.rounds):
                for rev in revs if round_ % 2 == 0 else reversed(revs):
                    runs[rev].append(run_study(trees[rev], args.cores))
                    print(f"round {round_ + 1}: {rev} {runs[rev][-1]}", flush=True)
        finally:
            for tree in trees.values():
                cleanup(tree)
    text = report(revs, runs, args)
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
