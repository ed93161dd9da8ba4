"""Analysis ``iteration``: iterated operators tested as Zappala et al. 2023 claim.

Theory (arXiv 2310.01618; Banach's fixed-point theorem and the linearisation at a fixed
point). The relaxed map F(y) = a y + (1 - a) T(u, y) has the Jacobian
M = a I + (1 - a) dT/dy. Three statements about the residuals r_k = ||y_k - y_(k-1)||:

- **the late rate is the spectral radius** (a two-sided, falsifiable prediction): near a
  fixed point y*, y_(k+1) - y* ~ M (y_k - y*), so each function's residuals decay
  asymptotically at the spectral radius rho(M) at y*, and their RMS over the test
  functions at the largest of them (the measure's ``spectral_radius``, at the final
  iterate y_K);
- **the 2-norm bounds it**: r_(k+1) <= ||M||_2 r_k to first order (an upper bound only);
- **the contraction condition** a + (1 - a) L < 1 with L the block's Lipschitz constant in
  y is sufficient for geometric decay at a rate at most a + (1 - a) L (an upper bound
  only; L-hat is a from-below estimate of L, so a rate above the bound can only say that
  L-hat under-estimates L).

The paper's performance claims, with the seeds as replicates: **the error at
K_eval = K_train falls as K_train grows** (per seed, the OLS slope of log error on
log K_train; claim: slope < 0), and **the error does not grow past K_train** (per seed,
the ratio error at the largest K_eval / error at K_eval = K_train; claim: ratio < 1).

How the numbers are made, per grid point (a, K_train, shared and any other sweep axis):

- *late residual rate*: per seed, exp(slope) of an OLS regression of log r_k on k over the
  late window: the iterations k >= K_train whose residual is above round-off (``FLOOR``
  times the member's largest; the measure iterates in float64), and of those the later
  ``LATE`` share (at least ``MIN_POINTS``); the per-seed slope's standard error gives its
  fit CI;
- *which seeds are compared*: rho and the norm describe the linearisation at a fixed
  point, so they are compared on the seeds whose residuals decay (their own rate's CI
  below 1 and r_k fallen below ``CONVERGED`` = 1% of its largest at k >= K_train: judged
  from the residuals alone, not from rho); the contraction bound on the seeds that meet
  its condition a + (1 - a) L-hat < 1, whether or not they decay;
- *comparisons* are paired by seed (each trained network against its own rho, norm or
  bound): the log-ratio d_s = log(fitted rate_s / predicted_s), averaged over seeds. Its
  interval accounts for both sources of uncertainty by taking the wider of (i) the seeds'
  spread, t_(S-1) sd(d) / sqrt(S), and (ii) the fits' own CIs propagated to the mean,
  t_df sqrt(sum se_s^2) / S: the seeds' spread already contains the fit error when the
  residuals are noisy, the fits' CIs dominate when the seeds agree (or S = 1), and the
  interval is never narrower than either;
- *verdicts*: "holds" / "does not hold" / "not shown" for the predictions and claims;
  "compatible" / "does not hold" for the upper bounds; "not a test" where a statement's
  premise fails (no seed's residuals decay, so y_K is not near a fixed point; no seed
  meets the contraction condition). The equality rate = rho holds when the interval of
  fitted / rho lies within ``MARGIN`` (rates equal to +-10%), does not hold when it lies
  entirely outside, and is not shown otherwise. A one-sided claim holds when its interval
  lies entirely on the claimed side of the null, does not hold when entirely on the other
  side, and is not shown when the interval contains the null.

Tables (fit.nc ``iteration_<table>``): ``seeds`` (per grid point and seed: the late-rate
fit, rho, norm and bound), ``rates`` (per grid point: late rate, rho, norm,
bound and the three verdicts), ``depth`` (error vs K_train), ``growth`` (error past
K_train), ``claims`` (verdict counts per statement), ``errors`` (error at every K_eval).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import stats

from opscale import cube as cubes
from opscale.tables import confidence_label, markdown_table, number, table

# residuals below FLOOR times the member's largest are round-off (float64 eps ~ 2e-16)
FLOOR = 1e-10
LATE = 0.5  # the late window: the later half of the usable iterations k >= K_train
MIN_POINTS = 3  # fewest residuals a per-seed rate is fitted on
CONVERGED = 1e-2  # a seed's residuals decay: rate CI < 1 and r fell below 1% of its largest
MARGIN = np.log(1.1)  # rate = rho "holds" when fitted / rho is within 1.1^-1 .. 1.1
PARAMETERS = {"relaxation": "a", "iterations": "K_train", "shared": "shared"}
# the per-seed predicted quantities the late rate is compared with, and their variables
PREDICTED = {"rho": "spectral_radius", "norm": "relaxed_norm", "bound": "predicted_rate"}
MEMBER_VARIABLES = [*PREDICTED.values(), "spectral_radius_median", "lipschitz"]


def analyse(cube: xr.Dataset, settings: dict) -> dict[str, pd.DataFrame]:
    """The analysis' tables (see the module docstring); `settings` is the ``fit:`` section."""
    config, confidence = cubes.study_config(cube), settings["confidence"]
    seeds = seed_table(cube, config)
    rates = rate_table(cube, config, confidence, seeds)
    depth = depth_table(cube, config, confidence)
    growth = growth_table(cube, config, confidence)
    return {
        "seeds": seeds,
        "rates": rates,
        "depth": depth,
        "growth": growth,
        "claims": claims_table(rates, depth, growth),
        "errors": error_table(cube, config),
    }


