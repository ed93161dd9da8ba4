"""The theory registry: exponents of the papers, converted to the unsquared error."""

import copy

import numpy as np
import pytest

from opscale import theory
from opscale.config import validate_study
from opscale.problems import inputs
from opscale.problems.inputs import BASES


def _by_axis(predictions):
    return {p.axis: p for p in predictions}


def _resolved(config: dict) -> dict:
    """A hand-written study config as the workflow passes it: validated, defaults in."""
    return validate_study({"study": "t", **copy.deepcopy(config)})


def test_deeponet_with_finite_inputs_gets_the_lzls_rates_of_the_unsquared_error():
    rates = _by_axis(theory.deeponet_finite_inputs({"b": 3, "d2": 1, "model": "deeponet"}))
    assert rates["model"].exponent == pytest.approx(1 / 4)  # 1/(b+d2)
    assert rates["data"].exponent == pytest.approx(1 / 6)  # half of 2/(2+b+d2)
    assert "2/(2+b+d2) = 2/6" in rates["data"].formula
    assert "2410.00357" in rates["data"].citation


def test_grf_inputs_get_the_finite_rates_at_b_eff_labelled_a_heuristic():
    inputs = {"family": "grf", "length_scale": 0.2}
    config = {"problem": {"name": "antiderivative", "inputs": inputs}}
    rates = _by_axis(theory.predictions(_resolved(config)))
    assert {p.theory for p in rates.values()} == {"deeponet_effective_dim"}
    # l = 0.2 on 1001 points: 16 KL modes kept, 5 carry 99% of the energy, 7 carry 99.9%
    assert rates["model"].exponent == pytest.approx(1 / 6)  # 1/(b_eff + d2)
    assert rates["data"].exponent == pytest.approx(1 / 8)  # half of 2/(2 + b_eff + d2)
    assert "b_eff 5 at 99% and 7 at 99.9% of the KL energy, 16 modes kept" in rates["data"].formula
    verdict = theory.verdict(0.3, 0.4, rates["data"])
    assert verdict.startswith("effective-dimension heuristic, not a theorem: decays faster")


def test_effective_dimension_counts_the_leading_modes_of_a_share_of_the_energy():
    eigenvalues = np.array([1.0, 8.0, 0.5, 0.5])  # sum 10: 8 is 80%, 9 is 90%, 9.5 95%
    assert inputs.effective_dimension(eigenvalues, 0.8) == 1
    assert inputs.effective_dimension(eigenvalues, 0.85) == 2
    assert inputs.effective_dimension(eigenvalues, 0.95) == 3
    assert inputs.effective_dimension(eigenvalues, 1.0) == 4


def test_the_kl_modes_kept_are_the_dimensions_the_draws_span():
    config = _resolved(
        {"problem": {"name": "antiderivative", "inputs": {"family": "grf", "length_scale": 0.5}}}
    )
    problem = config["problem"]
    x = np.linspace(0, 1, problem["resolution"])
    draws = inputs.gaussian_random_field(np.random.default_rng(0), 200, x, problem["inputs"])
    singular = np.linalg.svd(draws, compute_uv=False)
    rank = int((singular > 1e-6 * singular[0]).sum())
    assert rank == inputs.kl_spectrum(problem)["modes"] == 9


def test_inputs_of_unknown_spectrum_get_only_logarithmic_rates():
    params = {"model": "deeponet", "b": None, "d2": 1, "spectrum": None}
    rates = theory.deeponet_lipschitz(params)
    assert {p.axis: p.exponent for p in rates} == {"model": 0.0, "data": 0.0}


def test_a_finite_series_of_b_modes_uses_b_from_the_problem():
    family = sorted(BASES)[0]
    config = {
        "problem": {"name": "antiderivative", "inputs": {"family": family, "modes": 4}},
        "model": {"name": "deeponet"},
    }
    rates = _by_axis(theory.predictions(_resolved(config)))
    assert rates["model"].exponent == pytest.approx(1 / 5)
    assert rates["data"].exponent == pytest.approx(1 / 7)


def test_deep_relu_regression_on_d_dimensions():
    rates = _by_axis(theory.deep_relu({"b": 4, "d2": 0, "model": "mlp"}))
    assert rates["model"].exponent == pytest.approx(1 / 4)
    assert rates["data"].exponent == pytest.approx(1 / 6)
    assert theory.deep_relu({"b": 4, "d2": 0, "model": "deeponet"}) == []
    assert theory.deep_relu({"b": None, "d2": 0, "model": "mlp"}) == []


def test_each_theory_applies_to_its_own_case_only():
    cases = {
        ("deeponet", 3, 1): {"deeponet_finite_inputs"},
        ("deeponet", None, 1): {"deeponet_lipschitz"},
        ("mlp", 3, 0): {"deep_relu"},
        ("mlp", None, 1): set(),
    }
    for (model, b, d2), expected in cases.items():
        params = {"model": model, "b": b, "d2": d2}
        found = {p.theory for fn in theory.THEORIES.values() for p in fn(params)}
        assert found == expected, (model, b, d2)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.3, 0.4, "decays faster than the bound's rate: compatible, the bound is not tight here"),
        (0.1, 0.3, "indistinguishable from the bound's rate"),
        (
            0.05,
            0.15,
            "slower than the bound's rate: contradicts the bound only if its assumptions hold",
        ),
    ],
)
def test_verdicts_are_worded_as_bounds(low, high, verdict):
    bound = theory.deeponet_finite_inputs({"model": "deeponet", "b": 3, "d2": 1})[1]  # 1/6
    assert bound.exponent == pytest.approx(1 / 6) and bound.assumptions
    assert theory.verdict(low, high, bound) == verdict


def test_a_logarithmic_rate_is_not_a_test_and_a_dataset_has_no_bound():
    (lipschitz, _) = theory.deeponet_lipschitz({"model": "deeponet", "b": None, "d2": 1})
    assert theory.verdict(0.3, 0.4, lipschitz) == "no power-law bound applies: not a test"
    dataset = {"model": "deeponet", "b": None, "d2": 1, "inputs_known": False}
    assert theory.deeponet_lipschitz(dataset) == []


def test_group_config_sets_the_groups_values_without_touching_the_study():
    study = {"problem": {"inputs": {"modes": 2}}}
    group = theory.group_config(study, {"problem.inputs.modes": 6})
    assert group["problem"]["inputs"]["modes"] == 6
    assert study["problem"]["inputs"]["modes"] == 2


def test_no_bound_is_claimed_for_a_linearized_network():
    config = {"problem": {"name": "antiderivative", "inputs": {"family": "grf"}}}
    network = theory.predictions(_resolved(config | {"model": {"name": "deeponet"}}))
    linearized = {"name": "deeponet", "linearized": True}
    assert network and theory.predictions(_resolved(config | {"model": linearized})) == []
