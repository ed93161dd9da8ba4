"""Iterated operators: the cubic elliptic solver, the iterative model, its measure and analysis."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from opscale import cube, tables
from opscale.analyses import iteration as analysis
from opscale.evaluate import relative_l2
from opscale.measures.iteration import IterationMeasure, spectral_norm
from opscale.models.iterative import IterativeOperator
from opscale.problems import operators
from opscale.rng import torch_generator
from opscale.train import Members
from tests.helpers import run_snakemake, tiny_config, write_config

# ---------------------------------------------------------------- the operator


def _manufactured(x, amplitude):
    """s = A (1 + x) sin(pi x) and u = -s'' + s^3."""
    s = amplitude * (1 + x) * np.sin(np.pi * x)
    second = amplitude * (2 * np.pi * np.cos(np.pi * x) - np.pi**2 * (1 + x) * np.sin(np.pi * x))
    return s, -second + s**3


@pytest.mark.parametrize("amplitude", [0.5, 3.0])  # s^3 small, and dominant
def test_cubic_elliptic_is_second_order(amplitude):
    errors = []
    for resolution in (51, 101, 201, 401):
        x = np.linspace(0.0, 1.0, resolution)
        s, u = _manufactured(x, amplitude)
        errors.append(np.abs(operators.cubic_elliptic(u[None], x, {})[0] - s).max())
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    np.testing.assert_allclose(orders, 2.0, atol=0.02)  # measured 2.000, 2.000, 2.000


def test_cubic_elliptic_solves_many_functions_and_its_discrete_equation():
    x = np.linspace(0.0, 1.0, 101)
    u = np.stack([50 * np.sin(3 * x), 200 * x * (1 - x), np.zeros_like(x)])
    s = operators.cubic_elliptic(u, x, {})
    h = x[1] - x[0]
    residual = -(s[:, 2:] - 2 * s[:, 1:-1] + s[:, :-2]) / h**2 + s[:, 1:-1] ** 3 - u[:, 1:-1]
    assert np.abs(residual).max() < 1e-8 and (s[:, [0, -1]] == 0).all()
    assert np.abs(s[2]).max() == 0  # u = 0 -> s = 0


# ---------------------------------------------------------------- the model


def _model(shared, iterations=3, relaxation=0.4, seeds=(0, 1), depth=2, dtype=torch.float64):
    generators = [torch_generator(s, "init") for s in seeds]
    return IterativeOperator(
        5, 4, 6, depth, "tanh", iterations, relaxation, shared, generators, dtype
    )


def test_trajectory_is_the_relaxed_recursion_and_forward_its_last_iterate():
    model, u = _model(shared=False), torch.randn(2, 7, 5, dtype=torch.float64)
    iterates = model.trajectory(u, 5)
    y = torch.zeros(2, 7, 4, dtype=torch.float64)
    for k in range(5):  # non-shared: blocks 0, 1, 2, then block 2 repeats
        block = model.blocks[min(k, 2)]
        y = 0.4 * y + 0.6 * block(torch.cat([u, y], -1))
        torch.testing.assert_close(iterates[k + 1], y)
    torch.testing.assert_close(model(u, torch.zeros(4, 1)), iterates[3])


def test_shared_has_one_block_and_stacked_has_k_and_both_count_k_blocks_of_flops():
    shared, stacked = _model(shared=True), _model(shared=False)
    assert len(shared.blocks) == 1 and len(stacked.blocks) == 3
    per_block = sum(p.numel() for p in shared.parameters()) // 2
    assert sum(p.numel() for p in stacked.parameters()) // 2 == 3 * per_block
    assert shared.flops(10, 4) == stacked.flops(10, 4) == 3 * (shared.blocks[0].flops(10) + 120)
    # the first block of both starts from the same draws (common random numbers)
    torch.testing.assert_close(
        shared.blocks[0].layers[0].weight, stacked.blocks[0].layers[0].weight
    )


def test_members_are_the_single_models_of_their_seeds():
    batched, u = _model(shared=True, seeds=(3, 5)), torch.randn(2, 4, 5, dtype=torch.float64)
    single = _model(shared=True, seeds=(5,))
    torch.testing.assert_close(batched.trajectory(u, 6)[-1][1], single.trajectory(u[1:], 6)[-1][0])


def test_the_model_refuses_unaligned_query_points():
    with pytest.raises(ValueError, match="aligned"):
        _model(shared=True)(torch.zeros(2, 3, 5), torch.zeros(2, 3, 4, 1))


# ---------------------------------------------------------------- the measure


def test_spectral_norm_by_power_iteration_matches_the_svd():
    matrices = torch.randn(3, 5, 6, 6, generator=torch_generator(0, "m"), dtype=torch.float64)
    y = torch.randn(3, 5, 6, dtype=torch.float64)
    start = torch.randn(3, 5, 6, generator=torch_generator(1, "v"), dtype=torch.float64)
    estimate = spectral_norm(
        lambda y: torch.tanh(torch.einsum("sfij,sfj->sfi", matrices, y)), y, start, 200
    )
    jacobians = torch.cosh(torch.einsum("sfij,sfj->sfi", matrices, y))[..., None] ** -2 * matrices
    exact = torch.linalg.matrix_norm(jacobians, ord=2)
    torch.testing.assert_close(estimate, exact, rtol=1e-6, atol=0)


def _linear_model(eigenvalues, relaxation):
    """One member whose block is y -> W y + c(u) with W symmetric, of known eigenvalues."""
    model = _model(shared=True, relaxation=relaxation, seeds=(0,), depth=1)
    q = torch.linalg.qr(torch.randn(4, 4, generator=torch_generator(2, "q"), dtype=torch.float64))[
        0
    ]
    with torch.no_grad():
        model.blocks[0].layers[0].weight[0, 5:] = q @ torch.diag(eigenvalues) @ q.T
    return model


def _measure(model, k_eval, functions=3):
    spec = {"model": {"name": "iterative"}}
    members = Members(np.array([0]), np.array([4]), np.array([0]), False)
    options = {"k_eval": k_eval, "functions": functions, "power_iterations": 100}
    return IterationMeasure(options, spec, members)


def test_residuals_of_a_linear_contraction_decay_at_a_plus_one_minus_a_lambda():
    a, top = 0.3, 0.8  # rate a + (1 - a) lambda_max = 0.86 for a symmetric PSD W
    model = _linear_model(torch.tensor([top, 0.5, 0.2, 0.1], dtype=torch.float64), a)
    u = torch.randn(1, 6, 5, dtype=torch.float64)
    test = analysis_split(u, model)
    out = _measure(model, [1, 3, 40]).finish(model, {"test": test})
    np.testing.assert_allclose(out.lipschitz.values, [top], rtol=1e-8)
    np.testing.assert_allclose(out.predicted_rate.values, [a + (1 - a) * top], rtol=1e-8)
    r = out.residual.values[0]
    np.testing.assert_allclose(r[30:] / r[29:-1], a + (1 - a) * top, rtol=1e-6)
    assert out.residual.dims == ("member", "iteration") and out.sizes["iteration"] == 40
    # the error at K_eval = K_train (3) is the model's own error
    expected = relative_l2(model(u, torch.zeros(4, 1)), test.s).detach().numpy()
    np.testing.assert_allclose(out.iteration_error.sel(k_eval=3).values, expected)
    for name in [*out.data_vars, *out.coords]:
        assert {"long_name", "units"} <= set(out[name].attrs), name


def _nonnormal_model(eigenvalues, relaxation):
    """One member whose block is linear in y, T(u, y) = M y + c(u), M = P diag(l) P^-1.

    P is not orthogonal, so M is not normal: its 2-norm exceeds its spectral radius.
    """
    model = _model(shared=True, relaxation=relaxation, seeds=(0,), depth=1)
    p = torch.eye(4, dtype=torch.float64) + torch.triu(torch.ones(4, 4, dtype=torch.float64), 1)
    m = p @ torch.diag(eigenvalues) @ torch.linalg.inv(p)
    with torch.no_grad():
        model.blocks[0].layers[0].weight[0, 5:] = m.T  # BatchedLinear: x @ W, W (in, out)
    return model, m


def test_a_linear_block_has_the_exact_spectral_radius_norm_and_residual_rate():
    a, eigenvalues = 0.3, torch.tensor([-0.9, 0.6, 0.1, 0.0], dtype=torch.float64)
    model, m = _nonnormal_model(eigenvalues, a)
    u = torch.randn(1, 6, 5, generator=torch_generator(3, "u"), dtype=torch.float64)
    relaxed = a * np.eye(4) + (1 - a) * m.numpy()
    radius = np.abs(a + (1 - a) * eigenvalues.numpy()).max()  # 0.72 (the others: 0.37 or less)
    norm = np.linalg.norm(relaxed, 2)
    assert norm > radius + 0.1  # non-normal: the norm bound is far from the rate
    # the block really is y -> M y + c: its Jacobian is M
    jac = torch.func.jacfwd(lambda y: model.update(0, u[:, :1], y))(torch.zeros(1, 1, 4))
    torch.testing.assert_close(jac.reshape(4, 4), m)
    out = _measure(model, [1, 3, 60]).finish(model, {"test": analysis_split(u, model)})
    np.testing.assert_allclose(out.spectral_radius.values, [radius], rtol=1e-10)
    np.testing.assert_allclose(out.spectral_radius_median.values, [radius], rtol=1e-10)
    np.testing.assert_allclose(out.relaxed_norm.values, [norm], rtol=1e-10)
    r = out.residual.values[0]
    np.testing.assert_allclose(r[40:] / r[39:-1], radius, rtol=1e-6)  # the late rate is rho


def analysis_split(u, model):
    """A test split whose targets are the model's fixed point plus a perturbation."""
    from opscale.problems.tensors import Split

    s = model.trajectory(u, 200)[-1].detach() + 0.1
    return Split(u, torch.zeros(4, 1, dtype=u.dtype), s)