# ----------------------------------------------------------------------------- members
def member_frame(cube: xr.Dataset, config: dict, *names: str) -> pd.DataFrame:
    """Variables `names` of the ok members as a long table with columns a, K_train, shared.

    Unswept model parameters come from the study config.
    """
    ok = cube["status"] == cubes.OK
    frame = cube[list(names)].where(ok).to_dataframe().reset_index()
    for axis, column in PARAMETERS.items():
        frame[column] = frame[axis] if axis in frame else config["model"][axis]
    frame["shared"] = frame["shared"].astype(bool)
    return frame.dropna(subset=list(names))


def grid_keys(cube: xr.Dataset) -> list[str]:
    """Columns that identify a grid point: a, K_train, shared and any other sweep axis."""
    axes = cubes.axes(cube)
    return [*PARAMETERS.values(), *(a for a in axes if a not in PARAMETERS)]


# ----------------------------------------------------------------------------- intervals
def seed_interval(values, errors=None, dofs=None, confidence: float = 0.95) -> tuple:
    """Mean of per-seed values with an interval for both the seeds' spread and fit errors.

    values (S,): one estimate per seed (log scale); errors, dofs (S,): each estimate's
    standard error and degrees of freedom (None: exact per-seed values). The half-width
    is the wider of t_(S-1) sd / sqrt(S) (seeds as replicates) and
    t_(min dof) sqrt(sum errors^2) / S (the fits' errors propagated to the mean). Returns
    (mean, low, high); the ends are nan when neither source gives a width (one exact seed).
    """
    values = np.asarray(values, dtype=float)
    count, level = len(values), (1 + confidence) / 2
    if not count:
        return np.nan, np.nan, np.nan
    between = within = 0.0
    if count > 1:
        between = stats.t.ppf(level, count - 1) * values.std(ddof=1) / np.sqrt(count)
    if errors is not None:
        spread = np.sqrt(np.sum(np.square(errors))) / count
        within = stats.t.ppf(level, np.min(dofs)) * spread if spread > 0 else 0.0
    half, mean = max(between, within), values.mean()
    if not half > 0:
        return mean, np.nan, np.nan
    return mean, mean - half, mean + half


