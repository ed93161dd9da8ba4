"""Command line: ``opscale <command> ...``, the package's work outside Snakemake.

Commands are a registry (``COMMANDS``): name -> (help, function adding its arguments,
function running it). Each runner imports what it needs, so ``opscale --help`` is instant.

    opscale fit results/default/cube.nc      # fit any cube; writes fit.nc, fit.md beside it
    opscale status [--study NAME | --config FILE]   # where each study's points stand
    opscale collect --config FILE            # the cube of the points that exist (--keep-going)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "cube", type=Path, help="a study cube (NetCDF), e.g. results/default/cube.nc"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for fit.nc and fit.md (default: the cube's folder)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=None, help="bootstrap resamples (default: the study's)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the bootstrap stream")
    parser.add_argument(
        "--response",
        choices=["test_rel_l2", "val_rel_l2", "train_rel_l2"],
        default=None,
        help="error to fit (default: the study's, test_rel_l2)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes fitting groups in parallel (default: one per CPU)",
    )


def _fit(args: argparse.Namespace) -> int:
    from opscale.fit import fit_cube

    if not args.cube.is_file():
        print(f"opscale fit: no such cube: {args.cube}", file=sys.stderr)
        return 2
    out = args.out or args.cube.parent
    out.mkdir(parents=True, exist_ok=True)
    settings = {"bootstrap": args.bootstrap, "seed": args.seed, "response": args.response}
    fit_cube(str(args.cube), str(out / "fit.nc"), str(out / "fit.md"), settings, args.workers)
    print((out / "fit.md").read_text(), end="")
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


COMMANDS = {  # name: (help, add arguments, run)
    "fit": ("fit scaling laws to a study cube and print the table", _fit_arguments, _fit),
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
}


def parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per registered command."""
    top = argparse.ArgumentParser(prog="opscale", description=__doc__.split("\n")[0])
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
