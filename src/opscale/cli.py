"""Command line: ``opscale <command> ...``, the package's work outside Snakemake.

Commands are a registry (``COMMANDS``): name -> (help, function adding its arguments,
function running it). Each runner imports what it needs, so ``opscale --help`` is instant.

    opscale fit results/default/cube.nc      # fit a cube; writes fit.nc, fit.md beside it
    opscale fit runs.csv --size N --data n --error loss [--seed seed] --out fits/
                                             # fit any long-format table of runs
    opscale status [--study NAME | --config FILE]   # where each study's points stand
    opscale collect --config FILE            # the cube of the points that exist (--keep-going)
    opscale compare results/a results/b      # two studies' exponents and their difference
    opscale compare results/budget --groups steps=2000 steps=4000   # two groups of one study
    opscale export results/a --format csv    # the cube and every fit table as CSV/Parquet
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        type=Path,
        help="a study cube (NetCDF), or a long-format table (CSV, Parquet, NetCDF) of runs "
        "with --size, --data and --error",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for fit.nc, fit.md and exponents.csv (default: the input's folder)",
    )
    table = parser.add_argument_group("a long-format table (one row per run)")
    table.add_argument("--size", help="column of the model size N")
    table.add_argument("--data", help="column of the data size n")
    table.add_argument("--error", help="column of the error (any positive error or loss)")
    table.add_argument("--seed", help="column of the seed (default: every run independent)")
    table.add_argument(
        "--group", action="append", default=[], help="column fitted apart (repeatable)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=None, help="bootstrap resamples (default: the study's)"
    )
    parser.add_argument(
        "--bootstrap-seed", type=int, default=None, help="seed of the bootstrap stream"
    )
    parser.add_argument(
        "--response",
        choices=["test_rel_l2", "val_rel_l2", "train_rel_l2"],
        default=None,
        help="error of a cube to fit (default: the study's, test_rel_l2)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes fitting groups in parallel (default: one per CPU)",
    )


TABLE_COLUMNS = ("size", "data", "error")


def _fit(args: argparse.Namespace) -> int:
    from opscale.fit import fit_cube, fit_table, write_fit
    from opscale.tables import read_runs

    if not args.input.is_file():
        print(f"opscale fit: no such file: {args.input}", file=sys.stderr)
        return 2
    named = [c for c in TABLE_COLUMNS if getattr(args, c)]
    if named and len(named) < len(TABLE_COLUMNS):
        lacking = ", ".join(f"--{c}" for c in TABLE_COLUMNS if c not in named)
        print(
            f"opscale fit: a table needs --size, --data and --error; missing {lacking}",
            file=sys.stderr,
        )
        return 2
    out = args.out or args.input.parent
    out.mkdir(parents=True, exist_ok=True)
    settings = {"bootstrap": args.bootstrap, "seed": args.bootstrap_seed}
    paths = (out / "fit.nc", out / "fit.md", out / "exponents.csv")
    if named:
        settings = {k: v for k, v in settings.items() if v is not None}
        columns = {c: getattr(args, c) for c in TABLE_COLUMNS}
        try:
            runs = read_runs(args.input)
            fits = fit_table(
                runs,
                **columns,
                seed=args.seed,
                groups=tuple(args.group),
                workers=args.workers,
                name=args.input.stem,
                **settings,
            )
        except (KeyError, ValueError, ImportError) as error:  # ImportError: no pyarrow
            print(f"opscale fit: {args.input}: {error}", file=sys.stderr)
            return 2
        write_fit(fits, *paths)
    else:
        settings["response"] = args.response
        fit_cube(str(args.input), str(paths[0]), str(paths[1]), settings, args.workers, paths[2])
    print(paths[1].read_text(), end="")
    return 0


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    from opscale.status import add_status_arguments

    add_status_arguments(parser)


def _collect_arguments(parser: argparse.ArgumentParser) -> None:
    from opscale.status import add_arguments

    add_arguments(parser)


def _status(args: argparse.Namespace) -> int:
    from opscale.status import run_status

    return run_status(args)


def _collect(args: argparse.Namespace) -> int:
    from opscale.status import run_collect

    return run_collect(args)


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="study A: its results folder, or a fit.nc")
    parser.add_argument(
        "b", type=Path, nargs="?", default=None, help="study B (default: A, with --groups)"
    )
    parser.add_argument(
        "--groups",
        nargs=2,
        metavar=("G_A", "G_B"),
        default=None,
        help="compare group G_A of A with group G_B of B (e.g. two budgets of one study)",
    )


def _compare(args: argparse.Namespace) -> int:
    from opscale.compare import MissingFile, compare_text

    if args.b is None and args.groups is None:
        print("opscale compare: give study B, or --groups G_A G_B within A", file=sys.stderr)
        return 2
    try:
        b = args.a if args.b is None else args.b
        print(compare_text(args.a, b, tuple(args.groups) if args.groups else None), end="")
    except (MissingFile, ValueError) as error:
        print(f"opscale compare: {error}", file=sys.stderr)
        return 2
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dir", type=Path, help="a study's results folder (results/<study>)")
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv", dest="fmt")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder of the files (default: the study's)"
    )


def _export(args: argparse.Namespace) -> int:
    from opscale.compare import MissingFile, export

    try:
        written, absent = export(args.study_dir, args.fmt, args.out)
    except MissingFile as error:
        print(f"opscale export: {error}", file=sys.stderr)
        return 2
    except ImportError:
        print(
            "opscale export: Parquet needs pyarrow: pip install 'opscale[parquet]' "
            "(or use --format csv)",
            file=sys.stderr,
        )
        return 2
    for path in absent:
        print(f"opscale export: no {path}: skipped", file=sys.stderr)
    for path in written:
        print(path)
    return 0


COMMANDS = {  # name: (help, add arguments, run)
    "fit": ("fit scaling laws to a study cube or a table of runs", _fit_arguments, _fit),
    "status": (
        "points done / diverged / failed / missing of each study, with their paths",
        _status_arguments,
        _status,
    ),
    "collect": (
        "write a study's cube from the point files that exist (the rest marked missing)",
        _collect_arguments,
        _collect,
    ),
    "compare": (
        "two studies' exponents side by side, with their difference and an interval",
        _compare_arguments,
        _compare,
    ),
    "export": (
        "a study's cube (one row per model) and every fit table as CSV or Parquet",
        _export_arguments,
        _export,
    ),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per registered command."""
    from opscale import __version__  # the installed distribution's (importlib.metadata)

    top = argparse.ArgumentParser(prog="opscale", description=__doc__.split("\n")[0])
    top.add_argument("--version", action="version", version=f"opscale {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="command")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``opscale`` script."""
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