def one_sided(low: float, high: float, null: float, side: str) -> str:
    """Verdict of a claim "value < null" (side "below") or "> null" from its interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not shown (no interval)"
    below, above = high < null, low > null
    if not (below or above):
        return "not shown (interval contains the null)"
    return "holds" if (below if side == "below" else above) else "does not hold"


# ----------------------------------------------------------------------------- rates
def late_window(member: pd.DataFrame) -> pd.DataFrame:
    """The late residuals of one member: k >= K_train above round-off, the later LATE share."""
    usable = member[
        (member["iteration"] >= member["window_start"])
        & (member["residual"] > FLOOR * member["residual"].max())
    ].sort_values("iteration")
    keep = max(MIN_POINTS, int(np.ceil(LATE * len(usable))))
    return usable.tail(keep)


def seed_rate(member: pd.DataFrame) -> dict:
    """Per-seed late rate: log-slope, its standard error and dof, and the window."""
    late = late_window(member)
    if len(late) < MIN_POINTS:
        return {"slope": np.nan, "drop": np.nan, "se": np.nan, "dof": np.nan, "points": len(late)}
    design = sm.add_constant(late["iteration"].to_numpy(float))
    fit = sm.OLS(np.log(late["residual"].to_numpy(float)), design).fit()
    window = member.loc[member["iteration"] >= member["window_start"], "residual"]
    return {
        "slope": fit.params[1],
        "drop": late["residual"].iloc[-1] / window.max(),
        "se": fit.bse[1] if len(late) > 2 else 0.0,
        "dof": max(fit.df_resid, 1.0),
        "points": len(late),
        "first": int(late["iteration"].min()),
        "last": int(late["iteration"].max()),
    }


def seed_table(cube: xr.Dataset, config: dict) -> pd.DataFrame:
    """One row per grid point and seed: the late-rate fit and the predicted quantities."""
    keys = [*grid_keys(cube), "seed"]
    residuals = member_frame(cube, config, "residual", "window_start")
    fits = residuals.groupby(keys, sort=False).apply(
        lambda m: pd.Series(seed_rate(m)), include_groups=False
    )
    predicted = member_frame(cube, config, *MEMBER_VARIABLES).set_index(keys)
    seeds = fits.join(predicted[MEMBER_VARIABLES], how="inner").reset_index()
    seeds["rate"] = np.exp(seeds["slope"])
    return seeds


def rate_table(
    cube: xr.Dataset, config: dict, confidence: float = 0.95, seeds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per grid point: late rate [CI] vs rho, norm and bound, with verdicts.

    `seeds` is the cube's ``seed_table`` (computed when not given).
    """
    keys = grid_keys(cube)
    seeds = seed_table(cube, config) if seeds is None else seeds
    rows = [
        {**dict(zip(keys, key, strict=True)), **rate_row(group, confidence)}
        for key, group in seeds.groupby(keys, sort=False)
    ]
    return pd.DataFrame(rows)


def rate_row(seeds: pd.DataFrame, confidence: float) -> dict:
    """The late rate of one grid point, each comparison and its verdict.

    rho and the norm are compared on the seeds whose residuals decay (``_decays``: only
    there is y_K near a fixed point); the contraction bound on the seeds
    that meet its condition a + (1-a) L-hat < 1 (whether or not they decay).
    """
    fitted = seeds.dropna(subset=["slope"])
    rate, low, high = np.exp(seed_interval(fitted.slope, fitted.se, fitted.dof, confidence))
    row = {"rate": rate, "rate_low": low, "rate_high": high, "seeds": len(seeds)}
    row |= {"fitted_seeds": len(fitted), "points": int(seeds.points.sum())}
    row |= {"first": fitted["first"].min(), "last": fitted["last"].max()}
    decaying = fitted[_decays(fitted, confidence)]
    compared = {"rho": decaying, "norm": decaying}
    compared["bound"] = fitted[fitted["predicted_rate"] < 1]
    for name, variable in PREDICTED.items():
        row |= _spread(seeds[variable], name)
        row |= _ratio(compared[name], variable, name, confidence)
    row |= _spread(seeds["spectral_radius_median"], "rho_median")
    row["lipschitz"] = seeds["lipschitz"].median()
    return row | {
        "verdict_rho": rho_verdict(row),
        "verdict_norm": bound_verdict(row, "norm"),
        "verdict_bound": contraction_verdict(row),
    }


