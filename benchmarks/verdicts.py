"""Which verdicts changed: fit the same cubes with an earlier revision and with this tree.

    python benchmarks/verdicts.py 1af1613 results/*/cube.nc [--old-fits DIR] > verdicts.md

For every cube, the earlier revision's ``fit_cube`` (in a temporary git worktree, as
``fit_identity.py`` runs it) fits the cube with the settings it stores (those the revision
knows), kept as ``DIR/<study>.nc`` with ``--old-fits`` so a rerun reuses it; the current
fit is the study's own ``fit.nc`` beside its cube (the workflow's, made with this
checkout), or this checkout's fit of the cube where there is none;
every fit.nc table with a ``verdict`` column is read from both and printed side by side,
rows matched on their text columns (group, law, axis or term, statement, ...). A row only
one revision has is shown with the other side blank (a table or statement that is new, or
gone). No retraining: the cubes are the same, only the statistics and the verdicts differ.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import xarray as xr
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_identity import REPO, fit_in, fit_with  # noqa: E402

KEY_COLUMNS = ("group", "law", "term", "axis", "task", "statement", "claim", "size", "a")
KEY_COLUMNS += ("K_train", "shared", "weight_decay", "k", "d", "m", "init_scale", "model")
SCHEMAS = ("src/opscale/data/config.schema.yaml", "workflow/schemas/config.schema.yaml")


def schema_at(revision: str) -> dict:
    """The revision's config schema (it refuses, or fails to resolve, any other key)."""
    for path in SCHEMAS:
        shown = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=REPO, capture_output=True)
        if shown.returncode == 0:
            return yaml.safe_load(shown.stdout)
    raise FileNotFoundError(f"no config schema at {revision}")


def pruned(config, schema: dict):
    """`config` without the keys `schema` does not know, recursively (sweeps kept whole)."""
    known = schema.get("properties")
    if not isinstance(config, dict) or known is None:
        return config
    return {k: pruned(v, known[k]) for k, v in config.items() if k in known}


def for_revision(cube: Path, revision: str, out: Path) -> Path:
    """A copy of `cube` whose stored config holds only the keys the revision knows."""
    with xr.open_dataset(cube) as ds:
        ds = ds.load()
    ds.attrs["config"] = json.dumps(pruned(json.loads(ds.attrs["config"]), schema_at(revision)))
    copy = out / "cube.nc"
    ds.to_netcdf(copy)
    return copy


def verdict_tables(path: Path) -> dict[str, pd.DataFrame]:
    """Every table of a fit.nc that has a verdict column, keyed by its name."""
    with xr.open_dataset(path) as fits:
        fits = fits.load()
    found = {}
    for dim in dict.fromkeys(fits[v].dims[0] for v in fits.data_vars if fits[v].ndim == 1):
        names = [v for v in fits.data_vars if fits[v].dims == (dim,)]
        if any(name == "verdict" or name.endswith("_verdict") for name in names):
            frame = fits[names].to_dataframe().reset_index(drop=True)
            found[dim] = frame.rename(
                columns=lambda c: c.rsplit("_", 1)[-1] if c.endswith("verdict") else c
            )
    return found


def keyed(frame: pd.DataFrame) -> pd.Series:
    """The verdicts indexed by the row's text key."""
    keys = [c for c in KEY_COLUMNS if c in frame]
    index = frame[keys].astype(str).agg(" / ".join, axis=1) if keys else frame.index.astype(str)
    return pd.Series(frame["verdict"].astype(str).to_numpy(), index=index)


def compare(old: Path, new: Path, revision: str) -> str:
    before, after = verdict_tables(old), verdict_tables(new)
    lines = []
    for name in dict.fromkeys([*before, *after]):
        a = keyed(before[name]) if name in before else pd.Series(dtype=str)
        b = keyed(after[name]) if name in after else pd.Series(dtype=str)
        lines += [f"\n{name}:\n", f"| row | verdict at {revision} | verdict now | changed |"]
        lines.append("|---|---|---|---|")
        for key in dict.fromkeys([*a.index, *b.index]):
            was, now = a.get(key, ""), b.get(key, "")
            lines.append(f"| {key} | {was} | {now} | {'yes' if was != now else ''} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="the earlier git revision, e.g. 1af1613")
    parser.add_argument("cubes", nargs="+", type=Path, help="study cubes")
    parser.add_argument("--old-fits", type=Path, default=None, help="keep the old fits here")
    args = parser.parse_args()
    for cube in args.cubes:
        study = cube.resolve().parent.name
        with tempfile.TemporaryDirectory() as tmp:
            old = args.old_fits / f"{study}.nc" if args.old_fits else None
            if old is None or not old.exists():
                old_cube = for_revision(cube.resolve(), args.revision, Path(tmp))
                try:
                    fitted, _ = fit_with(args.revision, old_cube, Path(tmp))
                except subprocess.CalledProcessError:  # e.g. a measure's variables renamed
                    print(f"\n## {study}\n\n{args.revision} cannot fit this cube (above).")
                    continue
                if old is None:
                    old = fitted
                else:
                    old.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(fitted, old)
            sibling = cube.resolve().parent / "fit.nc"
            new = (
                sibling if sibling.exists() else fit_in(REPO, cube.resolve(), Path(tmp), "here")[0]
            )
            print(f"\n## {study}\n{compare(old, new, args.revision)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
