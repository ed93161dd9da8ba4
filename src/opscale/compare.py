"""Two studies' exponents side by side (``opscale compare``); a study as CSV/Parquet (``export``).

``compare(a, b)`` matches the rows of two fits' exponent tables (``table(fits, "row")``) on
(group, law, axis) and prints, for each, both exponents with their intervals, the
difference B − A with an interval, and a verdict. The two studies are independent fits,
so the difference's interval is a **normal approximation** from each side's percentile
interval: se = (ci_high − ci_low) / (2 z) with z the normal quantile of the fit's
confidence level (fit.nc ``attrs["confidence"]``), se_diff = sqrt(se_A² + se_B²), and the
interval B − A ± z se_diff at A's level. *different* when that interval excludes 0, else
*indistinguishable*; *not compared* (and no interval) when either side is not
identified or has no interval.

``groups=(G_A, G_B)`` compares group G_A of A with group G_B of B instead, e.g. two
budgets of one study (A and B may be the same fit). Groups of one study share their
seeds (the same data draws and initial weights), so their errors are positively
correlated and the independent-fits interval is conservative (wider than a paired one):
"indistinguishable" may hide a real, small difference; "different" is safe.

``export(study_dir, fmt, out)`` writes the cube in long format (``cube.<fmt>``: one row per
model, every variable on the sweep axes and seed; a variable with further dimensions,
e.g. ``loss_curve(step)``, to ``cube_<name>.<fmt>``) and every table of fit.nc
(``fit_<table>.<fmt>``; ``fit_row`` is the exponent table).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from opscale.layout import StudyLayout
from opscale.scaling.observations import TERM_AXIS
from opscale.tables import EXPONENTS, interval_cell, markdown_table, number, table

KEY = ["group", "law", "term"]
COMPARED = ["a", "b", "difference", "low", "high", "verdict"]
FORMATS = ("csv", "parquet")


class MissingFile(FileNotFoundError):
    """A study's cube.nc or fit.nc is not where it was looked for."""


def _layout(study_dir: Path) -> StudyLayout:
    study_dir = Path(study_dir)
    return StudyLayout(study_dir.name, str(study_dir.parent))


def fit_path(path) -> Path:
    """The fit.nc of a study folder (``results/<study>/``), or `path` itself if a file."""
    path = Path(path)
    found = path if path.suffix == ".nc" else Path(_layout(path).fit)
    if not found.is_file():
        raise MissingFile(f"no fit.nc at {found}")
    return found