def _decays(fitted: pd.DataFrame, confidence: float) -> pd.Series:
    """Per seed: y_K is near a fixed point, judged from the residuals alone (not from rho).

    The upper end of the seed's own late-rate CI is below 1 and its last fitted residual
    is below CONVERGED times its largest at k >= K_train.
    """
    upper = fitted.slope + stats.t.ppf((1 + confidence) / 2, fitted.dof) * fitted.se
    return (upper < 0) & (fitted["drop"] <= CONVERGED)


def _ratio(seeds: pd.DataFrame, variable: str, name: str, confidence: float) -> dict:
    """fitted / predicted paired by seed, with its interval, and how many seeds entered."""
    log_ratio = seeds.slope - np.log(seeds[variable])
    ratio = np.exp(seed_interval(log_ratio, seeds.se, seeds.dof, confidence))
    names = [f"{name}_ratio", f"{name}_ratio_low", f"{name}_ratio_high"]
    return dict(zip(names, ratio, strict=True)) | {f"{name}_seeds": len(seeds)}


def _spread(values: pd.Series, name: str) -> dict:
    """Median and range over seeds of a per-seed value."""
    return {name: values.median(), f"{name}_low": values.min(), f"{name}_high": values.max()}


def _premise(row: dict, name: str) -> str | None:
    """Why the late rate tests nothing (no fit; no seed's residuals decay), or None."""
    if not row["fitted_seeds"]:
        return "not a test: too few residuals above round-off to fit"
    if not row[f"{name}_seeds"]:
        return "not a test: the residuals do not decay (y_K is not near a fixed point)"
    return None


def rho_verdict(row: dict) -> str:
    """Late rate = rho, to within MARGIN: holds / does not hold / not shown."""
    premise = _premise(row, "rho")
    if premise:
        return premise
    low, high = np.log(row["rho_ratio_low"]), np.log(row["rho_ratio_high"])
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not shown (no interval)"
    if low >= -MARGIN and high <= MARGIN:
        return "holds"
    if high < -MARGIN or low > MARGIN:
        side = "faster" if high < -MARGIN else "slower"
        return f"does not hold (residuals decay {side} than rho)"
    return "not shown (interval reaches beyond the 10% margin)"


def bound_verdict(row: dict, name: str) -> str:
    """Late rate <= an upper bound: compatible unless the rate is above it."""
    premise = _premise(row, name)
    if premise:
        return premise
    low, high = row[f"{name}_ratio_low"], row[f"{name}_ratio_high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not shown (no interval)"
    if low > 1:
        return "does not hold (rate above the bound)"
    return "compatible (below the bound)" if high < 1 else "compatible (at the bound)"


def contraction_verdict(row: dict) -> str:
    """The sufficient condition a + (1-a) L-hat < 1 and its bound on the rate."""
    if row["fitted_seeds"] and not row["bound_seeds"]:
        return "not a test: a + (1-a) L-hat >= 1 (no bound)"
    verdict = bound_verdict(row, "bound")
    if verdict.startswith("does not hold"):
        return "does not hold (rate above the bound: L-hat under-estimates L)"
    return verdict


# ----------------------------------------------------------------------------- performance
def trained_errors(cube: xr.Dataset, config: dict) -> pd.DataFrame:
    """Per member: the test error of the trained model (K_eval = K_train) and at the largest.

    ``error`` is the trained model's ``test_rel_l2`` (the measure's error at
    K_eval = K_train, whether or not K_train is among the K_eval values).
    """
    largest = int(cube["k_eval"].max())
    at_largest = member_frame(cube.sel(k_eval=largest), config, "iteration_error")
    trained = member_frame(cube, config, "test_rel_l2")
    keys = [*grid_keys(cube), "seed"]
    merged = trained.merge(at_largest, on=keys)
    merged = merged.rename(columns={"test_rel_l2": "error", "iteration_error": "error_largest"})
    merged["k_largest"] = largest
    return merged[[*keys, "error", "error_largest", "k_largest"]]


def depth_table(cube: xr.Dataset, config: dict, confidence: float = 0.95) -> pd.DataFrame:
    """Per (a, shared, other axes): slope of log error at K_train on log K_train [CI].

    Per seed, the OLS slope over the K_train values (seeds pair across grid points:
    same test set and initialisation streams); seeds as replicates for the interval.
    """
    frame = trained_errors(cube, config)
    keys = [k for k in grid_keys(cube) if k != "K_train"]
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        slopes = group.groupby("seed").apply(_depth_slope, include_groups=False).dropna()
        slope, low, high = seed_interval(slopes, confidence=confidence)
        medians = group.groupby("K_train")["error"].median()
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "k_train": ", ".join(f"{k:g}" for k in medians.index),
                "errors": ", ".join(number(e) for e in medians),
                "slope": slope,
                "slope_low": low,
                "slope_high": high,
                "seeds": len(slopes),
                "verdict": _depth_verdict(low, high, medians),
            }
        )
    return pd.DataFrame(rows)