def test_the_measure_refuses_other_models():
    with pytest.raises(ValueError, match="measure.iteration.*iterative"):
        IterationMeasure({}, {"model": {"name": "mlp"}}, None)


# ---------------------------------------------------------------- the analysis

SEED_JITTER = np.array([0.99, 1.0, 1.01])  # per-seed true rates differ by +-1%


def _planted_cube(rates, rho, norm, bound, k_train=2, iterations=30, noise=0.02):
    """A cube with planted residuals r_k = rate_s^k (log-normal noise) per relaxation value.

    rate_s = rate * SEED_JITTER[s]; the per-seed spectral radius, norm and bound are the
    planted factors times rate_s, so each seed's fitted / predicted is known.
    """
    rng = np.random.default_rng(0)
    k = np.arange(1, iterations + 1)
    seed_rates = np.array(rates)[:, None] * SEED_JITTER
    noisy = np.exp(rng.normal(0, noise, (*seed_rates.shape, len(k))))
    shape, dims = seed_rates.shape, ("relaxation", "seed")
    per_seed = {
        name: (dims, seed_rates * np.array(values)[:, None] / np.array(rates)[:, None])
        for name, values in (
            ("spectral_radius", rho),
            ("spectral_radius_median", rho),
            ("relaxed_norm", norm),
            ("predicted_rate", bound),
        )
    }
    ds = xr.Dataset(
        {
            "residual": ((*dims, "iteration"), seed_rates[..., None] ** k * noisy),
            "window_start": (dims, np.full(shape, k_train)),
            "lipschitz": (dims, np.ones(shape)),
            "iteration_error": ((*dims, "k_eval"), np.ones((*shape, 2))),
            "test_rel_l2": (dims, np.ones(shape)),
            "status": (dims, np.zeros(shape, "int8")),
            **per_seed,
        },
        coords={
            "relaxation": np.linspace(0.1, 0.3, len(rates)),
            "seed": np.arange(3),
            "iteration": k,
            "k_eval": [1, 2],
        },
    )
    return _with_config(ds, {"relaxation": "model.relaxation"}, k_train=k_train)


