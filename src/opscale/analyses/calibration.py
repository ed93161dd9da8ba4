"""Analysis ``calibration``: measured excess risk against least squares' known answer.

The end-to-end check that the pipeline measures a rate correctly (the calibration study,
``config/studies/calibration.yaml``). For a linear operator of inputs spanned by b
functions with Gaussian coefficients and relative label noise ``problem.noise`` (sd
noise x RMS of the clean test outputs), least squares' expected relative squared excess
risk is noise^2 b / (n - b - 1) (Gaussian design, no intercept): the best an estimator
linear in the labels can do, two-sided and exact. Tables:

``risk``
    per group and n: the best model size's median relative excess risk over seeds (the
    envelope min over N of the seeds' medians, with the seeds' range), least squares'
    fitted to the same draws (``ls_test_rel_mse``, median), the closed form, and the
    ratio measured / closed form;
``rate``
    per group: the data exponent of the unsquared excess risk, -slope of
    0.5 log(relative MSE) on log n over the upper half of the sampled n (each seed's
    envelope over N; OLS with one intercept per seed, cluster-robust by seed, t(S-1)),
    next to the closed form's own local slope over the same n, mean n / (2 (n - b - 1)),
    which tends to 1/2;
``theory``
    the statements: the trained models are at or above least squares' risk at every n
    (never better than the best linear estimator: below it would reveal a leak); and the
    measured exponent's interval holds the closed form's slope.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import xarray as xr

from opscale import cube as cubes
from opscale.config import get_path
from opscale.scaling.observations import DATA_AXIS, grouping_axes
from opscale.tables import confidence_label, markdown_table, table

NAME = "calibration"
VARIABLES = ("test_rel_mse", "ls_test_rel_mse", "status")
SETTINGS = {"b": "problem.inputs.modes", "noise": "problem.noise"}


def analyse(cube: xr.Dataset, settings: dict) -> dict[str, pd.DataFrame]:
    """The ``risk``, ``rate`` and ``theory`` tables of a calibration study's cube."""
    frame = member_frame(cube)
    groups = [g for g in grouping_axes(cube) if g in frame]
    risk = risk_table(frame, groups)
    rate = rate_table(frame, groups, settings["confidence"])
    return {"risk": risk, "rate": rate, "theory": theory_table(risk, rate)}


def member_frame(cube: xr.Dataset) -> pd.DataFrame:
    """One row per trained member: its axes, n, b, noise and both excess risks."""
    missing = [v for v in VARIABLES if v not in cube]
    if missing:
        raise ValueError(f"the {NAME} analysis needs measure: {{calibration: {{}}}} ({missing})")
    axes, config = cubes.axes(cube), cubes.study_config(cube)
    frame = cube[list(VARIABLES)].to_dataframe().reset_index()
    frame = frame[frame["status"] == cubes.OK].dropna(subset=["test_rel_mse"])
    by_path = {path: name for name, path in axes.items()}
    n_axis = by_path.get(DATA_AXIS)
    frame["n"] = frame[n_axis] if n_axis else config["data"]["n_train"]
    for column, path in SETTINGS.items():
        frame[column] = frame[by_path[path]] if path in by_path else get_path(config, path)
    frame["least_squares"] = frame["noise"] ** 2 * frame["b"] / (frame["n"] - frame["b"] - 1)
    frame["size"] = _size_column(frame, axes)
    return frame.reset_index(drop=True)


def _size_column(frame: pd.DataFrame, axes: dict) -> pd.Series:
    """A label of each member's model size (its model axes' values)."""
    sizes = [name for name, path in axes.items() if path.startswith("model.")]
    return cubes.group_labels(frame, sizes)


