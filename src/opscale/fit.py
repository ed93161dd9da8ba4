"""Scaling-law statistics of a study cube: robust joint law, OLS, model choice, backtest.

Every fit is on the **unsquared** test relative L2 error ``err`` (``fit.response``), in
log space, per *group* (one combination of the swept axes that are neither the data size
nor the model size, e.g. one input dimension). The theory's squared-error data rates are
converted to this error in :mod:`opscale.theory`.

Methods (statsmodels and scipy; nothing hand-optimised)
-------------------------------------------------------
robust
    The additive law ``err = E + A N^-alpha + B n^-beta`` (Hoffmann et al. 2022,
    approach 3; Besiroglu et al. 2024), fitted to ``log err`` with the Huber loss by
    ``scipy.optimize.least_squares`` (trf, bounds E >= 0, exponents in [0, 10]). Starts:
    a grid of exponents and floors, amplitudes from non-negative least squares
    (``scipy.optimize.nnls``); the ``fit.refine`` starts of lowest Huber cost are
    refined, the best end point wins. The Huber scale is 1.345 times the noise scale of
    log err within grid points (MAD of seeds about their point's mean), so the fit is
    ~95% efficient under Gaussian noise and robust to outlying models.
    95% intervals: percentile bootstrap with ``fit.bootstrap`` resamples of the seeds
    *within each grid point*, each resample refitted from the estimate. Deviations from
    the point's mean are inflated by sqrt(m/(m-1)) (m seeds at the point; Davison &
    Hinkley 1997, sec. 3.3), without which a resample of 3 seeds under-states the
    variance by a third. A grid point with one model contributes no resampling noise.
data, model, joint
    Log-log OLS (statsmodels): ``log err ~ log n + C(log N)``, ``~ log N + C(log n)``,
    ``~ log n + log N``, with cluster-robust standard errors clustered by seed. A seed's
    data draws are nested across n (smaller training sets are prefixes of larger ones),
    so clustering by seed *is* clustering by data draw. Intervals use Student's t with
    (clusters - 1) degrees of freedom; one seed falls back to HC1 and says so.
    **Pre-floor rule**: OLS uses only models whose error the robust law predicts to be
    at least ``fit.floor_factor`` (default 2) times its fitted floor E, i.e. the floor
    is at most half of the error. The rest are listed as excluded (from OLS only). If the
    rule would leave an axis with fewer than two values, OLS uses every model and says so.
    Without a robust fit the rule cannot be applied, and the table says so.
    OLS is the baseline: with a floor (or the other axis's term acting as one) its slopes
    are biased towards zero, which the robust law corrects.
comparison
    Alternatives by AIC and BIC (Gaussian likelihood of log err, least squares; the
    noise variance counts as a parameter): the log-linear product law (OLS), the
    additive power law without and with floor, and the logarithmic law of the general
    Lipschitz case, ``A (log x / log log x)^-c`` per axis, without and with floor
    (defined for x > e^e, where it decreases).
backtest
    For each axis: fit the robust law (and OLS) without the largest value of that axis
    (``fit.backtest_bootstrap`` resamples), predict the held-out models, and report the
    prediction error of the median over seeds and how many held-out models fall inside
    the 95% prediction interval (robust: bootstrap parameter draws plus resampled
    residuals; OLS: statsmodels' interval for a new observation).
allocation
    Training FLOPs are fitted as ``C = k N^a n^b`` (OLS on the stored counts). With the
    robust law, the compute-optimal (N, n) at budget C minimises ``A N^-alpha +
    B n(N, C)^-beta`` in closed form (as Hoffmann et al.), for every bootstrap draw
    (intervals), at budgets from the smallest trained model's cost to ten times the
    largest; ``extrapolated`` flags optima outside the trained grid.

A step that cannot run for a group (too few values on an axis, too few grid points for
the parameters, no FLOP counts, ...) is skipped and the reason is recorded in the
``note`` table of fit.nc and in fit.md; the others go on.

fit.nc holds one table per dimension: ``row`` (exponents; unprefixed variables), and
``parameter``, ``comparison``, ``backtest``, ``allocation``, ``curve``, ``excluded``,
``note`` (variables prefixed ``<table>_``; read one with :func:`table`), plus the
fitted errors ``fitted_<law>`` on the grid.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import xarray as xr
from scipy import optimize
from statsmodels.robust.scale import mad
from statsmodels.tools import eval_measures

from opscale import analyses, theory
from opscale import cube as cubes
from opscale.rng import numpy_rng

log = logging.getLogger(__name__)
ERROR = "test_rel_l2"
DATA_AXIS = "data.n_train"
CONFIDENCE = 0.95
# model axes that are not a model *size*: each value is fitted apart
GROUPING_MODEL_AXES = ("model.name", "model.activation", "model.linearized", "model.shared")
LAWS = {  # OLS laws, name: (regressors whose exponents are reported, fixed effect)
    "data": (["log_n"], "log_N"),
    "model": (["log_N"], "log_n"),
    "joint": (["log_n", "log_N"], None),
}
TERMS = ("log_N", "log_n")  # order of the terms of the additive laws
TERM_AXIS = {"log_n": "n (training functions)", "log_N": "N (parameters)"}
THEORY_AXIS = {"log_N": "model", "log_n": "data"}
TERM_NAMES = {"log_N": ("A", "alpha"), "log_n": ("B", "beta")}
START_EXPONENTS = (0.1, 0.3, 0.6, 1.0, 1.6)
START_FLOORS = (0.0, 0.5, 0.9)  # times the smallest error
HUBER_TUNING = 1.345
MAX_EXPONENT = 10.0
BUDGETS = 8


# ----------------------------------------------------------------------------- settings
def fit_settings(config: dict | None = None, overrides: dict | None = None) -> dict:
    """The ``fit:`` settings: schema defaults, then the study's, then `overrides`."""
    from opscale.config import load_schema

    schema = load_schema()["properties"]["fit"]["properties"]
    settings = {key: spec["default"] for key, spec in schema.items()}
    settings.update((config or {}).get("fit", {}))
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(settings) - set(schema)
    if unknown:
        raise ValueError(f"fit: unknown setting(s) {sorted(unknown)}; allowed: {sorted(schema)}")
    return settings


