"""Iterated operators: the cubic elliptic solver, the iterative model, its measure and analysis."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

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


def analysis_split(u, model):
    """A test split whose targets are the model's fixed point plus a perturbation."""
    from opscale.problems.tensors import Split

    s = model.trajectory(u, 200)[-1].detach() + 0.1
    return Split(u, torch.zeros(4, 1, dtype=u.dtype), s)


def test_the_measure_refuses_other_models():
    with pytest.raises(ValueError, match="measure.iteration.*iterative"):
        IterationMeasure({}, {"model": {"name": "mlp"}}, None)


# ---------------------------------------------------------------- the analysis


def _residual_cube(rates, predicted, k_train=2, iterations=30, seeds=3, noise=0.02):
    """A cube with planted residuals r_k = rate^k (log-normal noise) per relaxation value."""
    rng = np.random.default_rng(0)
    k = np.arange(1, iterations + 1)
    r = np.array(rates)[:, None, None] ** k * np.exp(
        rng.normal(0, noise, (len(rates), seeds, len(k)))
    )
    shape = (len(rates), seeds)
    ds = cube.describe(
        __import__("xarray").Dataset(
            {
                "residual": (("relaxation", "seed", "iteration"), r),
                "window_start": (("relaxation", "seed"), np.full(shape, k_train)),
                "predicted_rate": (
                    ("relaxation", "seed"),
                    np.broadcast_to(np.array(predicted)[:, None], shape),
                ),
                "lipschitz": (("relaxation", "seed"), np.ones(shape)),
                "iteration_error": (("relaxation", "seed", "k_eval"), np.ones((*shape, 2))),
                "status": (("relaxation", "seed"), np.zeros(shape, "int8")),
            },
            coords={
                "relaxation": np.linspace(0.1, 0.3, len(rates)),
                "seed": np.arange(seeds),
                "iteration": k,
                "k_eval": [1, 2],
            },
        )
    )
    config = {"study": "t", "model": {"iterations": k_train, "shared": True, "relaxation": 0.5}}
    ds.attrs.update(config=json.dumps(config), axes=json.dumps({"relaxation": "model.relaxation"}))
    return ds


def test_the_rate_fit_recovers_planted_rates_and_gives_each_verdict():
    rates = analysis.rate_table(
        *_cube_and_config(_residual_cube([0.5, 0.8, 0.8, 0.9], [0.7, 0.8, 0.75, 1.2]))
    )
    np.testing.assert_allclose(rates.rate, [0.5, 0.8, 0.8, 0.9], rtol=0.01)
    assert list(rates.verdict) == [
        "faster than the bound: theory holds",
        "at the bound: theory holds, tight",
        "slower than the bound: theory violated",
        "no prediction (a + (1-a) L-hat >= 1); residuals decay",
    ]
    # window k >= K_train = 2; 0.5^k falls below 1e-5 max r = 1e-5 r_1 after k = 17
    assert list(rates.points) == [3 * 16, 3 * 29, 3 * 29, 3 * 29]


def _cube_and_config(ds):
    return ds, json.loads(ds.attrs["config"])


def test_round_off_residuals_are_left_out_of_the_fit():
    ds = _residual_cube([0.5], [0.7], iterations=40, noise=0.0)
    ds["residual"] = np.maximum(ds["residual"], 1e-9)  # a floor at 1e-9 of r_1 = 0.5
    rates = analysis.rate_table(*_cube_and_config(ds))
    np.testing.assert_allclose(rates.rate, [0.5], rtol=1e-6)
    # the floor is relative to the largest residual, not r_1 (a dead first block: r_1 ~ 0)
    ds["residual"][..., 0] = 1e-12
    np.testing.assert_allclose(analysis.rate_table(*_cube_and_config(ds)).rate, [0.5], rtol=1e-6)


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
    rates = tables.table(cube.read(study / "fit.nc"), "iteration_rates")
    assert len(rates) == 2 and rates.rate.between(0, 2).all() and (rates.points == 2 * 11).all()
    text = (study / "fit.md").read_text()
    assert "## Iterated operators: residual rate vs a + (1-a) L-hat" in text
    assert text.count("| 0.5 | 2 |") == 4  # two rows in each table
    for name in ("iteration_residuals", "iteration_error_vs_k"):
        assert (study / "figures" / f"{name}.png").stat().st_size > 1000
    assert isinstance(tables.table(cube.read(study / "fit.nc"), "iteration_errors"), pd.DataFrame)