def risk_table(frame: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """Per group and n: the best model size's excess risk next to least squares'."""
    medians = frame.groupby([*groups, "n", "size"], sort=True).agg(
        trained=("test_rel_mse", "median"),
        trained_low=("test_rel_mse", "min"),
        trained_high=("test_rel_mse", "max"),
        ls_empirical=("ls_test_rel_mse", "median"),
        least_squares=("least_squares", "first"),
        b=("b", "first"),
        noise=("noise", "first"),
    )
    best = medians.reset_index().sort_values("trained").groupby([*groups, "n"], sort=True).head(1)
    best = best.sort_values([*groups, "n"]).reset_index(drop=True)
    return best.assign(ratio=best["trained"] / best["least_squares"])


def rate_table(frame: pd.DataFrame, groups: list[str], confidence: float) -> pd.DataFrame:
    """Per group: the data exponent of the unsquared excess risk vs the closed form's."""
    rows = []
    for key, mine in frame.groupby(groups, sort=False) if groups else [((), frame)]:
        labels = dict(zip(groups, key if isinstance(key, tuple) else (key,), strict=True))
        rows.append({**labels, **_rate(mine, confidence)})
    return pd.DataFrame(rows)


def _rate(frame: pd.DataFrame, confidence: float) -> dict:
    envelope = frame.groupby(["seed", "n"], as_index=False).agg(
        risk=("test_rel_mse", "min"), b=("b", "first")
    )
    sampled = np.sort(envelope["n"].unique())
    upper = envelope[envelope["n"] >= np.median(sampled)].copy()
    upper["log_err"], upper["log_n"] = 0.5 * np.log(upper["risk"]), np.log(upper["n"])
    seeds = upper["seed"].nunique()
    formula = "log_err ~ log_n" + (" + C(seed)" if seeds > 1 else "")
    fitted = smf.ols(formula, upper)
    result = (
        fitted.fit(cov_type="cluster", cov_kwds={"groups": upper["seed"]}, use_t=True)
        if seeds > 1
        else fitted.fit()
    )
    low, high = result.conf_int(1 - confidence).loc["log_n"]
    b, n = float(upper["b"].iloc[0]), np.unique(upper["n"]).astype(float)
    return {
        "exponent": float(-result.params["log_n"]),
        "exponent_low": float(-high),
        "exponent_high": float(-low),
        "closed_form": float(np.mean(n / (2 * (n - b - 1)))),
        "n_from": int(n.min()),
        "n_to": int(n.max()),
        "seeds": seeds,
    }


def theory_table(risk: pd.DataFrame, rate: pd.DataFrame) -> pd.DataFrame:
    """The calibration's statements, each with its measured value and verdict."""
    above = int((risk["trained"] >= risk["least_squares"]).sum())
    inside = (rate["exponent_low"] <= rate["closed_form"]) & (
        rate["closed_form"] <= rate["exponent_high"]
    )
    return pd.DataFrame(
        [
            {
                "statement": "excess risk at or above least squares' noise^2 b/(n-b-1) "
                "at every n (median over seeds, best model size)",
                "measured": f"{above} of {len(risk)} (n, group) points; ratio "
                f"{risk['ratio'].min():.3g} to {risk['ratio'].max():.3g}",
                "verdict": "holds" if above == len(risk) else "does not hold",
            },
            {
                "statement": "data exponent of the unsquared excess risk equals the closed "
                "form's local slope n/(2(n-b-1)), which tends to 1/2",
                "measured": f"{int(inside.sum())} of {len(rate)} groups",
                "verdict": "holds" if inside.all() else "does not hold",
            },
        ]
    )


# ---------------------------------------------------------------------------- markdown
def markdown(fits: xr.Dataset) -> str:
    """fit.md's calibration sections: statements, the risk curve and the rate."""
    theory, risk, rate = (table(fits, f"{NAME}_{t}") for t in ("theory", "risk", "rate"))
    level = confidence_label(fits)
    sections = ["## Calibration: excess risk vs least squares (known answer)\n"]
    sections.append(
        markdown_table(
            ["statement", "measured", "verdict"],
            [[r.statement, r.measured, r.verdict] for r in theory.itertuples()],
        )
    )
    sections.append("### Risk at each n (best model size)\n")
    header = ["n", "model size", "measured (seeds' range)", "least squares, same draws"]
    header += ["noise² b/(n−b−1)", "measured / closed form"]
    body = [
        [r.n, r.size, f"{r.trained:.3g} ({r.trained_low:.3g}–{r.trained_high:.3g})"]
        + [f"{r.ls_empirical:.3g}", f"{r.least_squares:.3g}", f"{r.ratio:.3g}"]
        for r in risk.itertuples()
    ]
    sections.append(markdown_table(header, body))
    sections.append("### Rate of the unsquared excess risk\n")
    header = ["n range", f"data exponent [{level} CI]", "closed form's local slope", "seeds"]
    body = [
        [f"{r.n_from}–{r.n_to}", f"{r.exponent:.3f} [{r.exponent_low:.3f}, {r.exponent_high:.3f}]"]
        + [f"{r.closed_form:.3f}", r.seeds]
        for r in rate.itertuples()
    ]
    sections.append(markdown_table(header, body))
    return "\n".join(sections)


# ---------------------------------------------------------------------------- figures
def calibration_risk(cube: xr.Dataset, fits: xr.Dataset) -> plt.Figure:
    """Measured relative excess risk (best model size) and least squares' vs n."""
    risk = table(fits, f"{NAME}_risk")
    figure, ax = plt.subplots(figsize=(5.2, 4))
    ax.fill_between(risk.n, risk.trained_low, risk.trained_high, alpha=0.2, color="C0")
    ax.plot(risk.n, risk.trained, "o-", color="C0", label="trained (median, seeds' range)")
    ax.plot(risk.n, risk.ls_empirical, "s--", color="C2", label="least squares, same draws")
    ax.plot(risk.n, risk.least_squares, "k-", label="noise² b/(n−b−1)")
    ax.set(xscale="log", yscale="log", xlabel="training functions n")
    ax.set(ylabel="relative squared excess risk", title="calibration: a known answer")
    ax.legend(fontsize=7)
    return figure