# -------------------------------------------------------------------------- entry points
def fit_cube(
    cube_path, fit_path, table_path, settings: dict | None = None, workers: int = 1
) -> xr.Dataset:
    """Fit a cube file; write fit.nc and the Markdown report fit.md.

    Parameters
    ----------
    cube_path, fit_path, table_path : path-like
        The study cube (input), fit.nc and fit.md (outputs).
    settings : dict, optional
        Overrides of the study's ``fit:`` settings (e.g. ``{"bootstrap": 200}``).
    workers : int
        Processes fitting groups in parallel (the result does not depend on it).
    """
    fits = fit(cubes.read(cube_path), settings, workers)
    cubes.write(fits, fit_path)
    with open(table_path, "w") as fh:
        fh.write(markdown(fits))
    return fits


def fit(cube: xr.Dataset, settings: dict | None = None, workers: int = 1) -> xr.Dataset:
    """Every fit of every group of a cube, as one dataset of tables (see module doc).

    Groups are independent (each bootstraps from its own named stream), so with
    ``workers > 1`` they are fitted in that many processes, with identical results.
    """
    config = json.loads(cube.attrs["config"])
    settings = fit_settings(config, settings)
    obs, excluded = observations(cube, settings["response"])
    report = Report()
    report.add("excluded", excluded_models(cube, settings["response"]))
    tasks = [
        (frame, label, theory.group_config(config, paths), settings)
        for label, frame, paths in groups(obs, cube)
    ]
    for group_report in _map(_fit_one_group, tasks if settings["scaling"] else [], workers):
        report.merge(group_report)
    for name in settings["analyses"]:
        for table_name, frame in analyses.load(name).analyse(cube, settings).items():
            report.add(f"{name}_{table_name}", frame.to_dict("records"))
    return _dataset(report, cube, excluded, settings)


def _fit_one_group(task: tuple) -> Report:
    """``fit_group`` of one (frame, label, config, settings) into its own report."""
    report = Report()
    fit_group(*task, report)
    return report


def _map(function, tasks: list, workers: int) -> list:
    """`function` over `tasks`, in order, in up to `workers` processes."""
    if workers <= 1 or len(tasks) <= 1:
        return [function(task) for task in tasks]
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(tasks))) as pool:
        return list(pool.map(function, tasks))


@dataclass
class Report:
    """Rows of every table, and the fitted errors of every law, as they accumulate."""

    tables: dict = field(default_factory=dict)
    fitted: list = field(default_factory=list)

    def add(self, name: str, rows: list[dict]) -> None:
        self.tables.setdefault(name, []).extend(rows)

    def merge(self, other: Report) -> None:
        """Append another report's rows and fitted errors (a group fitted elsewhere)."""
        for name, rows in other.tables.items():
            self.add(name, rows)
        self.fitted.extend(other.fitted)

    def note(self, group: str, step: str, reason: str) -> None:
        log.info("%s, %s: %s", group, step, reason)
        self.add("note", [{"group": group, "step": step, "reason": reason}])


# -------------------------------------------------------------------- observations
def observations(cube: xr.Dataset, response: str = ERROR) -> tuple[pd.DataFrame, dict]:
    """One row per trained model with log n, log N, log error; and exclusion counts."""
    axes = json.loads(cube.attrs.get("axes", "{}"))
    names = [v for v in (response, "n_params", "train_flops", "status") if v in cube]
    df = cube[names].to_dataframe().reset_index()
    config = json.loads(cube.attrs["config"])
    n_name = next((name for name, path in axes.items() if path == DATA_AXIS), None)
    df["n"] = df[n_name] if n_name else config["data"]["n_train"]
    status = df["status"].astype(int)
    excluded = {
        "diverged": int((status == cubes.DIVERGED).sum()),
        "missing": int((status == cubes.MISSING).sum()),
    }
    df = df[(status == cubes.OK) & np.isfinite(df[response]) & (df[response] > 0)].copy()
    df["err"] = df[response]
    df["log_err"], df["log_n"] = np.log(df["err"]), np.log(df["n"].astype(float))
    df["log_N"] = np.log(df["n_params"].astype(float))
    df["point"] = df.groupby(list(axes) or ["n"], sort=False).ngroup()
    df["model"] = _labels(df, list(axes))
    if any(excluded.values()):
        log.warning("excluded from the fits: %s", excluded)
    return df, excluded


def excluded_models(cube: xr.Dataset, response: str = ERROR) -> list[dict]:
    """Models left out of every fit, with the reason (diverged, missing, error <= 0)."""
    df = cube[[response, "status"]].to_dataframe().reset_index()
    axes = list(json.loads(cube.attrs.get("axes", "{}")))
    reasons = np.select(
        [df["status"] == cubes.DIVERGED, df["status"] == cubes.MISSING],
        ["diverged", "missing (not trained)"],
        default="error not finite and positive",
    )
    bad = (df["status"] != cubes.OK) | ~(np.isfinite(df[response]) & (df[response] > 0))
    return [
        {"group": "all", "model": model, "fits": "all", "reason": reason}
        for model, reason in zip(_labels(df[bad], axes), reasons[bad.to_numpy()], strict=True)
    ]


def _labels(df: pd.DataFrame, names: list[str]) -> pd.Series:
    """A readable label of every model: ``width=10, n_train=25, seed=0``."""
    parts = [f"{k}=" + df[k].astype(str) for k in [*names, "seed"]]
    return pd.concat(parts, axis=1).agg(", ".join, axis=1) if len(df) else pd.Series([], dtype=str)


def _plain(value):
    """A NumPy scalar as a plain Python value (for labels and config paths)."""
    return value.item() if hasattr(value, "item") else value


def grouping_axes(cube: xr.Dataset) -> list[str]:
    """Swept axes that are neither the data size nor a model size: fitted separately."""
    axes = json.loads(cube.attrs.get("axes", "{}"))
    return [
        name
        for name, path in axes.items()
        if path != DATA_AXIS and (not path.startswith("model.") or path in GROUPING_MODEL_AXES)
    ]


def groups(obs: pd.DataFrame, cube: xr.Dataset):
    """Yield (label, observations, {dotted path: value}) for every group of the cube."""
    by = grouping_axes(cube)
    axes = json.loads(cube.attrs.get("axes", "{}"))
    if not by:
        yield "all", obs, {}
        return
    for key, frame in obs.groupby(by, sort=False):
        values = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        label = ", ".join(f"{k}={_plain(v)}" for k, v in values.items())
        yield label, frame, {axes[k]: _plain(v) for k, v in values.items()}