def _depth_slope(seed: pd.DataFrame) -> float:
    """OLS slope of log error on log K_train of one seed (nan with fewer than 2 K_train)."""
    if seed["K_train"].nunique() < 2:
        return np.nan
    return np.polyfit(np.log(seed["K_train"]), np.log(seed["error"]), 1)[0]


def _depth_verdict(low: float, high: float, medians: pd.Series) -> str:
    if len(medians) < 2:
        return "not a test: one K_train value"
    return one_sided(low, high, 0.0, "below")


def growth_table(cube: xr.Dataset, config: dict, confidence: float = 0.95) -> pd.DataFrame:
    """Per grid point: error at the largest K_eval / at K_train (geometric mean over seeds)."""
    frame = trained_errors(cube, config)
    keys = grid_keys(cube)
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        log_ratio = np.log(group["error_largest"] / group["error"])
        ratio, low, high = np.exp(seed_interval(log_ratio, confidence=confidence))
        k_largest = int(group["k_largest"].iloc[0])
        verdict = (
            one_sided(low, high, 1.0, "below")
            if k_largest > key[keys.index("K_train")]
            else "not a test: no K_eval beyond K_train"
        )
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "error": group["error"].median(),
                "error_largest": group["error_largest"].median(),
                "k_largest": k_largest,
                "ratio": ratio,
                "ratio_low": low,
                "ratio_high": high,
                "seeds": len(group),
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- claims
CLAIMS = (  # (statement, what it is, table, verdict column)
    ("late residual rate = spectral radius of a I + (1-a) dT/dy", "prediction", "rates", "rho"),
    ("late residual rate <= ||a I + (1-a) dT/dy||_2", "upper bound", "rates", "norm"),
    ("a + (1-a) L-hat < 1 bounds the residual rate", "sufficient condition", "rates", "bound"),
    ("error at K_eval = K_train falls as K_train grows", "paper's claim", "depth", None),
    ("error does not grow past K_train", "paper's claim", "growth", None),
)


def claims_table(rates: pd.DataFrame, depth: pd.DataFrame, growth: pd.DataFrame) -> pd.DataFrame:
    """Per statement: how many grid points (or groups) got each verdict, split by shared."""
    frames = {"rates": rates, "depth": depth, "growth": growth}
    rows = []
    for statement, kind, name, column in CLAIMS:
        frame = frames[name]
        verdicts = frame[f"verdict_{column}" if column else "verdict"]
        for shared in sorted(frame["shared"].unique(), reverse=True):
            counts = verdicts[frame["shared"] == shared].map(_verdict_word).value_counts()
            rows.append(
                {
                    "statement": statement,
                    "kind": kind,
                    "shared": bool(shared),
                    "verdicts": ", ".join(f"{word}: {n}" for word, n in counts.items()),
                }
            )
    return pd.DataFrame(rows)


def _verdict_word(verdict: str) -> str:
    """The verdict without its reason: holds, does not hold, not shown, compatible, ..."""
    return verdict.split(" (")[0].split(":")[0]


