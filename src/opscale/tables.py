"""fit.nc's table format: every fit table is a set of variables on its own dimension.

A table ``name`` (``row``, ``parameter``, ``comparison``, ``backtest``, ``allocation``,
``curve``, ``excluded``, ``note``, and an analysis' ``<analysis>_<table>``) is stored as
variables ``<name>_<column>`` on dimension ``name``; the exponent table ``row`` is stored
unprefixed. ``table(fits, name)`` reads one back as a DataFrame: this module is the only
fit code that plots and analyses import. ``markdown_table`` renders a table the way every
section of fit.md shows it (through tabulate).

Every column says what it is, for ``xarray.open_dataset("fit.nc")`` users: attributes
``long_name`` (``COLUMNS``, per table in ``TABLE_COLUMNS``), ``table`` and ``column``
(the table it belongs to and its name there), and ``units`` ``"1"`` on numeric columns
(every number of a fit is dimensionless: exponents, relative errors, counts of models,
parameters, functions and FLOPs); the dataset's ``tables`` attribute (JSON) describes
each table (``TABLES``). An analysis' table without descriptions here is named by its
table and column.
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
# The ``size`` table: exponents in each count of the model size (column ``size``) and the
# data exponent of the envelope min over N (opscale.scaling.sizes). The exponent table and
# the headline are in SIZE_N.
SIZE_TABLE = "size"
SIZE_N = "N (all parameters)"
SIZE_CORE = "N without sensor layer"
SIZE_P = "p (basis functions)"
SIZE_ENVELOPE = "envelope min over N"
# the fit's tables in the order fit.nc holds them, after the exponents
TABLE_ORDER = (
    "parameter",
    "slope",
    SIZE_TABLE,
    "shape",
    "invariance",
    "comparison",
    "backtest",
    "allocation",
    "curve",
    "excluded",
    "note",
)
# What one row of each table is (fit.nc's ``tables`` attribute).
TABLES = {
    EXPONENTS: "exponent estimates: one row per group, law (robust; OLS: data, model, joint) "
    "and term, with the theory's prediction, the convergence diagnostics and the verdict",
    "parameter": "parameters of the fitted laws: the robust law's E, A, alpha, B, beta and "
    "the FLOPs law's log k, a, b, one row per group, law and parameter",
    "slope": "per group and axis: the robust law's asymptotic exponent next to the local "
    "slope -d log err / d log x over the sampled models",
    SIZE_TABLE: "the robust law's model-axis exponent in each count of model size (N, all "
    "parameters; N without the sensor layer; p, basis functions) and the data exponent of "
    "the envelope min over N, one row per group, count and term, with the verdict on the "
    "counts the theory's rates are stated in",
    "shape": "shape claims across groups: how the exponents change with the dimension b",
    "invariance": "shape claims across groups that differ in one setting the theory says "
    "the exponents do not depend on (ambient dimension D, sensor count n_x): the "
    "difference of the exponents at its largest and smallest value, with an interval",
    "comparison": "alternative laws ranked by AIC and BIC, one row per group and law",
    "backtest": "extrapolation backtest: the largest value of an axis held out and "
    "predicted, one row per group, held-out axis, method and held-out grid point",
    "allocation": "compute-optimal (N, n) and error at each training budget (robust law "
    "and FLOPs law), one row per group and budget",
    "curve": "the robust law's fitted error along each axis with its band, for the figures",
    "excluded": "models left out of the fits, with the reason",
    "note": "steps that could not run for a group, with the reason",
}
_INTERVAL = "{} end of the confidence interval (level: the dataset's confidence attribute)"
# long_name of a column, whatever the table of the fit (TABLE_COLUMNS overrides).
COLUMNS = {
    "group": "fit group: the values of its grouping axes (all: the study is one group)",
    "law": "fitted law",
    "term": "term of the law: log_N (model size N) or log_n (data size n)",
    "estimate": "estimate of the parameter",
    "ci_low": _INTERVAL.format("lower"),
    "ci_high": _INTERVAL.format("upper"),
    "identified": "yes: identified; no: at a bound or without an interval (no verdict)",
    "censored": "end of the interval censored by a bound: lower, upper, both or empty",
    "bound_low": "lower bound of the parameter in the fit",
    "bound_high": "upper bound of the parameter in the fit",
    "share_at_low": "share of the bootstrap draws at the lower bound",
    "share_at_high": "share of the bootstrap draws at the upper bound",
    "no_interval": "why there is no interval (empty: there is one)",
    "method": "how it was estimated",
    "n_obs": "models fitted",
    "verdict": "verdict on the measured value against the theory",
    "reason": "why",
}
TABLE_COLUMNS = {
    EXPONENTS: {
        "exponent": "measured exponent (err ~ x^-exponent)",
        "std_err": "standard error of the exponent",
        "n_clusters": "clusters of the fit (seeds)",
        "r_squared": "R squared of the fit of log err",
        "intrinsic_dim": "intrinsic dimension b of the inputs (NaN: not known)",
        "output_dim": "dimension d2 of the output domain",
        "theory": "the theory's prediction compared with (opscale.theory)",
        "theory_exponent": "the theory's exponent (a bound's rate)",
        "theory_formula": "the theory's rate as a formula",
        "assumptions": "what the theory's bound assumes",
        "at_budget_share": "share of the group's models whose best step is at their budget's end",
        "models_at_budget": "models at their budget's end, of all the group's models",
        "test_train_ratio": "median ratio of test to training error of the group's models",
        "late_gain": "median relative fall of the best validation error over the last quarter",
    },
    SIZE_TABLE: {
        "size": "the count of the model axis (or: envelope min over N, the data axis)",
        "exponent": "measured exponent (err ~ x^-exponent, x the count or n)",
    },
    "invariance": {
        "statement": "the claim tested",
        "axis": "axis of the exponent",
        "law": "the law whose exponents are compared (robust; OLS data or model: local slopes)",
        "setting": "the setting the claim is about (a config path)",
        "within": "the other swept values the compared groups share",
        "compared": "the setting's values compared (smallest and largest: the difference's)",
        "exponents": "each value's exponent with its interval",
        "difference": "exponent at the largest value minus at the smallest",
        "difference_low": "lower end of its confidence interval",
        "difference_high": "upper end of its confidence interval",
        "relative": "the difference over the mean of the two exponents",
        "verdict": "holds (the interval contains 0), does not hold, or not tested",
    },
    "parameter": {"name": "parameter of the law"},
    "slope": {
        "exponent": "the robust law's asymptotic exponent",
        "exponent_low": "lower end of its confidence interval",
        "exponent_high": "upper end of its confidence interval",
        "local_slope": "the robust law's mean local slope -d log err / d log x over the models",
        "local_low": "lower end of its confidence interval",
        "local_high": "upper end of its confidence interval",
        "ols_slope": "the joint OLS slope (an average local slope)",
        "ols_low": "lower end of its confidence interval",
        "ols_high": "upper end of its confidence interval",
        "spread_low": "smallest local slope across the compared laws",
        "spread_high": "largest local slope across the compared laws",
        "spread_laws": "compared laws with a local slope",
    },
    "shape": {
        "axis": "axis of the exponent",
        "statement": "the claim tested",
        "slope": "fitted slope of the exponent (or its inverse) on b",
        "slope_low": "lower end of its confidence interval",
        "slope_high": "upper end of its confidence interval",
        "claimed": "the slope the claim states",
        "groups": "groups (exponents) the claim is tested on",
        "dimensions": "the values of b",
        "verdict": "holds, does not hold, or not shown",
    },
    "comparison": {
        "formula": "the law as a formula",
        "params": "parameters of the law (the noise variance included)",
        "rss": "residual sum of squares of log err",
        "aic": "Akaike information criterion",
        "bic": "Bayesian information criterion",
        "at_bound": "parameters at a bound",
        "slope_log_N": "the law's mean local slope in N",
        "slope_log_n": "the law's mean local slope in n",
        "delta_aic": "AIC minus the group's smallest",
        "delta_bic": "BIC minus the group's smallest",
        "evidence": "the evidence for the law against the best by AIC",
    },
    "backtest": {
        "held_out": "the axis whose largest value is held out",
        "method": "the law that predicts it (robust or joint OLS)",
        "N": "model size N (parameters) of the held-out grid point",
        "n": "data size n (training functions) of the held-out grid point",
        "measured": "median error of the held-out models over seeds",
        "predicted": "the error predicted without them",
        "pi_low": "lower end of the prediction interval",
        "pi_high": "upper end of the prediction interval",
        "rel_error": "predicted / measured - 1",
        "inside": "held-out models inside the prediction interval",
        "models": "held-out models at the point",
        "train_models": "models the law was fitted to",
    },
    "allocation": {
        "budget": "training budget C (a FLOP count)",
        "N_opt": "compute-optimal model size N at the budget",
        "n_opt": "compute-optimal data size n at the budget",
        "err_opt": "predicted error at the optimum",
        "N_low": "lower end of the interval of N_opt",
        "n_low": "lower end of the interval of n_opt",
        "err_low": "lower end of the interval of err_opt",
        "N_high": "upper end of the interval of N_opt",
        "n_high": "upper end of the interval of n_opt",
        "err_high": "upper end of the interval of err_opt",
        "extrapolated": "yes: the optimum lies outside the trained grid",
        "best_measured_N": "N of the best measured grid point within the budget",
        "best_measured_n": "n of the best measured grid point within the budget",
        "best_measured_err": "median error of the best measured grid point within the budget",
    },
    "curve": {
        "x_axis": "the axis along which the curve runs (N or n)",
        "other": "the value of the other axis",
        "x": "the value on the axis",
        "fitted": "the robust law's error",
        "low": "lower end of the band",
        "high": "upper end of the band",
    },
    "excluded": {"model": "the model left out", "fits": "the fits it is left out of"},
    "note": {"step": "the step that could not run"},
}
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
    """Every table (name -> rows) as one dataset: exponents, the fit's, then the others.

    Each variable carries ``long_name``, ``table``, ``column`` (and ``units`` if numeric);
    the dataset's ``tables`` attribute describes the tables it holds (JSON).
    """
    ds = _table_dataset(pd.DataFrame(tables.get(EXPONENTS, [])), EXPONENTS, prefix="")
    extra = [name for name in tables if name not in (*TABLE_ORDER, EXPONENTS)]
    for name in (*TABLE_ORDER, *extra):  # the fit's tables, then the analyses'
        ds = ds.merge(_table_dataset(pd.DataFrame(tables.get(name, [])), name))
    held = dict.fromkeys(ds[v].attrs["table"] for v in ds.data_vars)
    ds.attrs["tables"] = json.dumps({name: table_description(name) for name in held})
    return ds


def table_description(name: str) -> str:
    """What one row of table `name` is (an analysis' table: whose it is)."""
    if name in TABLES:
        return TABLES[name]
    analysis = name.split("_", 1)[0]
    return f"table {name!r} of the {analysis} analysis (see opscale.analyses.{analysis})"


def column_attrs(name: str, column: str, values: np.ndarray) -> dict:
    """The attributes of `column` of table `name`: long_name, table, column, units."""
    long_name = TABLE_COLUMNS.get(name, {}).get(column)
    if long_name is None:
        long_name = COLUMNS.get(column) if name in TABLES else None
    attrs = {"long_name": long_name or f"{column} ({name} table)", "table": name}
    attrs["column"] = column
    if np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        attrs["units"] = "1"  # every number of a fit is dimensionless (module docstring)
    return attrs


def _table_dataset(frame: pd.DataFrame, name: str, prefix: str | None = None) -> xr.Dataset:
    """A table as variables `<prefix><column>` on dimension `name`, described."""
    if frame.empty:
        return xr.Dataset()
    prefix = f"{name}_" if prefix is None else prefix
    frame = frame.rename_axis(name).reset_index(drop=True)
    columns = {c: _column(frame[c]) for c in frame.columns}
    return xr.Dataset(
        {
            f"{prefix}{c}": (name, values, column_attrs(name, str(c), values))
            for c, values in columns.items()
        }
    )


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
    """Per group and axis of the exponent table: the robust estimate, else the joint OLS
    (in N, all parameters: rows of another count, from a size table, are left out)."""
    if "size" in rows:
        rows = rows[rows["size"].isin(["", SIZE_N])]
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
