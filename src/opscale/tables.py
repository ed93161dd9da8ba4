"""fit.nc's table format: every fit table is a set of variables on its own dimension.

A table ``name`` (``row``, ``parameter``, ``comparison``, ``backtest``, ``allocation``,
``curve``, ``excluded``, ``note``, and an analysis' ``<analysis>_<table>``) is stored as
variables ``<name>_<column>`` on dimension ``name``; the exponent table ``row`` is stored
unprefixed. ``table(fits, name)`` reads one back as a DataFrame: this module is the only
fit code that plots and analyses import. ``markdown_table`` renders a table the way every
section of fit.md shows it (through tabulate).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tabulate import DataRow, TableFormat, tabulate

EXPONENTS = "row"  # the table of exponent estimates, stored without a prefix
EXPONENTS_FILE = "exponents.csv"  # the tidy table of every law's parameters, beside fit.nc
EXPONENT_COLUMNS = ["group", "law", "parameter", "estimate", "ci_low", "ci_high"]
EXPONENT_COLUMNS += ["identified", "method"]
PARAMETER_OF_TERM = {"log_N": "alpha", "log_n": "beta"}
# the fit's tables in the order fit.nc holds them, after the exponents
TABLE_ORDER = (
    "parameter",
    "slope",
    "shape",
    "comparison",
    "backtest",
    "allocation",
    "curve",
    "excluded",
    "note",
)
# GitHub-flavoured Markdown, one space around each cell, no column padding
_MARKDOWN = TableFormat(
    lineabove=None,
    linebelowheader=lambda widths, _aligns: "|" + "---|" * len(widths),
    linebetweenrows=None,
    linebelow=None,
    headerrow=DataRow("| ", " | ", " |"),
    datarow=DataRow("| ", " | ", " |"),
    padding=0,
    with_header_hide=None,
)


def tables_dataset(tables: dict[str, list[dict]]) -> xr.Dataset:
    """Every table (name -> rows) as one dataset: exponents, the fit's, then the others."""
    ds = _table_dataset(pd.DataFrame(tables.get(EXPONENTS, [])), EXPONENTS, prefix="")
    extra = [name for name in tables if name not in (*TABLE_ORDER, EXPONENTS)]
    for name in (*TABLE_ORDER, *extra):  # the fit's tables, then the analyses'
        ds = ds.merge(_table_dataset(pd.DataFrame(tables.get(name, [])), name))
    return ds


def _table_dataset(frame: pd.DataFrame, name: str, prefix: str | None = None) -> xr.Dataset:
    """A table as variables `<prefix><column>` on dimension `name`."""
    if frame.empty:
        return xr.Dataset()
    prefix = f"{name}_" if prefix is None else prefix
    frame = frame.rename(columns=lambda c: f"{prefix}{c}").rename_axis(name).reset_index(drop=True)
    return xr.Dataset({c: (name, _column(frame[c])) for c in frame.columns})


def _column(values: pd.Series) -> np.ndarray:
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        return values.fillna("").astype(str).to_numpy(object)
    return values.to_numpy()


def table(fits: xr.Dataset, name: str) -> pd.DataFrame:
    """One table of a fit dataset as a DataFrame (``row``, ``backtest``, ...)."""
    prefix = "" if name == EXPONENTS else f"{name}_"
    names = [v for v in fits.data_vars if fits[v].dims == (name,)]
    return pd.DataFrame({v[len(prefix) :]: fits[v].values for v in names})


def headline(rows: pd.DataFrame) -> pd.DataFrame:
    """Per group and axis of the exponent table: the robust estimate, else the joint OLS."""
    rank = rows["law"].map({"robust": 0, "joint": 1, "data": 2, "model": 2})
    return rows.assign(rank=rank).sort_values("rank").groupby(["group", "term"], sort=False).head(1)


def settings(fits: xr.Dataset) -> dict:
    """The ``fit:`` settings a fit dataset was made with."""
    return json.loads(fits.attrs.get("settings", "{}"))