# ----------------------------------------------------------------------------- errors
def error_table(cube: xr.Dataset, config: dict) -> pd.DataFrame:
    """Median (and range over seeds) of the test error at every K_eval, per grid point."""
    frame = member_frame(cube, config, "iteration_error")
    keys = [*grid_keys(cube), "k_eval"]
    stats_ = frame.groupby(keys, sort=False)["iteration_error"]
    return stats_.agg(error="median", error_low="min", error_high="max").reset_index()


# ----------------------------------------------------------------------------- fit.md
def markdown(fits: xr.Dataset) -> str:
    """The analysis' sections of fit.md, from fit.nc's tables."""
    level = confidence_label(fits)
    tables = {name: table(fits, f"iteration_{name}") for name in TABLE_NAMES}
    return "\n".join(
        [
            _claims_md(tables["claims"]),
            _rho_md(tables["rates"], level),
            _bounds_md(tables["rates"], level),
            _depth_md(tables["depth"], level),
            _growth_md(tables["growth"], level),
            _errors_md(tables["errors"]),
        ]
    )


TABLE_NAMES = ("claims", "rates", "depth", "growth", "errors")
RATE_KEYS = ("a", "K_train", "shared")  # grid columns every table starts with


def _keys(frame: pd.DataFrame, first: tuple = RATE_KEYS) -> list[str]:
    """The grid columns of a table: a, K_train, shared (those present), other sweep axes."""
    axes = [c for c in frame.columns if c not in RESULT_COLUMNS and c not in first]
    return [*(c for c in first if c in frame.columns), *axes]


RESULT_COLUMNS = {
    *("rate", "rate_low", "rate_high", "seeds", "fitted_seeds", "points", "first", "last"),
    *(f"{n}{s}" for n in (*PREDICTED, "rho_median") for s in ("", "_low", "_high")),
    *(f"{n}_ratio{s}" for n in PREDICTED for s in ("", "_low", "_high")),
    *(f"{n}_seeds" for n in PREDICTED),
    *("lipschitz", "verdict_rho", "verdict_norm", "verdict_bound", "verdict"),
    *("k_train", "errors", "slope", "slope_low", "slope_high"),
    *("error", "error_largest", "k_largest", "ratio", "ratio_low", "ratio_high"),
    *("k_eval", "error_low", "error_high"),
}


def _key_cells(row: pd.Series, keys: list[str]) -> list[str]:
    """The grid point of a table row: a, K_train, shared (yes/no), other sweep axes."""
    shown = {"shared": "yes" if row["shared"] else "no"}
    if "K_train" in keys:
        shown["K_train"] = str(int(row["K_train"]))
    return [
        shown.get(key, f"{row[key]:g}" if _numeric(row[key]) else str(row[key])) for key in keys
    ]