def _with_config(ds, axes, **model):
    config = {"study": "t", "model": {"iterations": 2, "shared": True, "relaxation": 0.5}}
    config["model"].update(model)
    ds = cube.describe(ds)
    ds.attrs.update(config=json.dumps(config), axes=json.dumps(axes))
    return ds, config


def test_the_late_rate_is_recovered_and_compared_with_rho_the_norm_and_the_bound():
    ds, config = _planted_cube(
        rates=[0.5, 0.8, 0.8, 1.02, 0.98],  # 1.02: no seed decays; 0.98: r_30 / r_2 > 1%
        rho=[0.5, 0.64, 0.8 / 1.1, 0.9, 0.98],  # fitted / rho: 1, 1.25, 1.1 (the margin)
        norm=[0.75, 0.7, 0.8, 1.2, 1.2],
        bound=[0.9, 0.7, 1.2, 0.9, 1.2],
    )
    rates = analysis.rate_table(ds, config)
    np.testing.assert_allclose(rates.rate, [0.5, 0.8, 0.8, 1.02, 0.98], rtol=0.01)
    assert list(rates.rho_seeds) == [3, 3, 3, 0, 0]
    assert list(rates.bound_seeds) == [3, 3, 0, 3, 0]
    np.testing.assert_allclose(rates.rho_ratio[:3], [1, 1.25, 1.1], rtol=0.01)
    assert (rates.rate_low < rates.rate).all() and (rates.rate < rates.rate_high).all()
    not_decaying = "not a test: the residuals do not decay (y_K is not near a fixed point)"
    assert list(rates.verdict_rho) == [
        "holds",
        "does not hold (residuals decay slower than rho)",
        "not shown (interval reaches beyond the 10% margin)",
        not_decaying,
        not_decaying,  # its rate's CI is below 1, but y_K is far from the fixed point
    ]
    assert list(rates.verdict_norm) == [
        "compatible (below the bound)",
        "does not hold (rate above the bound)",
        "compatible (at the bound)",
        not_decaying,
        not_decaying,
    ]
    assert list(rates.verdict_bound) == [
        "compatible (below the bound)",
        "does not hold (rate above the bound: L-hat under-estimates L)",
        "not a test: a + (1-a) L-hat >= 1 (no bound)",
        # met condition, residuals not decaying: the bound fails (L-hat too small)
        "does not hold (rate above the bound: L-hat under-estimates L)",
        "not a test: a + (1-a) L-hat >= 1 (no bound)",
    ]
    # the late window: the later half of k = 2..30 (0.5^k stays above 1e-10 of the largest)
    assert list(rates["first"]) == [16] * 5 and list(rates["last"]) == [30] * 5
    assert list(rates.points) == [3 * 15] * 5
    texts = [*rates.verdict_rho, *rates.verdict_norm, *rates.verdict_bound]
    assert not any("violated" in t or "confirm" in t for t in texts)


