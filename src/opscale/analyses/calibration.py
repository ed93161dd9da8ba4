"""Analysis ``calibration``: measured excess risk against least squares' known answer.

The end-to-end check that the pipeline measures a rate correctly (the calibration study,
``config/studies/calibration.yaml``). For a linear operator of inputs spanned by b
functions with Gaussian coefficients and relative label noise ``problem.noise`` (sd
noise x RMS of the clean test outputs), least squares with an intercept (the networks
have output biases: they are affine estimators) has the expected relative squared excess
risk ``least_squares_risk`` = noise^2 (1/n + (1 + 1/n) b / (n - b - 2)) (Gaussian design:
the intercept's variance plus the slopes', with the inverse Wishart mean; without an
intercept it would be noise^2 b / (n - b - 1)), two-sided and exact. Tables:

``risk``
    per group and n: the best model size's median relative excess risk over seeds (the
    envelope min over N of the seeds' medians, with the seeds' range), least squares'
    fitted to the same draws (``ls_test_rel_mse``, median), the closed form, the ratio
    measured / closed form, and the *paired* ratio measured / least squares on the same
    draws (median over seeds, with their range): the draw's own reference, free of the
    closed form's averaging over designs;
``rate``
    per group: the data exponent of the unsquared excess risk, -slope of
    0.5 log(relative MSE) on log n over the upper half of the sampled n (each seed's
    envelope over N; OLS with one intercept per seed, cluster-robust by seed, t(S-1)),
    next to the closed form's own local slope over the same n (``risk_slope``, mean over
    the n), which tends to 1/2;
``theory``
    per group, the statements: (1) the trained models are at or above least squares on
    the same draws at every n (paired ratio >= ``SHRINKAGE_MARGIN``: an early-stopped
    linear model is a shrunk least squares, which may gain that little; far below would
    reveal a leak); (2) they approach it, the paired ratio at the largest n at most
    ``APPROACH``: a linear network should (it is a least-squares estimator trained by
    gradient descent), a ReLU network need not (it is not linear in the labels, and
    stays a constant factor above); (3) the measured exponent's interval holds the closed
    form's slope.

The study sweeps ``model.activation: [identity, relu]`` so that the linear network
checks the pipeline (all three must hold) and the ReLU network is measured against it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import xarray as xr

from opscale import cube as cubes
from opscale.config import get_path
from opscale.scaling.observations import DATA_AXIS, GROUPING_MODEL_AXES, grouping_axes
from opscale.tables import confidence_label, markdown_table, table

NAME = "calibration"
SHRINKAGE_MARGIN = 0.98  # paired ratio below this: better than least squares on its draw
APPROACH = 1.1  # paired ratio at the largest n at most this: it has approached it
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
    frame["least_squares"] = least_squares_risk(frame["noise"], frame["b"], frame["n"])
    frame["paired"] = frame["test_rel_mse"] / frame["ls_test_rel_mse"]
    frame["size"] = _size_column(frame, axes)
    return frame.reset_index(drop=True)


def least_squares_risk(noise, b, n):
    """Least squares' expected relative squared excess risk, with an intercept.

    noise^2 (1/n + (1 + 1/n) b / (n - b - 2)) for a Gaussian design of b coefficients
    centred at 0 (the prediction's variance at a new input: sigma^2/n for the mean, and
    (1 + 1/n) b / (n - b - 2) for the slopes, the mean of an inverse Wishart).
    """
    return noise**2 * (1 / n + (1 + 1 / n) * b / (n - b - 2))


def risk_slope(b, n, step: float = 1e-4):
    """The local slope -d log sqrt(least_squares_risk) / d log n at n (tends to 1/2)."""
    up, down = (np.log(least_squares_risk(1.0, b, n * np.exp(s))) for s in (step, -step))
    return -0.5 * (up - down) / (2 * step)


def _size_column(frame: pd.DataFrame, axes: dict) -> pd.Series:
    """A label of each member's model size (its model axes that are sizes, not groups)."""
    sizes = [
        name
        for name, path in axes.items()
        if path.startswith("model.") and path not in GROUPING_MODEL_AXES
    ]
    return cubes.group_labels(frame, sizes)


def risk_table(frame: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """Per group and n: the best model size's excess risk next to least squares'."""
    medians = frame.groupby([*groups, "n", "size"], sort=True).agg(
        trained=("test_rel_mse", "median"),
        trained_low=("test_rel_mse", "min"),
        trained_high=("test_rel_mse", "max"),
        ls_empirical=("ls_test_rel_mse", "median"),
        paired=("paired", "median"),
        paired_low=("paired", "min"),
        paired_high=("paired", "max"),
        least_squares=("least_squares", "first"),
        b=("b", "first"),
        noise=("noise", "first"),
    )
    best = medians.reset_index().sort_values("trained").groupby([*groups, "n"], sort=True).head(1)
    best = best.sort_values([*groups, "n"]).reset_index(drop=True)
    return best.assign(ratio=best["trained"] / best["least_squares"], group=_labels(best, groups))


def rate_table(frame: pd.DataFrame, groups: list[str], confidence: float) -> pd.DataFrame:
    """Per group: the data exponent of the unsquared excess risk vs the closed form's."""
    labels = _labels(frame, groups)
    rows = [
        {**mine[groups].iloc[0].to_dict(), "group": label, **_rate(mine, confidence)}
        for label, mine in frame.groupby(labels, sort=False)
    ]
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
        "closed_form": float(np.mean(risk_slope(b, n))),
        "n_from": int(n.min()),
        "n_to": int(n.max()),
        "seeds": seeds,
    }