def _numeric(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _interval(row: pd.Series, name: str) -> str:
    """`name` [name_low, name_high] in fit.md's number format."""
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{number(row[name])} (no interval)"
    return f"{number(row[name])} [{number(low)}, {number(high)}]"


def _claims_md(claims: pd.DataFrame) -> str:
    body = [
        [r.statement, r.kind, "shared" if r.shared else "stacked", r.verdicts]
        for r in claims.itertuples()
    ]
    return (
        "## Iterated operators: the theory's statements\n\n"
        "Verdicts over the grid points (error vs K_train: over the groups). Predictions and "
        "the paper's claims: holds / does not hold / not shown; upper bounds and sufficient "
        "conditions: compatible (never a confirmation) / does not hold; not a test where "
        "the premise fails.\n\n"
        + markdown_table(["statement", "kind", "blocks", "verdicts (count)"], body)
    )


def _rho_md(rates: pd.DataFrame, level: str) -> str:
    keys = _keys(rates)
    body = [
        [
            *_key_cells(r, keys),
            _window(r),
            _interval(r, "rate"),
            f"{int(r['rho_seeds'])}/{int(r['seeds'])}",
            _interval(r, "rho"),
            number(r["rho_median"]),
            _interval(r, "rho_ratio"),
            r["verdict_rho"],
        ]
        for _, r in rates.iterrows()
    ]
    header = [*keys, "late window k", f"late rate [{level}]", "seeds decaying"]
    header += ["rho (median [range])"]
    header += ["rho, median function", f"rate / rho [{level}]", "verdict"]
    return (
        "## Iterated operators: late residual rate vs the spectral radius\n\n"
        "Late rate: exp(slope) of log r_k on k per seed over the later half of the "
        "iterations k >= K_train above round-off, geometric mean over seeds. rho: spectral "
        "radius of a I + (1-a) dT/dy at the final iterate, the largest over the test "
        "functions, per seed (median [range] over seeds; next column: the median over "
        "functions). rate / rho is paired by seed; its interval is the wider of the seeds' "
        "spread and the fits' CIs, over the seeds whose residuals decay (their own rate's CI "
        "below 1, and r_k fallen below 1% of its largest at k >= K_train). Holds: within "
        "10%; does not hold: outside 10%.\n\n" + markdown_table(header, body)
    )


def _window(row: pd.Series) -> str:
    if not np.isfinite(row["first"]):
        return "n/a"
    return f"{int(row['first'])}-{int(row['last'])}"


def _bounds_md(rates: pd.DataFrame, level: str) -> str:
    keys = _keys(rates)
    body = [
        [
            *_key_cells(r, keys),
            _interval(r, "rate"),
            _interval(r, "norm"),
            r["verdict_norm"],
            _interval(r, "bound"),
            number(r["lipschitz"]),
            f"{int(r['bound_seeds'])}/{int(r['seeds'])}",
            r["verdict_bound"],
        ]
        for _, r in rates.iterrows()
    ]
    header = [*keys, f"late rate [{level}]", "||a I + (1-a) J||_2 (median [range])"]
    header += ["verdict", "a + (1-a) L-hat (median [range])", "L-hat (median)"]
    header += ["seeds with a + (1-a) L-hat < 1", "verdict"]
    return (
        "## Iterated operators: upper bounds on the residual rate\n\n"
        "Two upper bounds, never predictions of the rate: the 2-norm of the relaxed "
        "Jacobian at the final iterate (largest over the test functions), and the "
        "contraction bound a + (1-a) L-hat (L-hat: the block's largest local Lipschitz "
        "constant in y over the window's iterates, by power iteration from below; the "
        "bound applies only where it is < 1). Compared paired by seed as above: the norm on "
        "the seeds whose residuals decay, the contraction bound on the seeds that meet "
        "its condition.\n\n" + markdown_table(header, body)
    )


def _depth_md(depth: pd.DataFrame, level: str) -> str:
    keys = _keys(depth)
    body = [
        [*_key_cells(r, keys), r["k_train"], r["errors"], _interval(r, "slope"), r["verdict"]]
        for _, r in depth.iterrows()
    ]
    header = [*keys, "K_train", "error at K_train (median)", f"slope [{level}]", "verdict"]
    return (
        "## Iterated operators: does the error fall as K_train grows?\n\n"
        "Slope of log test error (at K_eval = K_train) on log K_train, per seed, mean over "
        "seeds with a t interval (seeds as replicates). Claim: slope < 0.\n\n"
        + markdown_table(header, body)
    )


def _growth_md(growth: pd.DataFrame, level: str) -> str:
    keys = _keys(growth)
    body = [
        [
            *_key_cells(r, keys),
            number(r["error"]),
            number(r["error_largest"]),
            _interval(r, "ratio"),
            r["verdict"],
        ]
        for _, r in growth.iterrows()
    ]
    k = int(growth["k_largest"].max()) if len(growth) else 0
    header = [*keys, "error at K_train", f"error at K_eval={k}", f"ratio [{level}]", "verdict"]
    return (
        "## Iterated operators: does the error grow past K_train?\n\n"
        "Medians over seeds; ratio: error at the largest K_eval / at K_train per seed, "
        "geometric mean with a t interval (seeds as replicates). Claim: ratio < 1 "
        "(iterating on does not hurt); not shown when the interval contains 1.\n\n"
        + markdown_table(header, body)
    )


def _errors_md(errors: pd.DataFrame) -> str:
    ks = sorted(errors["k_eval"].unique())
    keys = _keys(errors)
    body = [
        _key_cells(group.iloc[0], keys)
        + [_error_cell(group, k_eval, int(group.iloc[0]["K_train"])) for k_eval in ks]
        for _, group in errors.groupby(keys, sort=False)
    ]
    header = [*keys, *[f"K_eval={k}" for k in ks]]
    return (
        "## Iterated operators: test error vs K_eval\n\n"
        "Median relative L2 test error over seeds after K_eval iterations "
        "(bold: K_eval = K_train, the trained model).\n\n" + markdown_table(header, body)
    )


def _error_cell(group: pd.DataFrame, k_eval: int, k_train: int) -> str:
    value = group.loc[group["k_eval"] == k_eval, "error"]
    if value.empty:
        return ""
    cell = f"{value.iloc[0]:.3g}"
    return f"**{cell}**" if k_eval == k_train else cell


def _curves(cube: xr.Dataset, variable: str, x: str) -> pd.DataFrame:
    """Median over seeds of `variable` along `x`, per grid point, with a line label."""
    frame = member_frame(cube, cubes.study_config(cube), variable)
    keys = grid_keys(cube)
    curves = frame.groupby([*keys, x], sort=False)[variable].median().reset_index()
    labels = [k for k in keys if k != "shared"]
    curves["line"] = (
        curves[labels].astype(str).agg(", ".join, axis=1).radd(", ".join(labels) + " = ")
    )
    return curves


def _plot_curves(curves: pd.DataFrame, variable: str, x: str, ylabel: str, logx: bool):
    """One panel per shared value, one line per other grid point; log y."""
    panels = sorted(curves["shared"].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, shared in zip(axes[0], panels, strict=True):
        for label, line in curves[curves["shared"] == shared].groupby("line", sort=False):
            ax.plot(line[x], line[variable], marker=".", label=label)
        ax.set(yscale="log", xlabel=x, ylabel=ylabel)
        ax.set_xscale("log" if logx else "linear")
        ax.set_title("shared block" if shared else "non-shared blocks (stacked)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def iteration_residuals(cube: xr.Dataset, fits: xr.Dataset):
    """Residuals r_k against k (median over seeds), per grid point."""
    curves = _curves(cube, "residual", "iteration")
    return _plot_curves(curves, "residual", "iteration", "residual r_k (RMS)", logx=False)


def iteration_error_vs_k(cube: xr.Dataset, fits: xr.Dataset):
    """Test error against K_eval (median over seeds), per grid point."""
    curves = _curves(cube, "iteration_error", "k_eval")
    return _plot_curves(curves, "iteration_error", "k_eval", "test relative L2", logx=True)


def iteration_rate_vs_radius(cube: xr.Dataset, fits: xr.Dataset):
    """Per seed: late residual rate against rho (filled) and the 2-norm (open), y = x."""
    seeds = table(fits, "iteration_seeds").dropna(subset=["rate"])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for shared, marker in ((True, "o"), (False, "s")):
        part = seeds[seeds["shared"].astype(bool) == shared]
        label = "shared" if shared else "stacked"
        ax.scatter(part["spectral_radius"], part["rate"], marker=marker, label=f"rho, {label}")
        ax.scatter(
            part["relaxed_norm"],
            part["rate"],
            marker=marker,
            facecolors="none",
            edgecolors="grey",
            label=f"||a I + (1-a) J||_2, {label}",
        )
    values = seeds[["spectral_radius", "relaxed_norm", "rate"]].to_numpy().ravel()
    ends = [values[values > 0].min() / 1.2, values.max() * 1.2]
    ax.plot(ends, ends, "k--", linewidth=0.8, label="late rate = predicted")
    ax.set(xscale="log", yscale="log", xlabel="predicted (rho, or the norm)")
    ax.set(ylabel="late residual rate (per seed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