def confidence_label(fits: xr.Dataset) -> str:
    """The fit's confidence level (``fit.confidence``) as headers show it, e.g. ``95%``."""
    return f"{100 * float(fits.attrs.get('confidence', 0.95)):g}%"


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table of already formatted cells (each shown as ``str`` shows it)."""
    text = tabulate(
        rows,
        headers=header,
        tablefmt=_MARKDOWN,
        stralign=None,
        numalign=None,
        disable_numparse=True,
    )
    return text + "\n"


SIGNIFICANT = 3  # significant figures of every estimate and interval end fit.md prints


def number(value: float, digits: int = SIGNIFICANT) -> str:
    """A number to `digits` significant figures, the one format of fit.md's estimates.

    Fixed point between 1e-3 and 1e5 (``0.479``, ``2.72``, ``1.00``, ``103``, ``12300``),
    scientific outside (``5.36e-18``); ``nan`` as ``n/a``.
    """
    value = float(value)
    if not np.isfinite(value):
        return "n/a" if np.isnan(value) else ("∞" if value > 0 else "-∞")
    if value == 0:
        return "0"
    magnitude = int(np.floor(np.log10(abs(value))))
    if not -3 <= magnitude < 5:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    rounded = round(value, digits - 1 - magnitude)
    if abs(rounded) >= 10 ** (magnitude + 1):  # 9.996 -> 10.0: one digit fewer after the point
        magnitude += 1
    return f"{rounded:.{max(0, digits - 1 - magnitude)}f}"


def interval_cell(
    row, value: str = "exponent", low: str = "ci_low", high: str = "ci_high", fmt=number
) -> str:
    """An estimate with its interval as fit.md prints it, censored ends said in words.

    ``0.542 [0.236, 1.5]``; ``6.78 [> 0.165; upper end at the bound 10]`` when the
    upper end is censored (``row.censored``); ``0.018 (no interval)`` without one. Numbers
    go through `fmt` (default :func:`number`: 3 significant figures).
    """
    estimate, lo, hi = (fmt(getattr(row, name)) for name in (value, low, high))
    raw_lo, raw_hi = getattr(row, low), getattr(row, high)
    censored = getattr(row, "censored", "") or ""
    if not (np.isfinite(raw_lo) and np.isfinite(raw_hi)):
        return f"{estimate} (no interval)"
    if censored == "upper":
        return f"{estimate} [> {lo}; upper end at the bound {row.bound_high:g}]"
    if censored == "lower":
        return f"{estimate} [< {hi}; lower end at the bound {row.bound_low:g}]"
    if censored == "both":
        return f"{estimate} (both ends at bounds: not identified)"
    return f"{estimate} [{lo}, {hi}]"


def exponents(fits: xr.Dataset) -> pd.DataFrame:
    """exponents.csv: one row per parameter of every fitted law (robust, OLS, FLOPs).

    Columns ``group, law, parameter, estimate, ci_low, ci_high, identified, method``; an
    interval without a meaning (none, or censored) is still given, with ``identified: no``.
    """
    parameters = table(fits, "parameter")
    ols = table(fits, EXPONENTS)
    if not ols.empty:
        ols = ols[ols["law"] != "robust"].assign(
            parameter=ols["term"].map(PARAMETER_OF_TERM), estimate=ols["exponent"]
        )
    if not parameters.empty:
        parameters = parameters.rename(columns={"name": "parameter"})
        flops = parameters["law"] == "flops"
        parameters.loc[flops, "method"] = "OLS of log FLOPs on log N and log n"
    frame = pd.concat([parameters, ols], ignore_index=True)
    if frame.empty:
        return pd.DataFrame(columns=EXPONENT_COLUMNS)
    frame["identified"] = frame.get("identified", pd.Series(index=frame.index)).replace("", np.nan)
    frame["identified"] = frame["identified"].fillna("yes")
    return frame[EXPONENT_COLUMNS]


READERS = {  # file suffix -> reader of a long-format table
    ".csv": pd.read_csv,
    ".tsv": lambda path: pd.read_csv(path, sep="\t"),
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".nc": lambda path: xr.open_dataset(path).to_dataframe().reset_index(),
}


def read_runs(path) -> pd.DataFrame:
    """A long-format table of runs from CSV, TSV, Parquet or NetCDF (by suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ValueError(f"unknown table format {suffix!r}; readable: {', '.join(READERS)}")
    return READERS[suffix](path)
