"""Scaling-law statistics on synthetic cubes with planted laws (known answers)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from opscale import cube, fit, tables
from opscale.config import validate_study
from opscale.markdown import markdown
from opscale.rng import numpy_rng
from opscale.scaling import allocation as allocation_module
from opscale.scaling.fitting import fit_law
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import TERMS, observations
from tests.helpers import models_cube, synthetic_cube

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


def test_bootstrap_intervals_cover_the_truth_at_their_nominal_rate():
    # >= 200 synthetic repetitions; a small bootstrap each, so that it runs in make test.
    settings = fit.fit_settings(validate_study({"study": "x"}), {"refine": 1})
    law = AdditiveLaw(TERMS)
    hits, repetitions = np.zeros(2), 200
    for rep in range(repetitions):
        # nested-data noise: half of each model's noise variance is shared by its seed
        obs, _ = observations(synthetic_cube(floor=0.05, noise=0.1, rng_seed=1000 + rep))
        law_fit = fit_law(obs, law, settings, numpy_rng(rep, "coverage"), resamples=25)
        low, high = law_fit.interval(law.split(law_fit.draws)[2], 0.95)
        truth = np.array([TRUTH[t] for t in law.terms])
        hits += (low <= truth) & (truth <= high)
    coverage = hits / repetitions
    print(f"coverage of nominal 95% intervals (alpha, beta): {coverage}")
    assert ((coverage >= 0.90) & (coverage <= 0.98)).all(), coverage


def test_the_pre_floor_rule_excludes_floor_dominated_models_from_ols_only():
    fits = fit.fit(synthetic_cube(floor=0.2), FAST)
    excluded = tables.table(fits, "excluded")
    assert len(excluded) > 0
    assert set(excluded.fits) == {"OLS"} and excluded.reason.str.contains("floor").all()
    assert _row(fits, "joint", "log_n").n_obs == 100 - len(excluded)
    assert _row(fits, "robust", "log_n").n_obs == 100


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
    assert "| study | axis | measured [95% CI] | theory | verdict | law |" in text
    assert "| synthetic | N (parameters) |" in text and "faster than the bound" in text
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
        assert other not in text
    # OLS (cluster-robust, t with clusters - 1 = 4 df): widths scale as the t quantiles
    ratio = stats.t.ppf(0.95, 4) / stats.t.ppf(0.975, 4)
    for law in ("data", "model", "joint"):
        assert (widths[0.9][law] / widths[0.95][law]).to_numpy() == pytest.approx(ratio)
    assert (widths[0.9]["robust"] < widths[0.95]["robust"]).all()  # percentile bootstrap
