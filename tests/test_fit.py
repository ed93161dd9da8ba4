"""Scaling-law statistics on synthetic cubes with planted laws (known answers)."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import optimize

from opscale import cube, fit, tables, theory
from opscale.config import validate_study
from opscale.markdown import markdown
from opscale.rng import numpy_rng
from opscale.scaling import allocation as allocation_module
from opscale.scaling import convergence
from opscale.scaling.fitting import fit_reported_law
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import TERMS, observations, table_observations
from tests.helpers import models_cube, planted_table, synthetic_cube

FAST = {"bootstrap": 60, "backtest_bootstrap": 40}
TRUTH = {"log_N": 0.5, "log_n": 0.8}  # synthetic_cube's planted alpha and beta


@pytest.fixture(scope="module")
def floored():
    """The fit of a planted law with a floor E = 0.05 (shared by several tests)."""
    return fit.fit(synthetic_cube(floor=0.05, rng_seed=1), FAST)


def _row(fits, law, term):
    rows = tables.table(fits, "row").query("law == @law and term == @term")
    assert len(rows) == 1, (law, term)
    return rows.iloc[0]


def test_planted_exponents_without_floor_are_recovered_by_ols():
    # Without a floor, a pure product law err = C n^-beta N^-alpha is exactly log-linear.
    ds = synthetic_cube()
    n = ds.n_train.broadcast_like(ds.test_rel_l2)
    noise = np.exp(np.random.default_rng(1).normal(0, 0.05, ds.test_rel_l2.shape))
    ds["test_rel_l2"] = 5 * n**-0.8 * ds.n_params**-0.5 * noise
    fits = fit.fit(ds, FAST)
    for law, term, truth in [
        ("joint", "log_n", 0.8),
        ("joint", "log_N", 0.5),
        ("data", "log_n", 0.8),
        ("model", "log_N", 0.5),
    ]:
        row = _row(fits, law, term)
        assert row.ci_low <= truth <= row.ci_high, (law, term)
        assert abs(row.exponent - truth) < 0.05
        assert row.n_clusters == 5
        assert "cluster-robust" in row.method


@pytest.mark.parametrize("floor", [0.0, 0.05])
def test_the_robust_law_recovers_planted_exponents_within_its_intervals(floor, floored):
    fits = floored if floor else fit.fit(synthetic_cube(floor=floor), FAST)
    for term, truth in TRUTH.items():
        row = _row(fits, "robust", term)
        assert row.ci_low <= truth <= row.ci_high, term
        assert abs(row.exponent - truth) < 0.1
    floor_row = tables.table(fits, "parameter").query("law == 'robust' and name == 'E'").iloc[0]
    assert floor_row.estimate == pytest.approx(floor, abs=0.02)


def test_ols_is_biased_under_a_floor_and_the_robust_law_corrects_it(floored):
    # The known failure of plain log-log OLS (issue 5, item 2), on the same data.
    for term, truth in TRUTH.items():
        ols, robust = _row(floored, "joint", term), _row(floored, "robust", term)
        assert ols.ci_high < 0.7 * truth  # biased towards zero, interval far from the truth
        assert robust.ci_low <= truth <= robust.ci_high


COVERAGE_CASES = {  # a fast version of benchmarks/fit.py --coverage (see RESULTS.md)
    "5 seeds, seed shift": lambda rep: observations(
        synthetic_cube(floor=0.05, noise=0.1, rng_seed=1000 + rep)
    )[0],
    "10 seeds, seed effect along n": lambda rep: observations(
        synthetic_cube(floor=0.05, noise=0.1, seeds=10, seed_slope=0.1, rng_seed=1000 + rep)
    )[0],
    "unreplicated irregular table": lambda rep: table_observations(
        planted_table(rng_seed=1000 + rep), "params", "samples", "loss"
    )[0],
    "unreplicated irregular table, no floor": lambda rep: table_observations(
        planted_table(floor=0.0, rng_seed=1000 + rep), "params", "samples", "loss"
    )[0],
}


@pytest.mark.parametrize("case", COVERAGE_CASES)
def test_bootstrap_intervals_cover_the_truth_near_their_nominal_rate(case):
    # 100 planted replays, 40 resamples each (so that it runs in make test): a zero-width
    # or a far too wide interval fails; the measured coverage is in benchmarks/RESULTS.md.
    settings = fit.fit_settings(validate_study({"study": "x"}), {"refine": 1})
    law = AdditiveLaw(TERMS)
    names = ("alpha", "beta") if "no floor" in case else ("E", "alpha", "beta")
    truth = np.array([{"E": 0.05, "alpha": 0.5, "beta": 0.8}[name] for name in names])
    index = [law.names.index(name) for name in names]
    hits, widths, repetitions = np.zeros(len(names)), [], 100
    for rep in range(repetitions):
        rng = numpy_rng(rep, "coverage")
        law_fit = fit_reported_law(COVERAGE_CASES[case](rep), law, settings, rng, resamples=40)
        low, high = law_fit.interval(law_fit.draws[:, index], 0.95)
        hits += (low <= truth) & (truth <= high)
        widths.append(high - low)
    coverage = hits / repetitions
    print(f"{case}: coverage of nominal 95% intervals {names}: {coverage}")
    assert ((coverage >= 0.80) & (coverage <= 0.995)).all(), coverage
    assert (np.min(widths, axis=0) > 0).all()


def test_a_floor_at_zero_makes_every_interval_span_the_law_without_it():
    # No planted floor: E sits on its bound 0, the law with a floor over-states alpha.
    frame = table_observations(planted_table(floor=0.0), "params", "samples", "loss")[0]
    settings = fit.fit_settings(validate_study({"study": "x"}), {"refine": 2})
    law = AdditiveLaw(TERMS)
    law_fit = fit_reported_law(frame, law, settings, numpy_rng(0, "test"), resamples=100)
    assert law_fit.spans_no_floor and law_fit.censoring()[0] in ("lower", "both")
    assert (law_fit.draws[law_fit.source == 1, 0] == 0).all()  # E = 0 in the law without
    alpha = law_fit.draws[:, law.names.index("alpha")]
    low, high = law_fit.interval(alpha, 0.95)
    for k in (0, 1):  # the union of each law's percentile interval
        part = np.percentile(alpha[law_fit.source == k], [2.5, 97.5])
        assert low <= part[0] and part[1] <= high
    assert low <= 0.5 <= high
    floored = fit_reported_law(
        table_observations(planted_table(), "params", "samples", "loss")[0],
        law,
        settings,
        numpy_rng(0, "test"),
        resamples=100,
    )
    assert not floored.spans_no_floor  # a floor the data resolve: its law alone


def test_ols_fits_every_model_and_says_it_is_a_local_slope():
    fits = fit.fit(synthetic_cube(floor=0.2), FAST)
    assert tables.table(fits, "excluded").empty  # no model is chosen by the fitted response
    row = _row(fits, "joint", "log_n")
    assert row.n_obs == 100 and "local slope" in row.method


def test_aic_and_bic_prefer_the_planted_law(floored):
    comparison = tables.table(floored, "comparison").set_index("law")
    assert comparison.delta_bic.idxmin() == "power + floor"
    assert comparison.loc["product (log-linear)", "delta_bic"] > 10


def test_aic_prefers_the_logarithmic_law_on_logarithmic_data():
    ds = synthetic_cube()
    ell = lambda x: np.log(x) / np.log(np.log(x))  # noqa: E731
    noise = np.exp(np.random.default_rng(2).normal(0, 0.02, ds.test_rel_l2.shape))
    n = ds.n_train.broadcast_like(ds.test_rel_l2)
    ds["test_rel_l2"] = (3 * ell(ds.n_params) ** -1.5 + 2 * ell(n) ** -2.0) * noise
    comparison = tables.table(fit.fit(ds, FAST), "comparison").set_index("law")
    assert comparison.delta_aic.idxmin().startswith("logarithmic")


def test_the_backtest_predicts_held_out_points_within_their_intervals(floored):
    backtest = tables.table(floored, "backtest")
    robust = backtest[backtest.method == "robust"]
    assert set(robust.held_out) == {"N (parameters)", "n (training functions)"}
    assert len(robust) == 5 + 4  # largest N at every n, largest n at every N
    assert (robust.rel_error.abs() < 0.1).all()
    assert robust.inside.sum() / robust.models.sum() >= 0.8


def test_the_compute_optimal_allocation_minimises_the_law_on_the_budget():
    fits = fit.fit(synthetic_cube(floor=0.01), FAST)
    allocation = tables.table(fits, "allocation")
    assert len(allocation) == allocation_module.BUDGETS
    params = tables.table(fits, "parameter").query("law == 'robust'").set_index("name").estimate
    flops = tables.table(fits, "parameter").query("law == 'flops'").estimate.to_numpy()
    np.testing.assert_allclose(flops[1:], [1.0, 1.0], atol=1e-6)  # C = 600 N n exactly

    def law(log_N, budget):  # the fitted law along the budget's curve n = C / (600 N)
        n = budget / math.exp(flops[0]) / math.exp(log_N)
        return params.E + params.A * math.exp(-params.alpha * log_N) + params.B * n**-params.beta

    for r in allocation.itertuples():
        best = optimize.minimize_scalar(law, bounds=(0, 30), args=(r.budget,), method="bounded")
        assert math.exp(best.x) == pytest.approx(r.N_opt, rel=1e-3)
        assert r.N_low <= r.N_opt <= r.N_high and r.err_low <= r.err_opt <= r.err_high
    assert (np.diff(allocation.err_opt) < 0).all()


def test_theory_table_is_printed_with_a_verdict(tmp_path):
    cube.write(synthetic_cube(), tmp_path / "cube.nc")
    fits = fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", FAST)
    text = (tmp_path / "fit.md").read_text()
    assert "| study | axis | measured [95% CI] | theory | verdict |" in text
    assert "| synthetic | N (parameters) |" in text
    assert any(v in text for v in theory.VERDICTS.values())  # one of the theory's verdicts
    assert "| all | joint | n (training functions) |" in text
    for section in ["Alternatives", "Extrapolation backtest", "Compute-optimal allocation"]:
        assert section in text
    back = cube.read(tmp_path / "fit.nc")
    assert tables.table(back, "backtest").equals(tables.table(fits, "backtest"))
    assert json.loads(back.attrs["settings"])["bootstrap"] == FAST["bootstrap"]


def test_diverged_and_missing_models_are_excluded_and_counted():
    ds = synthetic_cube()
    ds["status"][0, 0, 0] = cube.DIVERGED
    ds["status"][1, 1, :] = cube.MISSING
    ds["test_rel_l2"][1, 1, :] = np.nan
    fits = fit.fit(ds, FAST)
    assert json.loads(fits.attrs["excluded"]) == {"diverged": 1, "missing": 5}
    assert _row(fits, "joint", "log_n").n_obs == 4 * 5 * 5 - 6
    excluded = tables.table(fits, "excluded").query("fits == 'all'")
    assert sorted(excluded.reason.unique()) == ["diverged", "missing (not trained)"]
    assert "width=4, n_train=16, seed=0" in set(excluded.model)


def test_fitted_values_lie_on_the_grid():
    fits = fit.fit(synthetic_cube(), FAST)
    for law in ["data", "joint", "robust"]:
        assert fits[f"fitted_{law}"].dims == ("width", "n_train")
        assert (fits[f"fitted_{law}"] > 0).all()


def test_single_seed_falls_back_to_hc1_and_skips_the_bootstrap_noise():
    fits = fit.fit(synthetic_cube(seeds=1), FAST)
    assert "HC1" in _row(fits, "joint", "log_n").method


def test_a_tiny_cube_degrades_gracefully_and_says_why():
    tiny = synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16))
    fits = fit.fit(tiny, FAST)
    assert set(tables.table(fits, "row").law) == {"data", "model", "joint"}
    notes = tables.table(fits, "note")
    assert notes.query("step == 'robust law'").reason.str.contains("needs 3").all()
    assert "Notes" in markdown(fits)


@pytest.mark.parametrize("axis", ["model.width", "data.n_train"])
def test_laws_need_their_axis_to_vary(axis):
    ds = synthetic_cube()
    name = axis.split(".")[1]
    fits = fit.fit(ds.isel({name: [0]}), FAST)
    ols = set(tables.table(fits, "row").query("law != 'robust'").law)
    assert ols == ({"model"} if name == "n_train" else {"data"})
    robust = tables.table(fits, "row").query("law == 'robust'")
    assert list(robust.term) == (["log_N"] if name == "n_train" else ["log_n"])


def test_unknown_fit_settings_are_named():
    with pytest.raises(ValueError, match="bootstarp"):
        fit.fit_settings(validate_study({"study": "x"}), {"bootstarp": 10})


def _two_dimensions():
    """Two planted studies stacked on a swept intrinsic dimension problem.inputs.modes."""
    import xarray as xr

    from opscale.problems.inputs import BASES

    parts = [synthetic_cube(alpha=1 / (b + 1), beta=2 / (2 + b + 1), rng_seed=b) for b in (2, 4)]
    ds = xr.concat(parts, dim="modes").assign_coords(modes=[2, 4])
    ds = ds.transpose("modes", "width", "n_train", "seed")
    config = json.loads(parts[0].attrs["config"])
    config["problem"] = {"name": "antiderivative", "inputs": {"family": sorted(BASES)[0]}}
    config["sweep"] = {"problem.inputs.modes": [2, 4], **config["sweep"]}
    config = validate_study(config)  # resolved again, as collect stores it
    axes = {"modes": "problem.inputs.modes", "width": "model.width", "n_train": "data.n_train"}
    return ds.assign_attrs(config=json.dumps(config), axes=json.dumps(axes))


def test_the_theory_is_computed_per_group_from_its_intrinsic_dimension():
    rows = tables.table(fit.fit(_two_dimensions(), FAST), "row").query("law == 'robust'")
    assert set(rows.group) == {"modes=2", "modes=4"}
    for r in rows.itertuples():
        b = {"modes=2": 2, "modes=4": 4}[r.group]
        assert r.intrinsic_dim == b
        expected = 1 / (b + 1) if r.term == "log_N" else 1 / (2 + b + 1)
        assert r.theory_exponent == pytest.approx(expected)
        assert r.theory == "deeponet_finite_inputs"


def test_groups_fitted_in_parallel_processes_give_the_same_fit():
    cube_ = _two_dimensions()
    serial, parallel = fit.fit(cube_, FAST), fit.fit(cube_, FAST, workers=2)
    assert serial.identical(parallel)


def test_a_model_name_sweep_is_fitted_per_model():
    # The sweep column `model` was overwritten by each model's label: no exponent at all.
    rows = tables.table(fit.fit(models_cube(), FAST), "row").query("law == 'robust'")
    assert set(rows.group) == {"model=deeponet", "model=mlp"}
    alpha = rows.query("term == 'log_N'").set_index("group").exponent
    assert alpha["model=deeponet"] == pytest.approx(0.5, abs=0.1)
    assert alpha["model=mlp"] == pytest.approx(0.3, abs=0.1)


def test_fit_confidence_governs_every_interval_and_header(tmp_path):
    from scipy import stats

    cube.write(synthetic_cube(), tmp_path / "cube.nc")
    widths = {}
    for level in (0.9, 0.95):
        settings = {**FAST, "confidence": level}
        out = tmp_path / f"{level}"
        fits = fit.fit_cube(tmp_path / "cube.nc", f"{out}.nc", f"{out}.md", settings)
        rows = tables.table(fits, "row").set_index(["law", "term"])
        widths[level] = rows.ci_high - rows.ci_low
        text = Path(f"{out}.md").read_text()
        other = "95%" if level == 0.9 else "90%"
        assert f"{100 * level:g}% CI]" in text and f"{100 * level:g}% PI]" in text
        assert f"{other} CI" not in text and f"{other} PI" not in text
    # OLS (cluster-robust, t with clusters - 1 = 4 df): widths scale as the t quantiles
    ratio = stats.t.ppf(0.95, 4) / stats.t.ppf(0.975, 4)
    for law in ("data", "model", "joint"):
        assert (widths[0.9][law] / widths[0.95][law]).to_numpy() == pytest.approx(ratio)
    assert (widths[0.9]["robust"] < widths[0.95]["robust"]).all()  # percentile bootstrap


# ------------------------------------------------------------ identifiability and tables
def test_an_exponent_at_its_cap_is_censored_and_gets_no_verdict(tmp_path):
    # N hardly matters (alpha 6: 3 N^-6 < 1e-12 on the grid): its exponent is not identified.
    cube.write(synthetic_cube(alpha=6.0), tmp_path / "cube.nc")
    fits = fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", FAST)
    row = _row(fits, "robust", "log_N")
    assert row.identified == "no" and row.censored in ("upper", "both")
    assert row.verdict == "not identified: no verdict"
    assert row.share_at_high > 0.025 or row.exponent == pytest.approx(row.bound_high)
    assert _row(fits, "robust", "log_n").identified == "yes"
    text = (tmp_path / "fit.md").read_text()
    assert "upper end at the bound 10" in text or "both ends at bounds" in text
    backtest = tables.table(fits, "backtest").query("method == 'robust'")
    assert set(backtest.identified) == {"no"}
    assert set(tables.table(fits, "allocation").identified) == {"no"}


def test_one_seed_gets_residual_intervals_of_nonzero_width():
    # Resampling seeds within points resamples nothing with one model per point.
    rows = tables.table(fit.fit(synthetic_cube(seeds=1), FAST), "row").query("law == 'robust'")
    assert (rows.ci_high > rows.ci_low).all()
    assert rows.method.str.contains("residuals redrawn").all()
    assert rows.method.str.contains("scale .* from residuals").all()


def test_a_scheme_that_cannot_apply_gives_no_interval_and_says_why(tmp_path):
    cube.write(synthetic_cube(seeds=1), tmp_path / "cube.nc")
    settings = {**FAST, "bootstrap_scheme": "within_point"}
    fits = fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", settings)
    row = _row(fits, "robust", "log_n")
    assert np.isnan(row.ci_low) and np.isnan(row.ci_high) and row.identified == "no"
    assert "redraws (almost) nothing" in row.no_interval and "no interval" in row.method
    assert "(no interval)" in (tmp_path / "fit.md").read_text()


def test_the_huber_scale_can_be_set():
    row = _row(fit.fit(synthetic_cube(), {**FAST, "huber_delta": 0.05}), "robust", "log_n")
    assert "Huber (scale 0.05 from fit.huber_delta)" in row.method


def test_the_seed_bootstrap_redraws_whole_seeds():
    from opscale.scaling import bootstrap

    obs, _ = observations(synthetic_cube(seeds=4))
    for rows, y in bootstrap.seed_resamples(obs, None, 5, 20, numpy_rng(0, "t")):
        drawn = obs.iloc[rows]
        assert len(rows) == len(obs)  # every seed brings all its 20 models
        assert (drawn.groupby("seed").size() % 20 == 0).all()
        assert np.array_equal(y, drawn["log_err"].to_numpy())


def test_the_local_slope_is_the_planted_law_s_and_below_the_exponent(floored):
    # Known answer: -d log err / d log x of the planted law, averaged over the grid.
    obs, _ = observations(synthetic_cube(floor=0.05, rng_seed=1))
    N, n = np.exp(obs["log_N"]), np.exp(obs["log_n"])
    terms = {"log_N": 3 * N**-0.5, "log_n": 2 * n**-0.8}
    total = 0.05 + terms["log_N"] + terms["log_n"]
    slopes = tables.table(floored, "slope").set_index("term")
    for term, value in terms.items():
        truth = float((TRUTH[term] * value / total).mean())
        row = slopes.loc[term]
        assert row.local_slope == pytest.approx(truth, abs=0.05)
        assert row.local_low <= row.local_slope <= row.local_high
        assert row.local_slope < row.exponent
        assert row.spread_low <= row.local_slope + 0.05 and row.spread_laws == 5


def test_the_comparison_says_when_laws_are_indistinguishable(floored):
    rows = tables.table(floored, "comparison")
    for r in rows.itertuples():
        expected = (
            "best" if r.delta_aic == 0 else "indistinguishable" if r.delta_aic < 2 else "worse"
        )
        assert r.evidence == expected
    from opscale.scaling.laws import AdditiveLaw as Law

    assert np.isinf(Law(TERMS, "logarithmic").bounds(np.ones(3))[1][-1])  # no cap of 10


def test_a_long_format_table_is_fitted_like_a_cube(tmp_path):
    # three planted tables: each parameter inside its (non-zero width) interval in >= 2
    # (a single 95% interval misses 1 time in 20; coverage: benchmarks/RESULTS.md)
    truth = {"alpha": 0.5, "beta": 0.8, "E": 0.05}
    covered = dict.fromkeys(truth, 0)
    for rng_seed in range(3):
        frame = planted_table(rows=240, rng_seed=rng_seed)
        fits = fit.fit_table(frame, size="params", data="samples", error="loss", **FAST)
        params = tables.table(fits, "parameter").query("law == 'robust'").set_index("name")
        for name, value in truth.items():
            covered[name] += int(params.loc[name, "ci_low"] < value < params.loc[name, "ci_high"])
    assert min(covered.values()) >= 2, covered
    frame.loc[5, "loss"] = np.nan
    frame.loc[6, "loss"] = -1.0
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)  # a repeated run
    fits = fit.fit_table(frame, size="params", data="samples", error="loss", **FAST)
    excluded = tables.table(fits, "excluded")
    assert len(excluded) == 2 and excluded.reason.str.contains("not finite and positive").all()
    assert tables.table(fits, "note").reason.str.contains("2 runs share").any()
    fit.write_fit(fits, tmp_path / "fit.nc", tmp_path / "fit.md")
    csv = pd.read_csv(tmp_path / "exponents.csv")
    assert list(csv.columns) == tables.EXPONENT_COLUMNS
    assert {"E", "A", "alpha", "B", "beta"} <= set(csv.query("law == 'robust'").parameter)
    assert "log(loss)" in (tmp_path / "fit.md").read_text()


def test_a_study_fit_writes_its_exponents_csv(tmp_path):
    cube.write(synthetic_cube(), tmp_path / "cube.nc")
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", FAST)
    csv = pd.read_csv(tmp_path / "exponents.csv")
    assert set(csv.law) == {"robust", "flops", "data", "model", "joint"}
    assert set(csv.identified) <= {"yes", "no"} and csv.method.notna().all()


def test_a_group_still_improving_at_its_budget_is_budget_limited():
    # Planted: every model's best step is its last one (still improving), 1.05 test/train.
    ds = synthetic_cube()
    ds["steps_trained"] = ds["n_params"] * 0 + 1000
    ds["best_step"] = ds["steps_trained"].copy()
    ds["train_rel_l2"] = ds["test_rel_l2"] / 1.05
    rows = tables.table(fit.fit(ds, FAST), "row").query("law == 'robust'").set_index("term")
    assert rows.loc["log_n", "verdict"].startswith("budget-limited: 100/100 models")
    assert not rows.loc["log_N", "verdict"].startswith("budget-limited")
    assert rows.loc["log_n", "test_train_ratio"] == pytest.approx(1.05)
    ds["best_step"] = ds["steps_trained"] // 2  # converged halfway: a data exponent again
    rows = tables.table(fit.fit(ds, FAST), "row").query("law == 'robust'").set_index("term")
    assert rows.loc["log_n", "at_budget_share"] == 0
    assert not rows.loc["log_n", "verdict"].startswith("budget-limited")


def _dimensions(bs, alpha, beta):
    """Planted studies stacked on a swept intrinsic dimension b (antiderivative: d2 = 1)."""
    import xarray as xr

    parts = [synthetic_cube(alpha=alpha(b), beta=beta(b), rng_seed=b) for b in bs]
    ds = xr.concat(parts, dim="modes").assign_coords(modes=list(bs))
    ds = ds.transpose("modes", "width", "n_train", "seed")
    config = json.loads(parts[0].attrs["config"])
    config["problem"] = {"name": "antiderivative", "inputs": {"family": "sine"}}
    config["sweep"] = {"problem.inputs.modes": list(bs), **config["sweep"]}
    axes = {"modes": "problem.inputs.modes", "width": "model.width", "n_train": "data.n_train"}
    return ds.assign_attrs(config=json.dumps(validate_study(config)), axes=json.dumps(axes))


def test_shape_claims_hold_on_planted_rates_and_fail_on_a_constant_exponent():
    bs = (1, 2, 3, 4)
    planted = _dimensions(bs, lambda b: 1 / (b + 1), lambda b: 1 / (2 + b + 1))
    quick = {"bootstrap": 40, "backtest_bootstrap": 0, "refine": 1}
    fits = fit.fit(planted, quick, workers=2)
    shape = tables.table(fits, "shape").set_index("statement")
    assert len(shape) == 3 and set(shape.groups) == {4}
    slope_one = shape[shape.claimed == "1"]
    assert set(slope_one.verdict) == {"holds"}, slope_one[["slope", "slope_low", "slope_high"]]
    decrease = shape[shape.claimed == "< 0"].iloc[0]  # 4 values of b: not always shown
    assert decrease.slope < 0 and decrease.verdict != "does not hold"
    constant = _dimensions(bs, lambda b: 0.5, lambda b: 0.5)  # no dependence on b at all
    shape = tables.table(fit.fit(constant, quick, workers=2), "shape").set_index("statement")
    assert set(shape[shape.claimed == "1"].verdict) == {"does not hold"}
    assert shape[shape.claimed == "< 0"].verdict.iloc[0] != "holds"
    assert "Shape across the intrinsic dimension b" in markdown(fits)


def test_when_every_model_is_excluded_the_note_counts_and_names_the_causes(tmp_path):
    # one test output of zero norm made every relative error NaN (0/0): fit.md said only
    # "neither N nor n varies: nothing to fit", hiding the cause
    ds = synthetic_cube(seeds=2, widths=(4, 8), n_train=(8, 16))
    ds["test_rel_l2"][:] = np.nan
    ds["test_rel_l2"][0, 0, 0] = 0.0
    ds["status"][1, 1, :] = cube.DIVERGED
    ds["status"][1, 0, 1] = cube.MISSING
    cube.write(ds, tmp_path / "cube.nc")
    fits = fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md", FAST)
    expected = (
        "all 8 models excluded: 4 have a non-finite test_rel_l2 (NaN or inf), 1 a "
        "test_rel_l2 <= 0, 2 diverged, 1 missing (not trained); nothing to fit"
    )
    assert list(tables.table(fits, "note").reason) == [expected]
    text = (tmp_path / "fit.md").read_text()
    assert f"- all, all fits: {expected}" in text and "neither N nor n varies" not in text


def test_a_group_whose_models_are_all_excluded_gets_its_own_note():
    # the other group is fitted; this one used to vanish from the fit without a word
    ds = _two_dimensions()
    ds["status"].loc[{"modes": 4}] = cube.DIVERGED
    fits = fit.fit(ds, FAST)
    notes = tables.table(fits, "note").query("step == 'all fits'")
    assert list(notes.group) == ["modes=4"]
    assert notes.reason.iloc[0].startswith("all 100 models excluded: 0 have a non-finite")
    assert "100 diverged, 0 missing (not trained); nothing to fit" in notes.reason.iloc[0]
    assert set(tables.table(fits, "row").query("law == 'robust'").group) == {"modes=2"}


def test_a_table_whose_runs_are_all_excluded_says_why():
    frame = planted_table(rows=12)
    frame["loss"] = np.nan
    frame.loc[0, "params"] = 0
    fits = fit.fit_table(frame, size="params", data="samples", error="loss", **FAST)
    reasons = list(tables.table(fits, "note").reason)
    assert reasons == [
        "all 12 runs excluded: 11 with loss not finite and positive, 1 with params not finite "
        "and positive; nothing to fit"
    ]


def test_late_gain_is_the_fall_of_the_best_validation_error_over_the_last_quarter():
    # Known answer: a curve falling 1.0 -> 0.5 linearly over 1000 steps: best up to step 750
    # is 0.625, best overall 0.5, a 25% fall; a curve flat after step 500 has none.
    steps = np.arange(0, 1001, 50)
    falling, flat = 1.0 - 0.5 * steps / 1000, np.maximum(1.0 - steps / 1000, 0.5)
    ds = xr.Dataset(
        {
            "val_curve": (("model", "eval"), np.stack([falling, flat])),
            "steps_trained": ("model", [1000, 1000]),
        },
        coords={"eval": steps, "model": [0, 1]},
    )
    assert convergence.late_gain(ds).values == pytest.approx([0.125 / 0.5, 0.0])
    assert convergence.late_gain(ds.drop_vars("val_curve")) is None
    diagnosis = {"models_at_budget": "1/2", "late_gain": 0.25}
    assert convergence.still_improving(diagnosis) == (
        "1/2 models still improving at the end (validation error -25% over the last quarter, "
        "median)"
    )


def _at_budget_rows(start: float) -> pd.DataFrame:
    """Robust rows of a cube whose every model ends on its best step, after validation
    curves falling linearly from `start` x its error (step 0) to 1 x (step 1000)."""
    ds = synthetic_cube()
    ds["steps_trained"] = ds["n_params"] * 0 + 1000
    ds["best_step"] = ds["steps_trained"].copy()
    ds["train_rel_l2"] = ds["test_rel_l2"] / 1.05
    ds["val_curve"] = ds["test_rel_l2"] * xr.DataArray(
        np.linspace(start, 1.0, 11), dims="eval", coords={"eval": np.arange(0, 1001, 100)}
    )
    return tables.table(fit.fit(ds, FAST), "row").query("law == 'robust'").set_index("term")


def test_the_budget_limited_verdict_says_how_much_the_models_still_improved():
    rows = _at_budget_rows(2.0)  # up to 75% of the steps the best is step 700's 1.3x: 30%
    assert "(validation error -30% over the last quarter, median)" in rows.loc["log_n", "verdict"]
    assert rows.loc["log_n", "late_gain"] == pytest.approx(0.3)


def test_a_model_that_levelled_off_at_its_budget_is_not_still_improving():
    # An annealed schedule ends on its best step; a fall under 2% over its last quarter
    # is a level: up to step 750 the best is step 700's 1.0042 x, a 0.4% fall.
    rows = _at_budget_rows(1.014)
    assert rows.loc["log_n", "at_budget_share"] == 0
    assert not rows.loc["log_n", "verdict"].startswith("budget-limited")