def varying_terms(frame: pd.DataFrame, minimum: int = 2) -> tuple[str, ...]:
    """The terms (log_N, log_n) with at least `minimum` distinct values in `frame`."""
    return tuple(t for t in TERMS if frame[t].nunique() >= minimum)


# ----------------------------------------------------------------------- additive laws
@dataclass(frozen=True)
class AdditiveLaw:
    """``err = [E +] sum_k A_k g(x_k)^-a_k`` over `terms`, in log space.

    ``shape`` "power": g(x) = x; "logarithmic": g(x) = log x / log log x. Parameters
    ``theta`` = ([E], log A_1, a_1, log A_2, a_2, ...), shape (p,) or (draws, p).
    """

    terms: tuple[str, ...]
    shape: str = "power"
    floor: bool = True

    @property
    def n_params(self) -> int:
        return int(self.floor) + 2 * len(self.terms)

    @property
    def names(self) -> list[str]:
        return ["E"] * self.floor + [n for t in self.terms for n in TERM_NAMES[t]]

    @property
    def formula(self) -> str:
        g = {"power": "{x}", "logarithmic": "(log {x}/log log {x})"}[self.shape]
        parts = [f"{a}·{g.format(x=t[4:])}^-{e}" for t in self.terms for a, e in [TERM_NAMES[t]]]
        return " + ".join(["E"] * self.floor + parts)

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """log g(x_k) of every model, shape (models, terms)."""
        logs = frame[list(self.terms)].to_numpy(float)
        return logs if self.shape == "power" else np.log(logs / np.log(logs))

    def split(self, theta: np.ndarray):
        """(E, log A, a) with shapes (...,), (..., terms), (..., terms)."""
        theta = np.asarray(theta, float)
        floor = theta[..., 0] if self.floor else np.zeros(theta.shape[:-1])
        rest = theta[..., int(self.floor) :]
        return floor, rest[..., 0::2], rest[..., 1::2]

    def components(self, theta, X):
        """Floor (..., 1) and term values (..., models, terms) of the law at X."""
        floor, log_amp, expo = self.split(theta)
        terms = np.exp(log_amp[..., None, :] - expo[..., None, :] * X)
        return floor[..., None], terms

    def log_predict(self, theta, X) -> np.ndarray:
        """log err predicted at X (models, terms), shape (..., models)."""
        floor, terms = self.components(theta, X)
        return np.log(floor + terms.sum(-1))

    def jacobian(self, theta, X) -> np.ndarray:
        """d log err / d theta, shape (models, p)."""
        floor, terms = self.components(theta, X)
        jac = np.empty((len(X), self.n_params))
        first = int(self.floor)
        jac[:, :first] = 1.0
        jac[:, first::2] = terms
        jac[:, first + 1 :: 2] = -X * terms
        return jac / (floor + terms.sum(-1))[:, None]

    def bounds(self, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low = [0.0] * self.floor + [-50.0, 0.0] * len(self.terms)
        high = [float(err.max())] * self.floor + [50.0, MAX_EXPONENT] * len(self.terms)
        return np.array(low), np.array(high)

    def starts(self, X: np.ndarray, err: np.ndarray) -> np.ndarray:
        """Grid of starts: exponents x floors, amplitudes by NNLS; shape (starts, p).

        The NNLS runs on the mean error of every distinct x (grid point), not every model.
        """
        X, where = np.unique(X, axis=0, return_inverse=True)
        err = np.bincount(where.ravel(), err) / np.bincount(where.ravel())
        floors = [f * err.min() for f in START_FLOORS] if self.floor else [0.0]
        grid = np.array(np.meshgrid(*[START_EXPONENTS] * len(self.terms))).reshape(
            len(self.terms), -1
        )
        starts = [self._start(X, err, floor, e) for floor in floors for e in grid.T]
        low, high = self.bounds(err)
        return np.clip(np.array(starts), low, high)

    def _start(self, X, err, floor, exponents) -> list[float]:
        basis = np.exp(-X * exponents)
        amplitudes, _ = optimize.nnls(basis, np.maximum(err - floor, 0.0))
        amplitudes = np.maximum(amplitudes, 1e-6 * float(np.median(err)))
        pairs = np.column_stack([np.log(amplitudes), exponents]).ravel()
        return [floor] * self.floor + list(pairs)


@dataclass
class LawFit:
    """A fitted additive law: estimate, bootstrap draws and what it was fitted on."""

    law: AdditiveLaw
    theta: np.ndarray
    draws: np.ndarray  # (resamples, p); empty when not bootstrapped
    scale: float  # Huber scale, log units
    residuals: np.ndarray
    starts: int

    def interval(self, values: np.ndarray, confidence: float) -> tuple[np.ndarray, ...]:
        """Percentile interval over the draws of `values` (draws, ...)."""
        tail = 100 * (1 - confidence) / 2
        return tuple(np.percentile(values, [tail, 100 - tail], axis=0))


def noise_scale(frame: pd.DataFrame) -> float:
    """Noise of log err: MAD of the models about their grid point's mean (log units)."""
    sizes = frame.groupby("point")["log_err"].transform("size").to_numpy()
    deviations = (frame["log_err"] - frame.groupby("point")["log_err"].transform("mean")).to_numpy()
    replicated = sizes > 1
    if replicated.sum() < 2:
        return 0.1  # no replicates: a tenth of an e-fold, documented default
    inflation = np.sqrt(sizes[replicated] / (sizes[replicated] - 1))
    return max(float(mad(deviations[replicated] * inflation)), 1e-6)


def least_squares(law: AdditiveLaw, X, y, x0, scale: float | None):
    """One scipy least_squares fit of log err (Huber when `scale`, else plain)."""
    low, high = law.bounds(np.exp(y))
    return optimize.least_squares(
        lambda theta: law.log_predict(theta, X) - y,
        np.clip(x0, low, high),
        jac=lambda theta: law.jacobian(theta, X),
        bounds=(low, high),
        loss="huber" if scale else "linear",
        f_scale=scale or 1.0,
        x_scale="jac",
        method="trf",
    )


def best_fit(law: AdditiveLaw, X, y, scale: float | None, refine: int):
    """The best least_squares end point from the `refine` best starts of the grid."""
    starts = law.starts(X, np.exp(y))
    costs = _cost(law.log_predict(starts, X) - y, scale)
    chosen = starts[np.argsort(costs)[:refine]]
    results = [least_squares(law, X, y, x0, scale) for x0 in chosen]
    return min(results, key=lambda r: r.cost), len(starts)


def _cost(residuals: np.ndarray, scale: float | None) -> np.ndarray:
    """least_squares' objective 0.5 sum rho((r/scale)^2) scale^2 over the last axis."""
    if not scale:
        return 0.5 * (residuals**2).sum(-1)
    z = (residuals / scale) ** 2
    return 0.5 * scale**2 * np.where(z <= 1, z, 2 * np.sqrt(z) - 1).sum(-1)


def bootstrap_targets(frame: pd.DataFrame, resamples: int, rng) -> np.ndarray:
    """Resampled log errors: seeds redrawn within each grid point, shape (resamples, models).

    Deviations from the point mean are inflated by sqrt(m/(m-1)) (m models at the point).
    """
    point = frame["point"].to_numpy()
    order = np.argsort(point, kind="stable")
    codes, first, sizes = np.unique(point[order], return_index=True, return_counts=True)
    where = np.searchsorted(codes, point)
    y = frame["log_err"].to_numpy()
    means = np.bincount(where, y) / sizes
    inflation = np.sqrt(sizes / np.maximum(sizes - 1, 1))
    deviations = (y - means[where])[order]
    picks = first[where] + rng.integers(0, sizes[where], size=(resamples, len(y)))
    return means[where] + inflation[where] * deviations[picks]


def fit_law(
    frame, law: AdditiveLaw, settings: dict, rng=None, *, robust: bool = True, resamples=None
) -> LawFit:
    """Fit `law` to a group's models; bootstrap it (``resamples`` or ``fit.bootstrap``
    times) when `rng` is given.

    Returns
    -------
    LawFit
        ``theta`` (p,), ``draws`` (resamples, p) and log residuals (models,).
    """
    X, y = law.design(frame), frame["log_err"].to_numpy()
    scale = HUBER_TUNING * noise_scale(frame) if robust else None
    result, n_starts = best_fit(law, X, y, scale, settings["refine"])
    draws = np.empty((0, law.n_params))
    resamples = settings["bootstrap"] if resamples is None else resamples
    if rng is not None and resamples > 0:
        targets = bootstrap_targets(frame, resamples, rng)
        draws = np.array([least_squares(law, X, t, result.x, scale).x for t in targets])
    return LawFit(law, result.x, draws, scale or 0.0, result.fun, n_starts)


def identifiable(frame: pd.DataFrame, law: AdditiveLaw) -> str | None:
    """Why `law` cannot be fitted to `frame` (None if it can)."""
    for term in law.terms:
        if frame[term].nunique() < 3:
            return f"{TERM_AXIS[term]} has {frame[term].nunique()} value(s); the law needs 3"
    points = frame["point"].nunique()
    if points <= law.n_params:
        return f"{points} grid points for {law.n_params} parameters; needs more points"
    if law.shape == "logarithmic" and (frame[list(law.terms)].min() <= 1.0).any():
        return "logarithmic law needs every x > e^e (where log x/log log x decreases)"
    return None


# ----------------------------------------------------------------------------- a group
def fit_group(frame, group: str, config: dict, settings: dict, report: Report) -> None:
    """Every step for one group, each skipped (with a note) when it cannot run."""
    terms = varying_terms(frame)
    if not terms:
        report.note(group, "all fits", "neither N nor n varies: nothing to fit")
        return
    law = AdditiveLaw(terms)
    reason = identifiable(frame, law)
    robust = None
    if reason:
        report.note(group, "robust law", reason)
    else:
        rng = numpy_rng(settings["seed"], "fit", "bootstrap", group)
        robust = fit_law(frame, law, settings, rng)
        report.add("row", robust_rows(robust, frame, group, settings))
        report.add("parameter", parameter_rows(robust, group, settings))
        report.add("curve", curve_rows(robust, frame, group, settings))
        report.fitted.append(frame.assign(law="robust", fitted=_fitted_values(robust, frame)))
    ols_fits(frame, group, robust, settings, report)
    report.add("comparison", comparison_rows(frame, group, settings, report))
    report.add("backtest", backtest_rows(frame, group, settings, report))
    report.add("allocation", allocation_rows(frame, group, robust, settings, report))
    _attach_theory(report, group, config)


def _fitted_values(law_fit: LawFit, frame) -> np.ndarray:
    return np.exp(law_fit.law.log_predict(law_fit.theta, law_fit.law.design(frame)))


def robust_rows(law_fit: LawFit, frame, group: str, settings: dict) -> list[dict]:
    """Exponent rows of the robust law (bootstrap percentile intervals)."""
    law, conf = law_fit.law, settings["confidence"]
    _, _, expo = law.split(law_fit.draws if len(law_fit.draws) else law_fit.theta[None])
    low, high = law_fit.interval(expo, conf)
    y = frame["log_err"].to_numpy()
    method = (
        f"Huber (scale {law_fit.scale:.3g}) on log err, best of {law_fit.starts} starts; "
        f"{len(law_fit.draws)} bootstrap resamples of seeds within grid points"
    )
    _, _, estimate = law.split(law_fit.theta)
    return [
        {
            "group": group,
            "law": "robust",
            "term": term,
            "exponent": float(estimate[k]),
            "std_err": float(expo[:, k].std(ddof=1)) if len(expo) > 1 else math.nan,
            "ci_low": float(low[k]),
            "ci_high": float(high[k]),
            "n_obs": len(frame),
            "n_clusters": frame["seed"].nunique(),
            "r_squared": 1 - float(law_fit.residuals @ law_fit.residuals) / _tss(y),
            "method": method,
        }
        for k, term in enumerate(law.terms)
    ]


def _tss(y: np.ndarray) -> float:
    return float(((y - y.mean()) ** 2).sum()) or math.nan


def parameter_rows(law_fit: LawFit, group: str, settings: dict) -> list[dict]:
    """Every parameter of the robust law (E, A, alpha, B, beta) with its interval."""
    law = law_fit.law
    natural = _natural(law, law_fit.theta[None])[0]
    draws = _natural(law, law_fit.draws) if len(law_fit.draws) else natural[None]
    low, high = law_fit.interval(draws, settings["confidence"])
    return [
        {
            "group": group,
            "law": "robust",
            "name": name,
            "estimate": float(natural[k]),
            "ci_low": float(low[k]),
            "ci_high": float(high[k]),
        }
        for k, name in enumerate(law.names)
    ]


def _natural(law: AdditiveLaw, theta: np.ndarray) -> np.ndarray:
    """Parameters with amplitudes as A (not log A), shape (draws, p)."""
    natural = np.array(theta, float, copy=True)
    natural[:, int(law.floor) :: 2] = np.exp(natural[:, int(law.floor) :: 2])
    return natural


def curve_rows(law_fit: LawFit, frame, group: str, settings: dict, points: int = 40):
    """The law and its band on a fine grid along each axis, one curve per other value."""
    rows = []
    for term in law_fit.law.terms:
        other = next((t for t in law_fit.law.terms if t != term), None)
        for other_value in sorted(frame[other].unique()) if other else [None]:
            rows += _curve(law_fit, frame, term, other, other_value, group, settings, points)
    return rows


def _curve(law_fit, frame, term, other, other_value, group, settings, points):
    x = np.linspace(frame[term].min(), frame[term].max(), points)
    grid = pd.DataFrame({term: x, **({other: other_value} if other else {})})
    X = law_fit.law.design(grid)
    fitted = np.exp(law_fit.law.log_predict(law_fit.theta, X))
    draws = law_fit.draws if len(law_fit.draws) else law_fit.theta[None]
    low, high = law_fit.interval(np.exp(law_fit.law.log_predict(draws, X)), settings["confidence"])
    name = {"log_N": "N", "log_n": "n"}
    return [
        {
            "group": group,
            "x_axis": name[term],
            "other": f"{name[other]} = {math.exp(other_value):,.0f}" if other else "",
            "x": float(math.exp(xi)),
            "fitted": float(f),
            "low": float(lo),
            "high": float(hi),
        }
        for xi, f, lo, hi in zip(x, fitted, low, high, strict=True)
    ]


# ----------------------------------------------------------------------------------- OLS
def ols_fits(frame, group: str, robust: LawFit | None, settings: dict, report: Report):
    """The OLS laws on the pre-floor region (see module doc); rows and fitted values."""
    kept, rule = pre_floor(frame, robust, settings, group, report)
    for law in applicable_laws(kept):
        result = ols(kept, law)
        rows = estimates(result, law, {"group": group}, kept)
        report.add("row", [{**r, "method": f"{r['method']}; {rule}"} for r in rows])
        report.fitted.append(frame.assign(law=law, fitted=_ols_predict(result, kept, frame, law)))


def pre_floor(frame, robust: LawFit | None, settings: dict, group: str, report: Report):
    """Models in the pre-floor region (robust prediction >= floor_factor x floor)."""
    if robust is None or not robust.law.floor:
        return frame, "pre-floor rule not applied (no robust fit)"
    factor = settings["floor_factor"]
    floor = float(robust.law.split(robust.theta)[0])
    inside = _fitted_values(robust, frame) >= factor * floor
    kept = frame[inside]
    if len(varying_terms(kept)) < len(varying_terms(frame)):
        return frame, f"all models (the pre-floor region, err >= {factor:g} E, is too small)"
    reason = f"floor region: predicted err < {factor:g} x fitted floor E = {floor:.3g}"
    report.add(
        "excluded",
        [
            {"group": group, "model": model, "fits": "OLS", "reason": reason}
            for model in frame.loc[~inside, "model"]
        ],
    )
    return kept, f"pre-floor region: {int(inside.sum())} of {len(frame)} models"


def applicable_laws(group: pd.DataFrame) -> list[str]:
    """OLS laws whose regressors vary in this group."""
    varies = set(varying_terms(group))
    return [law for law, (terms, _) in LAWS.items() if varies >= set(terms)]


def ols(group: pd.DataFrame, law: str):
    """OLS of log error on the law's regressors, cluster-robust by seed."""
    model = smf.ols(_formula(group, law), data=group)
    if group["seed"].nunique() < 2:
        return model.fit(cov_type="HC1")
    return model.fit(cov_type="cluster", cov_kwds={"groups": group["seed"].to_numpy()}, use_t=True)


def _formula(group: pd.DataFrame, law: str) -> str:
    terms, fixed = LAWS[law]
    rhs = " + ".join(terms)
    if fixed and group[fixed].nunique() > 1:
        rhs += f" + C({fixed})"
    return f"log_err ~ {rhs}"


def _ols_predict(result, kept, frame, law: str) -> np.ndarray:
    """Fitted errors on every model of the group (NaN where a fixed level was unseen)."""
    fixed = LAWS[law][1]
    seen = frame[fixed].isin(kept[fixed].unique()) if fixed else np.ones(len(frame), bool)
    fitted = np.full(len(frame), np.nan)
    fitted[np.asarray(seen)] = np.exp(result.predict(frame[np.asarray(seen)]))
    return fitted


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


# ----------------------------------------------------------------------- AIC/BIC
def candidate_laws(terms: tuple[str, ...]) -> dict[str, AdditiveLaw]:
    """The additive alternatives compared with the product (log-linear) law."""
    return {
        "power": AdditiveLaw(terms, "power", floor=False),
        "power + floor": AdditiveLaw(terms, "power", floor=True),
        "logarithmic": AdditiveLaw(terms, "logarithmic", floor=False),
        "logarithmic + floor": AdditiveLaw(terms, "logarithmic", floor=True),
    }


def comparison_rows(frame, group: str, settings: dict, report: Report) -> list[dict]:
    """AIC and BIC of every candidate law that can be fitted (Gaussian on log err)."""
    terms = varying_terms(frame)
    product = smf.ols(f"log_err ~ {' + '.join(terms)}", data=frame).fit()
    rows = [_information(group, "product (log-linear)", _product_formula(terms), product)]
    for name, law in candidate_laws(terms).items():
        reason = identifiable(frame, law)
        if reason:
            report.note(group, f"comparison: {name}", reason)
            continue
        residuals = fit_law(frame, law, settings, robust=False).residuals
        rows.append(_information(group, name, law.formula, None, residuals, law.n_params))
    best_aic, best_bic = min(r["aic"] for r in rows), min(r["bic"] for r in rows)
    return [{**r, "delta_aic": r["aic"] - best_aic, "delta_bic": r["bic"] - best_bic} for r in rows]


def _product_formula(terms) -> str:
    return "C·" + "·".join(f"{t[4:]}^-{TERM_NAMES[t][1]}" for t in terms)


def _information(group, name, formula, result=None, residuals=None, k=0) -> dict:
    """AIC/BIC row; parameters include the noise variance."""
    if result is not None:
        residuals, k = np.asarray(result.resid), int(result.df_model) + 1
    n, rss = len(residuals), float(residuals @ residuals)
    llf = -n / 2 * (math.log(2 * math.pi * rss / n) + 1)
    return {
        "group": group,
        "law": name,
        "formula": formula,
        "params": k + 1,
        "n_obs": n,
        "rss": rss,
        "aic": float(eval_measures.aic(llf, n, k + 1)),
        "bic": float(eval_measures.bic(llf, n, k + 1)),
    }


# ------------------------------------------------------------------------------ backtest
def backtest_rows(frame, group: str, settings: dict, report: Report) -> list[dict]:
    """Hold out the largest value of each axis; predict it from the rest (both methods)."""
    rows = []
    for term in varying_terms(frame):
        held = frame[term] == frame[term].max()
        train, test = frame[~held], frame[held]
        law = AdditiveLaw(varying_terms(train))
        reason = identifiable(train, law) if term in law.terms else "axis left with one value"
        if reason:
            report.note(group, f"backtest: hold out the largest {TERM_AXIS[term]}", reason)
            continue
        rng = numpy_rng(settings["seed"], "fit", "backtest", group, term)
        rows += _held_out(
            train, test, term, group, "robust", _robust_interval(train, test, law, settings, rng)
        )
        rows += _held_out(
            train, test, term, group, "joint OLS", _ols_interval(train, test, settings)
        )
    return rows


def _robust_interval(train, test, law, settings, rng) -> tuple[np.ndarray, ...]:
    """Prediction and prediction interval of log err (bootstrap draws + residuals)."""
    law_fit = fit_law(train, law, settings, rng, resamples=max(settings["backtest_bootstrap"], 1))
    X = law.design(test)
    draws = law.log_predict(law_fit.draws, X)  # (resamples, models)
    inflation = math.sqrt(len(train) / max(len(train) - law.n_params, 1))
    noise = rng.choice(law_fit.residuals * inflation, size=draws.shape)
    low, high = law_fit.interval(draws + noise, settings["confidence"])
    return law.log_predict(law_fit.theta, X), low, high


def _ols_interval(train, test, settings) -> tuple[np.ndarray, ...]:
    """Log-linear OLS prediction with statsmodels' interval for a new observation."""
    result = smf.ols(f"log_err ~ {' + '.join(varying_terms(train))}", data=train).fit()
    frame = result.get_prediction(test).summary_frame(alpha=1 - settings["confidence"])
    return (
        frame["mean"].to_numpy(),
        frame["obs_ci_lower"].to_numpy(),
        frame["obs_ci_upper"].to_numpy(),
    )


def _held_out(train, test, term, group, method, interval) -> list[dict]:
    """One row per held-out grid point: median measured vs predicted, models inside PI."""
    predicted, low, high = interval
    test = test.assign(pred=predicted, low=low, high=high)
    test = test.assign(inside=(test["log_err"] >= test["low"]) & (test["log_err"] <= test["high"]))
    rows = []
    for (log_N, log_n), point in test.groupby(["log_N", "log_n"], sort=True):
        measured, pred = float(point["err"].median()), float(np.exp(point["pred"].iloc[0]))
        rows.append(
            {
                "group": group,
                "held_out": TERM_AXIS[term],
                "method": method,
                "N": round(math.exp(log_N)),
                "n": round(math.exp(log_n)),
                "measured": measured,
                "predicted": pred,
                "pi_low": float(np.exp(point["low"].iloc[0])),
                "pi_high": float(np.exp(point["high"].iloc[0])),
                "rel_error": pred / measured - 1,
                "inside": int(point["inside"].sum()),
                "models": len(point),
                "train_models": len(train),
            }
        )
    return rows


# ---------------------------------------------------------------------------- allocation
def flops_law(frame):
    """OLS of log train_flops on log N and log n: C = k N^a n^b."""
    data = frame.assign(log_C=np.log(frame["train_flops"].astype(float)))
    return smf.ols("log_C ~ log_N + log_n", data=data).fit()


def allocation_rows(frame, group, robust: LawFit | None, settings, report) -> list[dict]:
    """Compute-optimal (N, n) per budget with bootstrap intervals (see module doc)."""
    reason = _allocation_reason(frame, robust)
    if reason:
        report.note(group, "compute-optimal allocation", reason)
        return []
    flops = flops_law(frame)
    report.add("parameter", _flops_parameters(flops, group, settings))
    budgets = np.geomspace(frame["train_flops"].min(), 10 * frame["train_flops"].max(), BUDGETS)
    best = optimal_allocation(robust.law, robust.theta[None], flops.params, budgets)
    draws = robust.draws if len(robust.draws) else robust.theta[None]
    low, high = robust.interval(
        optimal_allocation(robust.law, draws, flops.params, budgets), settings["confidence"]
    )
    return [
        _allocation_row(frame, group, budget, best[0, i], low[i], high[i])
        for i, budget in enumerate(budgets)
    ]


def _allocation_reason(frame, robust) -> str | None:
    if "train_flops" not in frame or not (frame["train_flops"] > 0).all():
        return "the cube has no training FLOP counts"
    if robust is None or len(robust.law.terms) < 2:
        return "needs the robust law in both N and n"
    return None


def optimal_allocation(law: AdditiveLaw, theta, flops_params, budgets) -> np.ndarray:
    """(N*, n*, err*) at each budget, closed form; shape (draws, budgets, 3).

    With C = k N^a n^b, n = (C/(k N^a))^(1/b), and err = E + A N^-alpha + B n^-beta is
    minimal where N^(alpha+g) = alpha A / (g B (C/k)^(-beta/b)), g = a beta / b.
    """
    floor, log_amp, expo = law.split(theta)
    log_k, a, b = flops_params["Intercept"], flops_params["log_N"], flops_params["log_n"]
    alpha, beta = expo[:, :1], expo[:, 1:]
    A, B = np.exp(log_amp[:, :1]), np.exp(log_amp[:, 1:])
    log_budget = np.log(budgets)[None, :] - log_k
    g = a * beta / b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_N = (np.log(alpha * A / (g * B)) + beta / b * log_budget) / (alpha + g)
        log_n = (log_budget - a * log_N) / b
        err = floor[:, None] + A * np.exp(-alpha * log_N) + B * np.exp(-beta * log_n)
    return np.stack([np.exp(log_N), np.exp(log_n), err], axis=-1)


def _allocation_row(frame, group, budget, best, low, high) -> dict:
    points = frame.groupby(["n_params", "n"]).agg(
        flops=("train_flops", "median"), err=("err", "median")
    )
    affordable = points[points["flops"] <= budget]
    measured = affordable["err"].idxmin() if len(affordable) else (math.nan, math.nan)
    inside = (
        frame["n_params"].min() <= best[0] <= frame["n_params"].max()
        and frame["n"].min() <= best[1] <= frame["n"].max()
    )
    return {
        "group": group,
        "budget": float(budget),
        **{f"{k}_opt": float(best[i]) for i, k in enumerate(("N", "n", "err"))},
        **{f"{k}_low": float(low[i]) for i, k in enumerate(("N", "n", "err"))},
        **{f"{k}_high": float(high[i]) for i, k in enumerate(("N", "n", "err"))},
        "extrapolated": "no" if inside else "yes",
        "best_measured_N": float(measured[0]),
        "best_measured_n": float(measured[1]),
        "best_measured_err": float(affordable["err"].min()) if len(affordable) else math.nan,
    }


def _flops_parameters(flops, group: str, settings: dict) -> list[dict]:
    ci = flops.conf_int(alpha=1 - settings["confidence"])
    names = {"Intercept": "log k (FLOPs)", "log_N": "a (FLOPs ~ N^a)", "log_n": "b (FLOPs ~ n^b)"}
    return [
        {
            "group": group,
            "law": "flops",
            "name": label,
            "estimate": float(flops.params[term]),
            "ci_low": float(ci.loc[term, 0]),
            "ci_high": float(ci.loc[term, 1]),
        }
        for term, label in names.items()
    ]


# ---------------------------------------------------------------------------- theory
def _attach_theory(report: Report, group: str, config: dict) -> None:
    """Add the theory's exponent and the verdict to the group's exponent rows."""
    try:
        params = theory.study_parameters(config)
        by_axis = {p.axis: p for p in theory.predictions(config)}
    except (ValueError, KeyError) as error:  # a cube whose config no longer resolves
        report.note(group, "theory", f"no prediction: the problem does not resolve ({error})")
        params, by_axis = {"b": None, "d2": math.nan}, {}
    for row in report.tables.get("row", []):
        if row["group"] != group or "verdict" in row:
            continue
        prediction = by_axis.get(THEORY_AXIS[row["term"]])
        row.update(
            intrinsic_dim=math.nan if params["b"] is None else float(params["b"]),
            output_dim=float(params["d2"]),
            theory=prediction.theory if prediction else "",
            theory_exponent=prediction.exponent if prediction else math.nan,
            theory_formula=prediction.formula if prediction else "no prediction",
            verdict=theory.verdict(row["ci_low"], row["ci_high"], prediction.exponent)
            if prediction
            else "no prediction",
        )


# ---------------------------------------------------------------------------- outputs
TABLE_ORDER = ("parameter", "comparison", "backtest", "allocation", "curve", "excluded", "note")


def _dataset(report: Report, cube: xr.Dataset, excluded: dict, settings: dict) -> xr.Dataset:
    ds = _table_dataset(pd.DataFrame(report.tables.get("row", [])), "row", prefix="")
    extra = [name for name in report.tables if name not in (*TABLE_ORDER, "row")]
    for name in (*TABLE_ORDER, *extra):  # the fit's tables, then the analyses'
        ds = ds.merge(_table_dataset(pd.DataFrame(report.tables.get(name, [])), name))
    for law, grid in _fitted_grids(report.fitted, cube):
        ds[f"fitted_{law}"] = grid.assign_attrs(
            long_name=f"{settings['response']} predicted by the {law} law", units="1"
        )
    ds.attrs.update(
        config=cube.attrs["config"],
        axes=cube.attrs.get("axes", "{}"),
        excluded=json.dumps(excluded),
        confidence=settings["confidence"],
        settings=json.dumps(settings, sort_keys=True),
        response=f"log({settings['response']}), unsquared relative L2 error",
    )
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
    prefix = "" if name == "row" else f"{name}_"
    names = [v for v in fits.data_vars if fits[v].dims == (name,)]
    frame = pd.DataFrame({v[len(prefix) :]: fits[v].values for v in names})
    return frame


def _fitted_grids(fitted: list, cube: xr.Dataset):
    """(law, fitted error on the sweep grid) for every law fitted somewhere."""
    axes = list(json.loads(cube.attrs.get("axes", "{}")))
    if not fitted or not axes:
        return []
    frames = pd.concat(fitted)
    return [
        (law, f.groupby(axes)["fitted"].first().to_xarray()) for law, f in frames.groupby("law")
    ]


# ---------------------------------------------------------------------------- markdown
def markdown(fits: xr.Dataset) -> str:
    """fit.md: headline theory table, every estimate, comparison, backtest, allocation."""
    config = json.loads(fits.attrs["config"])
    settings = json.loads(fits.attrs.get("settings", "{}"))
    scaling = _scaling_sections(fits, config) if settings.get("scaling", True) else []
    studies = [analyses.load(name).markdown(fits) for name in settings.get("analyses", [])]
    if not scaling:
        scaling = [f"# Analyses: {config.get('study', '?')}\n", _notes(fits)]
    return "\n".join(s for s in [*scaling, *studies] if s)


def _scaling_sections(fits: xr.Dataset, config: dict) -> list[str]:
    """The scaling-law sections of fit.md."""
    return [
        f"# Scaling-law fit: {config.get('study', '?')}\n\n"
        f"Response: {fits.attrs.get('response', '')}. Exponents: err ~ x^-exponent; the "
        "data-axis bounds of the squared error are halved for it (see opscale.theory).\n",
        _theory_table(fits, config),
        _estimates_table(fits),
        _parameters_table(fits),
        _comparison_table(fits),
        _backtest_table(fits),
        _allocation_table(fits),
        _notes(fits),
    ]


def _md(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"


def _headline(rows: pd.DataFrame) -> pd.DataFrame:
    """Per group and axis: the robust estimate, else the joint OLS one."""
    rank = rows["law"].map({"robust": 0, "joint": 1, "data": 2, "model": 2})
    return rows.assign(rank=rank).sort_values("rank").groupby(["group", "term"], sort=False).head(1)


def _theory_table(fits, config) -> str:
    rows = table(fits, "row")
    if rows.empty:
        return "## Theory\n\nNo exponent could be fitted (see the notes).\n"
    body = [
        [
            config.get("study", "?") + ("" if r.group == "all" else f" ({r.group})"),
            TERM_AXIS[r.term],
            f"{r.exponent:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
            _theory_cell(r),
            r.verdict,
            r.law,
        ]
        for r in _headline(rows).sort_index().itertuples()  # groups in sweep order
    ]
    header = ["study", "axis", "measured [95% CI]", "theory", "verdict", "law"]
    return "## Measured vs theory\n\n" + _md(header, body)


def _theory_cell(r) -> str:
    if not r.theory:
        return "no prediction"
    return f"{r.theory_exponent:.3f} ({r.theory_formula}; {r.theory})"


def _section(fits, name: str, title: str, header: list[str], cells) -> str:
    """A Markdown section: table `name` of fit.nc, one row ``cells(record)`` per record."""
    rows = table(fits, name)
    if rows.empty:
        return ""
    return f"## {title}\n\n" + _md(header, [cells(r) for r in rows.itertuples()])


def _estimates_table(fits) -> str:
    header = ["group", "law", "axis", "exponent [95% CI]", "models", "seeds", "R²", "method"]
    return _section(fits, "row", "Every estimate", header, _estimate_cells)


def _estimate_cells(r) -> list:
    return [
        r.group,
        r.law,
        TERM_AXIS[r.term],
        f"{r.exponent:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
        r.n_obs,
        r.n_clusters,
        f"{r.r_squared:.3f}",
        r.method,
    ]


def _parameters_table(fits) -> str:
    header = ["group", "law", "parameter", "estimate [95% CI]"]
    return _section(fits, "parameter", "Parameters", header, _parameter_cells)


def _parameter_cells(r) -> list:
    return [r.group, r.law, r.name, f"{r.estimate:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]"]


def _comparison_table(fits) -> str:
    header = ["group", "law", "formula", "params", "AIC", "ΔAIC", "BIC", "ΔBIC"]
    title = "Alternatives (AIC/BIC, lower is better)"
    return _section(fits, "comparison", title, header, _comparison_cells)


def _comparison_cells(r) -> list:
    information = (r.aic, r.delta_aic, r.bic, r.delta_bic)
    return [r.group, r.law, r.formula, r.params, *(f"{v:.1f}" for v in information)]


BACKTEST_HEADER = [
    "group",
    "held out (largest)",
    "method",
    "N",
    "n",
    "measured (median)",
    "predicted [95% PI]",
    "error",
    "models in PI",
]


def _backtest_table(fits) -> str:
    text = _section(fits, "backtest", "Extrapolation backtest", BACKTEST_HEADER, _backtest_cells)
    return text + _backtest_summary(table(fits, "backtest")) if text else ""


def _backtest_cells(r) -> list:
    return [
        r.group,
        r.held_out,
        r.method,
        f"{r.N:,}",
        f"{r.n:,}",
        f"{r.measured:.4g}",
        f"{r.predicted:.4g} [{r.pi_low:.4g}, {r.pi_high:.4g}]",
        f"{100 * r.rel_error:+.1f}%",
        f"{r.inside}/{r.models}",
    ]


def _backtest_summary(rows: pd.DataFrame) -> str:
    summary = rows.groupby(["group", "held_out", "method"], sort=False).agg(
        median_abs_error=("rel_error", lambda e: float(np.median(np.abs(e)))),
        inside=("inside", "sum"),
        models=("models", "sum"),
    )
    body = [
        [
            *key,
            f"{100 * r.median_abs_error:.1f}%",
            f"{r.inside}/{r.models} ({100 * r.inside / r.models:.0f}%)",
        ]
        for key, r in zip(summary.index, summary.itertuples(), strict=True)
    ]
    header = ["group", "held out", "method", "median abs. error", "models in 95% PI"]
    return "\n" + _md(header, body)


ALLOCATION_HEADER = [
    "group",
    "FLOPs",
    "N*",
    "n*",
    "predicted err",
    "extrapolated",
    "best trained (N, n, err)",
]


def _allocation_table(fits) -> str:
    title = "Compute-optimal allocation"
    return _section(fits, "allocation", title, ALLOCATION_HEADER, _allocation_cells)


def _allocation_cells(r) -> list:
    return [
        r.group,
        f"{r.budget:.3g}",
        f"{r.N_opt:,.0f} [{r.N_low:,.0f}, {r.N_high:,.0f}]",
        f"{r.n_opt:,.0f} [{r.n_low:,.0f}, {r.n_high:,.0f}]",
        f"{r.err_opt:.4g} [{r.err_low:.4g}, {r.err_high:.4g}]",
        r.extrapolated,
        _measured_cell(r),
    ]


def _measured_cell(r) -> str:
    if math.isnan(r.best_measured_err):
        return "none affordable"
    return f"{r.best_measured_N:,.0f}, {r.best_measured_n:,.0f}, {r.best_measured_err:.4g}"


def _notes(fits) -> str:
    notes, excluded = table(fits, "note"), table(fits, "excluded")
    lines = [f"- {r.group}, {r.step}: {r.reason}" for r in notes.itertuples()]
    counts = excluded.groupby(["fits", "reason"]).size() if not excluded.empty else []
    lines += [
        f"- excluded from {fits_}: {n} model(s), {reason}"
        for (fits_, reason), n in getattr(counts, "items", lambda: [])()
    ]
    return "## Notes\n\n" + "\n".join(lines) + "\n" if lines else ""