def test_round_off_residuals_are_left_out_of_the_late_window():
    ds, config = _planted_cube([0.5], [0.5], [0.6], [0.7], iterations=60, noise=0.0)
    ds["residual"] = np.maximum(ds["residual"], 1e-15)  # round-off at 1e-15, below 1e-10 r_1
    rates = analysis.rate_table(ds, config)
    np.testing.assert_allclose(rates.rate, [0.5], rtol=0.01)
    assert rates["last"].iloc[0] < 40  # 0.495^k < 1e-10 * 0.495 from k = 34 on
    # the floor is relative to the largest residual, not r_1 (a dead first block: r_1 ~ 0)
    ds["residual"][..., 0] = 1e-30
    np.testing.assert_allclose(analysis.rate_table(ds, config).rate, [0.5], rtol=0.01)


def test_seed_interval_is_the_t_interval_of_exact_seeds_and_never_narrower_than_the_fits():
    values = np.array([1.0, 2.0, 4.0])
    mean, low, high = analysis.seed_interval(values)
    half = 4.302652729911275 * values.std(ddof=1) / np.sqrt(3)  # t_(0.975, 2)
    np.testing.assert_allclose([mean, low, high], [7 / 3, 7 / 3 - half, 7 / 3 + half])
    # identical seeds: the fits' own errors give the width, t_(0.975, 10) sqrt(3 * 0.3^2) / 3
    _, low, high = analysis.seed_interval(np.ones(3), np.full(3, 0.3), np.full(3, 10))
    np.testing.assert_allclose(high - 1, 2.2281388519649385 * 0.3 / np.sqrt(3))
    assert np.isnan(analysis.seed_interval([1.0])[1])  # one exact seed: no interval