def _read(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def _se(row, z: float) -> float:
    """The standard error a percentile interval implies under a normal approximation."""
    return (row.ci_high - row.ci_low) / (2 * z)


def _comparable(row) -> str:
    """Why `row` cannot be compared ("" when it can)."""
    identified = getattr(row, "identified", "")
    if not pd.isna(identified) and identified not in ("", "yes"):  # blank: as exponents.csv
        return "not identified"
    if not (np.isfinite(row.exponent) and np.isfinite(row.ci_low) and np.isfinite(row.ci_high)):
        return "no interval"
    return ""


def compare_fits(
    a: xr.Dataset, b: xr.Dataset, groups: tuple[str, str] | None = None
) -> tuple[pd.DataFrame, list, list]:
    """The matched rows of two fits, and the keys only in A and only in B.

    The frame has per row ``group, law, term, a, b`` (the rows as namedtuples),
    ``difference, low, high, verdict``. With `groups`, only group ``groups[0]`` of A and
    ``groups[1]`` of B, matched on (law, term) under the group label "G_A vs G_B".
    """
    conf_a = float(a.attrs.get("confidence", 0.95))
    conf_b = float(b.attrs.get("confidence", 0.95))
    z_a, z_b = (stats.norm.ppf((1 + c) / 2) for c in (conf_a, conf_b))
    rows_a, rows_b = (table(f, EXPONENTS) for f in (a, b))
    if groups is not None:
        label = f"{groups[0]} vs {groups[1]}"
        rows_a, rows_b = (
            _one_group(r, g, label, side)
            for r, g, side in zip((rows_a, rows_b), groups, "AB", strict=True)
        )
    by_key_b = {tuple(getattr(r, k) for k in KEY): r for r in _records(rows_b)}
    keys_a = [tuple(getattr(r, k) for k in KEY) for r in _records(rows_a)]
    out = []
    for ra in _records(rows_a):
        key = tuple(getattr(ra, k) for k in KEY)
        if key not in by_key_b:
            continue
        rb = by_key_b[key]
        difference = rb.exponent - ra.exponent
        reasons = (("A", _comparable(ra)), ("B", _comparable(rb)))
        why = "; ".join(f"{side} {reason}" for side, reason in reasons if reason)
        low = high = math.nan
        if why:
            verdict = f"not compared ({why})"
        else:
            se = math.hypot(_se(ra, z_a), _se(rb, z_b))
            low, high = difference - z_a * se, difference + z_a * se
            verdict = "different" if low > 0 or high < 0 else "indistinguishable"
        values = {"a": ra, "b": rb, "difference": difference, "low": low, "high": high}
        out.append({**dict(zip(KEY, key, strict=True)), **values, "verdict": verdict})
    only_a = [k for k in keys_a if k not in by_key_b]
    only_b = [k for k in by_key_b if k not in set(keys_a)]
    return pd.DataFrame(out, columns=[*KEY, *COMPARED]), only_a, only_b


def _one_group(rows: pd.DataFrame, group: str, label: str, side: str) -> pd.DataFrame:
    """The exponent rows of `group`, relabelled `label`; a ValueError names the groups."""
    found = rows[rows["group"] == group]
    if found.empty:
        known = ", ".join(dict.fromkeys(rows["group"])) or "none"
        raise ValueError(f"{side} has no group {group!r}; its groups: {known}")
    return found.assign(group=label)


def _records(frame: pd.DataFrame) -> list:
    return list(frame.itertuples(index=False)) if not frame.empty else []


def _key_text(key) -> str:
    group, law, term = key
    return f"{group} / {law} / {TERM_AXIS.get(term, term)}"


def compare_text(path_a, path_b, groups: tuple[str, str] | None = None) -> str:
    """The Markdown comparison of two fits (study folders or fit.nc paths)."""
    file_a, file_b = fit_path(path_a), fit_path(path_b)
    a, b = _read(file_a), _read(file_b)
    matched, only_a, only_b = compare_fits(a, b, groups)
    level = f"{100 * float(a.attrs.get('confidence', 0.95)):g}%"
    lines = [
        f"A = {file_a}, B = {file_b}.",
        f"B − A with a {level} interval by a normal approximation of two independent fits: "
        "se = (ci_high − ci_low) / (2 z) from each side's percentile interval, "
        "se_diff = sqrt(se_A² + se_B²); *different* when the interval excludes 0.",
    ]
    if groups is not None:
        lines.append(
            f"Group {groups[0]!r} of A against group {groups[1]!r} of B. Groups of one study "
            "share their seeds (data draws, initial weights): the interval is conservative."
        )
    if float(a.attrs.get("confidence", 0.95)) != float(b.attrs.get("confidence", 0.95)):
        lines.append(
            f"The fits' confidence levels differ (A {a.attrs.get('confidence')}, "
            f"B {b.attrs.get('confidence')}): each side's se uses its own level."
        )
    lines.append("")
    header = ["group", "law", "axis", f"A exponent [{level} CI]", f"B exponent [{level} CI]"]
    header += ["B − A", "verdict"]
    cells = []
    for m in matched.itertuples(index=False):
        if np.isfinite(m.low):
            diff = f"{number(m.difference)} [{number(m.low)}, {number(m.high)}]"
        else:
            diff = f"{number(m.difference)} (no interval)"
        exponents = [interval_cell(m.a), interval_cell(m.b)]
        cells.append([m.group, m.law, TERM_AXIS.get(m.term, m.term), *exponents, diff, m.verdict])
    lines.append(markdown_table(header, cells) if cells else "No (group, law, axis) in both.\n")
    for side, keys in (("A", only_a), ("B", only_b)):
        if keys:
            lines.append(f"only in {side}: " + ", ".join(_key_text(k) for k in keys))
    return "\n".join(lines).rstrip("\n") + "\n"


def _per_model_dims(cube: xr.Dataset) -> tuple[str, ...]:
    """The dimensions of one model: the sweep axes and seed (those of ``status``)."""
    for name in ("status", "test_rel_l2"):
        if name in cube:
            return cube[name].dims
    return tuple(cube.dims)


def cube_frames(cube: xr.Dataset) -> dict[str, pd.DataFrame]:
    """The cube in long format: ``cube`` (one row per model), ``cube_<name>`` per curve."""
    dims = set(_per_model_dims(cube))
    per_model = [v for v in cube.data_vars if set(cube[v].dims) <= dims]
    frames = {"cube": cube[per_model].to_dataframe().reset_index()}
    for name in cube.data_vars:
        if name not in per_model:
            frames[f"cube_{name}"] = cube[name].to_dataframe().reset_index()
    return frames


def fit_frames(fits: xr.Dataset) -> dict[str, pd.DataFrame]:
    """Every table of a fit dataset, ``fit_<table>`` (``fit_row``: the exponents)."""
    names = dict.fromkeys(fits[v].dims[0] for v in fits.data_vars if fits[v].ndim == 1)
    return {f"fit_{name}": table(fits, name) for name in names}


def export(study_dir, fmt: str = "csv", out=None) -> tuple[list[Path], list[Path]]:
    """Write a study's cube and fit tables as CSV or Parquet: (paths written, files absent).

    Raises MissingFile when the study has neither cube.nc nor fit.nc, ImportError when
    Parquet is asked for without pyarrow (before anything is written).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        import pyarrow  # noqa: F401  (the `parquet` extra)
    layout = _layout(study_dir)
    cube_file, fit_file = Path(layout.cube), Path(layout.fit)
    if not cube_file.is_file() and not fit_file.is_file():
        raise MissingFile(f"no cube.nc at {cube_file} and no fit.nc at {fit_file}")
    frames, absent = {}, []
    for path, frames_of in ((cube_file, cube_frames), (fit_file, fit_frames)):
        if path.is_file():
            frames.update(frames_of(_read(path)))
        else:
            absent.append(path)
    out = Path(out) if out is not None else Path(study_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        written.append(path)
    return written, absent
