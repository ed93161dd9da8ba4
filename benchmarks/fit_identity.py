"""Fit one cube with two revisions of opscale and compare fit.nc and fit.md.

    python benchmarks/fit_identity.py results/default/cube.nc 1af1613 HEAD

Each revision is checked out into a temporary git worktree and runs its own
``opscale.fit.fit_cube`` on the same cube (the settings stored in the cube, 2 workers, as
the fit rule runs it), with this environment's packages. fit.md must be byte-identical;
fit.nc must hold identical variables, coordinates and attributes (``xarray``'s
``identical``), except the provenance attributes ``opscale_version`` and ``git_commit``.
Exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import xarray as xr

REPO = Path(__file__).resolve().parents[1]
PROVENANCE = ("opscale_version", "git_commit")
FIT = "from opscale.fit import fit_cube; import sys; fit_cube(*sys.argv[1:4], workers=2)"


def fit_with(revision: str, cube: Path, out: Path) -> tuple[Path, Path]:
    """fit.nc and fit.md of `cube` made by opscale at `revision` (in a temporary worktree)."""
    tree = out / f"tree-{revision}"
    add = ["git", "worktree", "add", "--detach", str(tree), revision]
    subprocess.run(add, cwd=REPO, check=True)
    try:
        return fit_in(tree, cube, out, revision)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=True)


def fit_in(tree: Path, cube: Path, out: Path, name: str) -> tuple[Path, Path]:
    """fit.nc and fit.md (``out/<name>.nc``, ``.md``) of `cube` by the opscale of `tree`."""
    fit_nc, fit_md = out / f"{name}.nc", out / f"{name}.md"
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    command = [sys.executable, "-c", FIT, str(cube), str(fit_nc), str(fit_md)]
    subprocess.run(command, cwd=tree, env=env, check=True)
    return fit_nc, fit_md


def without_provenance(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    for name in PROVENANCE:
        ds.attrs.pop(name, None)
    return ds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cube", type=Path, help="a study cube, e.g. results/default/cube.nc")
    parser.add_argument("before", help="git revision, e.g. 1af1613")
    parser.add_argument("after", help="git revision, e.g. HEAD")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (nc_a, md_a), (nc_b, md_b) = (
            fit_with(rev, args.cube.resolve(), Path(tmp)) for rev in (args.before, args.after)
        )
        same_md = md_a.read_bytes() == md_b.read_bytes()
        same_nc = without_provenance(nc_a).identical(without_provenance(nc_b))
    print(f"fit.md byte-identical: {same_md}")
    print(f"fit.nc identical (except {', '.join(PROVENANCE)}): {same_nc}")
    return 0 if same_md and same_nc else 1


if __name__ == "__main__":
    sys.exit(main())