def test_seed_interval_covers_the_mean_of_normal_seeds_at_its_level():
    rng = np.random.default_rng(1)
    draws = rng.normal(0.3, 0.1, (2000, 3))
    covered = [low <= 0.3 <= high for _, low, high in map(analysis.seed_interval, draws)]
    assert 0.935 < np.mean(covered) < 0.965  # the t interval's exact coverage: 0.95


def _performance_cube(slopes, growth, noise=0.05):
    """Errors e = K_train^slope per relaxation (seed noise) and e(K_eval = 64) = growth e."""
    rng = np.random.default_rng(2)
    k_train = np.array([2, 4, 8])
    dims = ("relaxation", "iterations", "seed")
    error = k_train[None, :, None] ** np.array(slopes)[:, None, None]
    error = 0.1 * error * np.exp(rng.normal(0, noise, (len(slopes), 3, 3)))
    late = error * np.array(growth)[:, None, None] * np.exp(rng.normal(0, noise, error.shape))
    ds = xr.Dataset(
        {
            "test_rel_l2": (dims, error),
            "iteration_error": ((*dims, "k_eval"), np.stack([error, late], -1)),
            "status": (dims, np.zeros(error.shape, "int8")),
        },
        coords={
            "relaxation": [0.0, 0.5, 0.8],
            "iterations": k_train,
            "seed": np.arange(3),
            "k_eval": [8, 64],
        },
    )
    axes = {"relaxation": "model.relaxation", "iterations": "model.iterations"}
    return _with_config(ds, axes)


def test_the_performance_claims_on_planted_errors():
    ds, config = _performance_cube(slopes=[-0.5, 0.5, 0.0], growth=[0.5, 2.0, 1.0])
    depth = analysis.depth_table(ds, config)
    np.testing.assert_allclose(depth.slope[:2], [-0.5, 0.5], atol=0.05)
    assert list(depth.verdict) == [
        "holds",
        "does not hold",
        "not shown (interval contains the null)",
    ]
    assert list(depth.k_train) == ["2, 4, 8"] * 3 and list(depth.seeds) == [3] * 3
    growth = analysis.growth_table(ds, config)
    assert len(growth) == 9  # one row per (a, K_train)
    np.testing.assert_allclose(growth.ratio[:6], [0.5] * 3 + [2.0] * 3, rtol=0.1)
    not_shown = "not shown (interval contains the null)"
    assert list(growth.verdict) == ["holds"] * 3 + ["does not hold"] * 3 + [not_shown] * 3
    claims = analysis.claims_table(
        analysis.rate_table(*_planted_cube([0.5], [0.5], [0.6], [0.7])), depth, growth
    )
    row = claims.set_index("statement").loc["error at K_eval = K_train falls as K_train grows"]
    assert row.verdicts == "holds: 1, does not hold: 1, not shown: 1"


