"""Scaling-law fits of a study cube: log-log OLS with cluster-robust intervals.

Laws, fitted by statsmodels OLS on log(test relative L2 error):

- ``data``:  log err ~ log n + (one intercept per model size N)   -> exponent of n
- ``model``: log err ~ log N + (one intercept per data size n)    -> exponent of N
- ``joint``: log err ~ log n + log N                              -> both exponents

The exponent is minus the slope, so err ~ n^-exponent. Each law is fitted separately
for every combination of the other swept axes (e.g. per input dimension). Standard
errors are cluster-robust with clusters = seeds (a seed's data draws are nested across
n, so its errors are correlated), and intervals use Student's t with (clusters - 1)
degrees of freedom. With a single seed the fit falls back to HC1 errors and says so.
Members that diverged or are missing are excluded and counted.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import xarray as xr

from opscale import cube as cubes

log = logging.getLogger(__name__)
ERROR = "test_rel_l2"
DATA_AXIS = "data.n_train"
CONFIDENCE = 0.95
LAWS = {  # name: (regressors whose exponents are reported, fixed effect)
    "data": (["log_n"], "log_N"),
    "model": (["log_N"], "log_n"),
    "joint": (["log_n", "log_N"], None),
}
TERM_AXIS = {"log_n": "n (training functions)", "log_N": "N (parameters)"}


def fit_cube(cube_path: str, fit_path: str, table_path: str) -> xr.Dataset:
    """Fit every applicable law of a cube; write fit.nc and a Markdown table."""
    cube = cubes.read(cube_path)
    fits = fit(cube)
    cubes.write(fits, fit_path)
    with open(table_path, "w") as fh:
        fh.write(markdown(fits))
    return fits


def fit(cube: xr.Dataset) -> xr.Dataset:
    """Estimates (dim ``row``) and fitted errors on the grid (``fitted_<law>``)."""
    obs, excluded = observations(cube)
    by = grouping_axes(cube)
    rows, fitted = [], []
    for key, group in obs.groupby(by, sort=False) if by else [((), obs)]:
        labels = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        for law in applicable_laws(group):
            result = ols(group, law)
            rows += estimates(result, law, labels, group)
            fitted.append(group.assign(law=law, fitted=np.exp(result.fittedvalues)))
    return _dataset(rows, fitted, cube, excluded)


def observations(cube: xr.Dataset) -> tuple[pd.DataFrame, dict]:
    """One row per trained model with log n, log N, log error; and exclusion counts."""
    axes = json.loads(cube.attrs.get("axes", "{}"))
    df = cube[[ERROR, "n_params", "status"]].to_dataframe().reset_index()
    config = json.loads(cube.attrs["config"])
    n_name = next((name for name, path in axes.items() if path == DATA_AXIS), None)
    df["n"] = df[n_name] if n_name else config["data"]["n_train"]
    status = df["status"].astype(int)
    excluded = {
        "diverged": int((status == cubes.DIVERGED).sum()),
        "missing": int((status == cubes.MISSING).sum()),
    }
    df = df[(status == cubes.OK) & np.isfinite(df[ERROR]) & (df[ERROR] > 0)].copy()
    df["log_err"], df["log_n"] = np.log(df[ERROR]), np.log(df["n"].astype(float))
    df["log_N"] = np.log(df["n_params"].astype(float))
    if any(excluded.values()):
        log.warning("excluded from the fits: %s", excluded)
    return df, excluded


def grouping_axes(cube: xr.Dataset) -> list[str]:
    """Swept axes that are neither the data size nor a model setting: fitted separately."""
    axes = json.loads(cube.attrs.get("axes", "{}"))
    return [
        name for name, path in axes.items() if path != DATA_AXIS and not path.startswith("model.")
    ]


def applicable_laws(group: pd.DataFrame) -> list[str]:
    """Laws whose regressors vary in this group."""
    varies = {term: group[term].nunique() > 1 for term in TERM_AXIS}
    return [law for law, (terms, _) in LAWS.items() if all(varies[t] for t in terms)]


def ols(group: pd.DataFrame, law: str):
    """OLS of log error on the law's regressors, cluster-robust by seed."""
    terms, fixed = LAWS[law]
    rhs = " + ".join(terms)
    if fixed and group[fixed].nunique() > 1:
        rhs += f" + C({fixed})"
    model = smf.ols(f"log_err ~ {rhs}", data=group)
    if group["seed"].nunique() < 2:
        return model.fit(cov_type="HC1")
    return model.fit(cov_type="cluster", cov_kwds={"groups": group["seed"].to_numpy()}, use_t=True)


def estimates(result, law: str, labels: dict, group: pd.DataFrame) -> list[dict]:
    """Rows of exponent estimates (exponent = -slope) with their intervals."""
    ci = result.conf_int(alpha=1 - CONFIDENCE)
    clustered = result.cov_type == "cluster"
    return [
        {
            **labels,
            "law": law,
            "term": term,
            "exponent": -result.params[term],
            "std_err": result.bse[term],
            "ci_low": -ci.loc[term, 1],
            "ci_high": -ci.loc[term, 0],
            "n_obs": int(result.nobs),
            "n_clusters": group["seed"].nunique(),
            "r_squared": result.rsquared,
            "method": "OLS, cluster-robust by seed" if clustered else "OLS, HC1 (one seed)",
        }
        for term in LAWS[law][0]
    ]


def _dataset(rows, fitted, cube: xr.Dataset, excluded: dict) -> xr.Dataset:
    table = pd.DataFrame(rows)
    ds = xr.Dataset.from_dataframe(table.rename_axis("row")) if rows else xr.Dataset()
    axes = list(json.loads(cube.attrs.get("axes", "{}")))
    for law, frame in pd.concat(fitted).groupby("law") if fitted else []:
        grid = frame.groupby(axes)["fitted"].first().to_xarray() if axes else None
        if grid is not None:
            ds[f"fitted_{law}"] = grid.assign_attrs(
                long_name=f"test relative L2 error predicted by the {law} law", units="1"
            )
    ds.attrs.update(
        config=cube.attrs["config"],
        axes=cube.attrs.get("axes", "{}"),
        excluded=json.dumps(excluded),
        confidence=CONFIDENCE,
        response=f"log({ERROR})",
    )
    return ds


def markdown(fits: xr.Dataset) -> str:
    """The fit table as Markdown: law | axis | exponent [95% CI] | observations."""
    lines = [
        "| group | law | axis | exponent [95% CI] | models | seeds | R² | method |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = [c for c in fits.data_vars if c not in _COLUMNS and not c.startswith("fitted_")]
    for i in range(fits.sizes.get("row", 0)):
        r = {k: fits[k].values[i] for k in [*_COLUMNS, *by]}
        group = ", ".join(f"{k}={r[k]}" for k in by) or "all"
        lines.append(
            f"| {group} | {r['law']} | {TERM_AXIS[r['term']]} | {r['exponent']:.3f} "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['n_obs']} | "
            f"{r['n_clusters']} | {r['r_squared']:.3f} | {r['method']} |"
        )
    excluded = json.loads(fits.attrs.get("excluded", "{}"))
    notes = f"\nExcluded models: {excluded}.\n" if any(excluded.values()) else "\n"
    return "\n".join(lines) + "\n" + notes


_COLUMNS = [
    "law",
    "term",
    "exponent",
    "std_err",
    "ci_low",
    "ci_high",
    "n_obs",
    "n_clusters",
    "r_squared",
    "method",
]