def theory_table(risk: pd.DataFrame, rate: pd.DataFrame) -> pd.DataFrame:
    """The calibration's statements per group, each with its measured value and verdict."""
    rows, rates = [], rate.set_index("group")
    for label, mine in risk.groupby("group", sort=False):
        exponent = rates.loc[label]
        above = int((mine["paired"] >= SHRINKAGE_MARGIN).sum())
        last = mine.sort_values("n").iloc[-1]
        inside = exponent["exponent_low"] <= exponent["closed_form"] <= exponent["exponent_high"]
        ratios = f"paired ratio {mine['paired'].min():.3g} to {mine['paired'].max():.3g}"
        rows += [
            {
                "group": label,
                "statement": "at or above least squares on the same draws at every n "
                f"(median paired ratio >= {SHRINKAGE_MARGIN:g})",
                "measured": f"{above} of {len(mine)} n; {ratios}",
                "verdict": "holds" if above == len(mine) else "does not hold",
            },
            {
                "group": label,
                "statement": "approaches least squares: paired ratio at the largest n "
                f"<= {APPROACH:g}",
                "measured": f"{last['paired']:.3g} at n = {int(last['n'])}",
                "verdict": "holds"
                if last["paired"] <= APPROACH
                else f"does not hold: stays {last['paired']:.3g}x above",
            },
            {
                "group": label,
                "statement": "data exponent of the unsquared excess risk equals the closed "
                "form's local slope over the same n (which tends to 1/2)",
                "measured": f"{exponent['exponent']:.3f} [{exponent['exponent_low']:.3f}, "
                f"{exponent['exponent_high']:.3f}] vs {exponent['closed_form']:.3f}",
                "verdict": "holds" if inside else "does not hold",
            },
        ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- markdown
def markdown(fits: xr.Dataset) -> str:
    """fit.md's calibration sections: statements, the risk curve and the rate."""
    theory, risk, rate = (table(fits, f"{NAME}_{t}") for t in ("theory", "risk", "rate"))
    level = confidence_label(fits)
    sections = ["## Calibration: excess risk vs least squares (known answer)\n"]
    sections.append(
        markdown_table(
            ["group", "statement", "measured", "verdict"],
            [[r.group, r.statement, r.measured, r.verdict] for r in theory.itertuples()],
        )
    )
    sections.append("### Risk at each n (best model size)\n")
    header = ["group", "n", "model size", "measured (seeds' range)", "least squares, same draws"]
    header += ["closed form", "measured / closed form", "measured / least squares, paired"]
    body = [
        [r.group, r.n, r.size, f"{r.trained:.3g} ({r.trained_low:.3g}–{r.trained_high:.3g})"]
        + [f"{r.ls_empirical:.3g}", f"{r.least_squares:.3g}", f"{r.ratio:.3g}"]
        + [f"{r.paired:.3g} ({r.paired_low:.3g}–{r.paired_high:.3g})"]
        for r in risk.itertuples()
    ]
    sections.append(markdown_table(header, body))
    sections.append("### Rate of the unsquared excess risk\n")
    header = ["group", "n range", f"data exponent [{level} CI]", "closed form's local slope"]
    header.append("seeds")
    body = [
        [r.group, f"{r.n_from}–{r.n_to}"]
        + [f"{r.exponent:.3f} [{r.exponent_low:.3f}, {r.exponent_high:.3f}]"]
        + [f"{r.closed_form:.3f}", r.seeds]
        for r in rate.itertuples()
    ]
    sections.append(markdown_table(header, body))
    return "\n".join(sections)


def _labels(frame: pd.DataFrame, groups: list[str]) -> pd.Series:
    """Each row's group label from its grouping columns ("all" if there are none)."""
    return cubes.group_labels(frame, groups) if groups else pd.Series("all", index=frame.index)


# ---------------------------------------------------------------------------- figures
def calibration_risk(cube: xr.Dataset, fits: xr.Dataset) -> plt.Figure:
    """Measured relative excess risk (best model size) per group and least squares' vs n."""
    risk = table(fits, f"{NAME}_risk")
    figure, ax = plt.subplots(figsize=(5.2, 4))
    for colour, (label, mine) in enumerate(risk.groupby("group", sort=False)):
        style = {"color": f"C{colour}"}
        ax.fill_between(mine.n, mine.trained_low, mine.trained_high, alpha=0.2, **style)
        ax.plot(mine.n, mine.trained, "o-", label=f"{label} (median, seeds' range)", **style)
    ls = risk.groupby("n", as_index=False)[["ls_empirical", "least_squares"]].first()
    ax.plot(ls.n, ls.ls_empirical, "s--", color="k", alpha=0.6, label="least squares, same draws")
    ax.plot(ls.n, ls.least_squares, "k-", label="least squares, closed form")
    ax.set(xscale="log", yscale="log", xlabel="training functions n")
    ax.set(ylabel="relative squared excess risk", title="calibration: a known answer")
    ax.legend(fontsize=7)
    return figure