def test_the_tables_round_trip_through_fit_nc_into_fit_md_and_the_rate_figure():
    ds, _ = _planted_cube([0.5, 1.02], [0.5, 0.9], [0.75, 1.2], [0.9, 0.9])
    found = analysis.analyse(ds, {"confidence": 0.95})
    assert set(found) == {"seeds", "rates", "depth", "growth", "claims", "errors"}
    assert len(found["seeds"]) == 2 * 3  # one row per grid point and seed
    fits = tables.tables_dataset({f"iteration_{k}": v.to_dict("records") for k, v in found.items()})
    text = analysis.markdown(fits)
    assert "| late residual rate = spectral radius of a I + (1-a) dT/dy | prediction |" in text
    assert "| 0.1 | 2 | yes | 16-30 | 0.500 [" in text  # a, K_train, shared, late window
    assert "not a test: one K_train value" in text and "violated" not in text
    figure = analysis.iteration_rate_vs_radius(ds, fits)
    assert len(figure.axes[0].collections) == 4  # rho and norm, shared and stacked


# ---------------------------------------------------------------- end to end

TINY = tiny_config(
    study="tiny-iteration",
    problem={
        "name": "cubic_elliptic",
        "sensors": 12,
        "queries": 8,
        "resolution": 51,
        "inputs": {"variance": 100.0},
    },
    model={"name": "iterative", "width": 16, "depth": 2, "activation": "tanh", "iterations": 2},
    train={"steps": 60, "eval_every": 20, "log_every": 20, "lr": 0.003, "weight_decay": 10.0},
    measure={"iteration": {"k_eval": [1, 2, 12], "functions": 4}},
    fit={"scaling": False, "analyses": ["iteration"]},
    sweep={"model.shared": [True, False]},
)


@pytest.mark.workflow
def test_the_tiny_study_measures_rates_and_errors_end_to_end(tmp_path):
    run_snakemake(tmp_path, write_config(tmp_path / "study.yaml", TINY))
    study = tmp_path / "results" / "tiny-iteration"
    ds = cube.read(study / "cube.nc")
    assert ds.residual.dims[-1] == "iteration" and ds.sizes["iteration"] == 12
    # the error at K_eval = K_train is the trained model's test error
    np.testing.assert_allclose(ds.iteration_error.sel(k_eval=2), ds.test_rel_l2, rtol=1e-5)
    np.testing.assert_allclose(ds.predicted_rate, 0.5 + 0.5 * ds.lipschitz, rtol=1e-6)
    assert (ds.spectral_radius_median <= ds.spectral_radius).all()
    assert (ds.spectral_radius <= ds.relaxed_norm * (1 + 1e-9)).all()  # rho <= ||M||_2
    fits = cube.read(study / "fit.nc")
    rates = tables.table(fits, "iteration_rates")
    assert len(rates) == 2 and rates.rate.between(0, 2).all()
    assert (rates.points >= 2 * 3).all() and (rates.points <= 2 * 11).all()  # k = 2..12
    text = (study / "fit.md").read_text()
    assert "## Iterated operators: late residual rate vs the spectral radius" in text
    assert "## Iterated operators: does the error grow past K_train?" in text
    assert "violated" not in text
    # two rows in each of the rho, bounds, growth and error tables
    assert text.count("| 0.5 | 2 |") == 8
    assert len(tables.table(fits, "iteration_claims")) == 5 * 2  # statements x shared
    for name in ("iteration_residuals", "iteration_error_vs_k"):
        assert (study / "figures" / f"{name}.png").stat().st_size > 1000
    assert isinstance(tables.table(fits, "iteration_errors"), pd.DataFrame)
