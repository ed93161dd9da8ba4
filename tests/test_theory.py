"""The theory registry: exponents of the papers, converted to the unsquared error."""

import copy

import pytest

from opscale import theory
from opscale.config import validate_study
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


def test_infinite_dimensional_inputs_get_only_logarithmic_rates():
    config = {"problem": {"name": "antiderivative", "inputs": {"family": "grf"}}}
    rates = theory.predictions(_resolved(config))
    assert {p.theory for p in rates} == {"deeponet_lipschitz"}
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
