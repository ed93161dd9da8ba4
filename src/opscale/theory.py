"""Predictions of the theory, as a registry: study parameters -> exponents with citations.

Each entry of ``THEORIES`` is a function ``(params) -> list[Prediction]`` of a study's
parameters (``b`` intrinsic input dimension, ``d2`` output-domain dimension, ``d`` input
dimension of a deep ReLU regression, ``model`` the architecture), returning nothing when
it does not apply. ``predictions(config)`` reads the parameters of a (group's) resolved
study config and collects every applicable prediction.

Every prediction refers to the **unsquared** error that opscale measures (the relative L2
test error): err ~ N^-alpha (model axis), err ~ n^-beta (data axis). The bounds of the
papers are stated for different errors, and are converted here:

- the approximation error (model axis) is an unsquared norm: its exponent is used as is;
- the generalisation bound (data axis) is for the *squared* error, err^2 ~ n^-r, so the
  unsquared error decays with exponent r/2 (the table prints both).

The rates are upper bounds (up to constants and log factors), as summarised from the
papers, so a verdict is worded as one (``verdict``): an interval above the rate "decays
faster than the bound's rate: compatible, the bound is not tight here" (not a
confirmation); containing it, "indistinguishable from the bound's rate"; below it, "slower
than the bound's rate: contradicts the bound only if its assumptions hold". A logarithmic
rate (general Lipschitz operators) has no power-law exponent to compare: "no power-law
bound applies: not a test". GRF inputs are infinite-dimensional in the theorem's sense
but the generator keeps finitely many KL modes: they get the finite-input rates at the
effective dimension b_eff (99% of the energy), every verdict on them prefixed "effective-
dimension heuristic, not a theorem". Every prediction carries the assumptions under which
the bound holds (``Prediction.assumptions``), printed beside the verdict.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from opscale.config import set_path
from opscale.problems.registry import inputs_known, intrinsic_dim, output_dim

LZLS = (
    "Liu, Zhang, Liao & Schaeffer 2024, Neural scaling laws of deep ReLU and deep operator "
    "network: a theoretical study (arXiv 2410.00357), as summarised"
)
AXES = {"model": "N (parameters)", "data": "n (training functions)"}


@dataclass(frozen=True)
class Prediction:
    """One predicted exponent of the unsquared error along one axis.

    Attributes
    ----------
    theory : str
        Key of the registry entry that made it.
    axis : str
        ``"model"`` (N, parameters) or ``"data"`` (n, training functions).
    exponent : float
        Rate of the unsquared error, err ~ x^-exponent (0 for logarithmic rates: slower
        than every power law).
    formula : str
        The rate as printed, with the parameters filled in.
    citation : str
        Where the bound comes from.
    kind : str
        ``"power"`` (a power-law rate to compare with), ``"heuristic"`` (a power-law rate
        outside the theorem's assumptions, e.g. at an effective dimension: its verdict is
        labelled so) or ``"logarithmic"`` (slower than every power law: no measured
        exponent tests it).
    assumptions : str
        What the bound assumes of the study, in words.
    """

    theory: str
    axis: str
    exponent: float
    formula: str
    citation: str
    kind: str = "power"
    assumptions: str = ""


# What the bounds assume (as summarised from the paper); printed beside every verdict.
ASSUMPTIONS = {
    "model": "bounded inputs; a network of the theorem's family; the optimiser reaches the "
    "approximation error (converged); N in the asymptotic range",
    "data": "bounded inputs; label noise present; converged models; n in the asymptotic "
    "range (the log factor's local slope small against the rate); the theorem's family",
}
HEURISTIC = "effective-dimension heuristic, not a theorem"


def deeponet_finite_inputs(params: dict) -> list[Prediction]:
    """DeepONet, inputs spanned by b orthonormal functions, output domain of dim d2.

    Approximation err ~ N^-1/(b+d2); squared generalisation err ~ n^-2/(2+b+d2), i.e.
    the unsquared error ~ n^-1/(2+b+d2).
    """
    b, d2 = params.get("b"), params["d2"]
    if params["model"] != "deeponet" or b is None:
        return []
    return [
        _power("deeponet_finite_inputs", "model", 1 / (b + d2), f"1/(b+d2) = 1/{b + d2}"),
        _power(
            "deeponet_finite_inputs",
            "data",
            1 / (2 + b + d2),
            f"err^2: 2/(2+b+d2) = 2/{2 + b + d2}; err: half",
        ),
    ]


def deeponet_lipschitz(params: dict) -> list[Prediction]:
    """DeepONet on a general Lipschitz operator (infinite-dimensional inputs).

    Only logarithmic rates, err ~ (log x / log log x)^-c: slower than any power law, so
    no measured exponent tests it. Inputs whose spectrum is known (a GRF drawn from a
    finite KL expansion) get ``deeponet_effective_dim`` instead.
    """
    if params["model"] != "deeponet" or params.get("b") is not None:
        return []
    if params.get("spectrum") is not None:
        return []
    if not params.get("inputs_known", True):  # data from files: the dimension is unknown
        return []
    formula = "(log x / log log x)^-c: no power-law exponent"
    return [
        Prediction("deeponet_lipschitz", axis, 0.0, formula, LZLS, "logarithmic", ASSUMPTIONS[axis])
        for axis in AXES
    ]


def deeponet_effective_dim(params: dict) -> list[Prediction]:
    """DeepONet on GRF inputs: the finite-input rates at the effective dimension b_eff.

    A GRF is infinite-dimensional, for which the theorem gives only logarithmic rates; the
    generator keeps a finite number of KL modes, and a few carry nearly all the energy
    (``problems.inputs.kl_spectrum``). The finite-input rates at b_eff (99% of the energy)
    are therefore a *heuristic*, not a theorem: its verdict says so, and the formula gives
    the modes kept and b_eff at 99% and 99.9%.
    """
    spectrum = params.get("spectrum")
    if params["model"] != "deeponet" or params.get("b") is not None or spectrum is None:
        return []
    b, d2 = spectrum["b_eff"][0.99], params["d2"]
    dims = (
        f"b_eff {b} at 99% and {spectrum['b_eff'][0.999]} at 99.9% of the KL energy, "
        f"{spectrum['modes']} modes kept"
    )
    rates = {
        "model": (1 / (b + d2), f"1/(b_eff+d2) = 1/{b + d2}"),
        "data": (1 / (2 + b + d2), f"err^2: 2/(2+b_eff+d2) = 2/{2 + b + d2}; err: half"),
    }
    return [
        Prediction(
            "deeponet_effective_dim",
            axis,
            rate,
            f"{formula} ({dims})",
            LZLS,
            "heuristic",
            f"{HEURISTIC} ({dims}); {ASSUMPTIONS[axis]}",
        )
        for axis, (rate, formula) in rates.items()
    ]


def deep_relu(params: dict) -> list[Prediction]:
    """Deep ReLU regression on a d-dimensional domain: N^-1/d; squared err n^-2/(2+d).

    Applies to an MLP on a regression task (scalar output, d2 = 0) with known d.
    """
    d = params.get("b")
    if params["model"] != "mlp" or d is None or params["d2"] != 0:
        return []
    return [
        _power("deep_relu", "model", 1 / d, f"1/d = 1/{d}"),
        _power("deep_relu", "data", 1 / (2 + d), f"err^2: 2/(2+d) = 2/{2 + d}; err: half"),
    ]


def _power(theory: str, axis: str, exponent: float, formula: str) -> Prediction:
    return Prediction(theory, axis, float(exponent), formula, LZLS, "power", ASSUMPTIONS[axis])


THEORIES = {
    "deeponet_finite_inputs": deeponet_finite_inputs,
    "deeponet_lipschitz": deeponet_lipschitz,
    "deeponet_effective_dim": deeponet_effective_dim,
    "deep_relu": deep_relu,
}


def study_parameters(config: dict) -> dict:
    """The parameters the theories depend on, from a resolved study config.

    ``b`` is the intrinsic dimension of the inputs (``None``: infinite, e.g. a GRF); for a
    deep ReLU regression it is the domain dimension d. ``d2`` is the output dimension.
    ``model`` is the architecture's name, marked ``(linearized)`` for a linearized one.
    `config` must be resolved (validated once, defaults filled in: ``validate_study``);
    the cubes store theirs so.
    """
    from opscale.problems.inputs import kl_spectrum  # numpy and scipy: not at import

    problem, model = config["problem"], config["model"]
    name = model["name"]
    return {
        "b": intrinsic_dim(problem),
        "inputs_known": inputs_known(problem),
        "spectrum": kl_spectrum(problem) if inputs_known(problem) else None,
        "d2": output_dim(problem),
        # a linearized network is a kernel model: the networks' bounds do not cover it
        "model": f"{name} (linearized)" if model["linearized"] else name,
    }


def predictions(config: dict) -> list[Prediction]:
    """Every applicable prediction for a resolved study config (one per theory and axis)."""
    params = study_parameters(config)
    return [p for theory in THEORIES.values() for p in theory(params)]


def group_config(config: dict, paths: dict) -> dict:
    """A study config with a group's swept values set (dotted path -> value).

    A copy: `config` is untouched. A resolved `config` gives a resolved group config (every
    swept setting already has its default filled in, and no default depends on another).
    """
    resolved = copy.deepcopy(config)
    for path, value in paths.items():
        set_path(resolved, path, value)
    return resolved


VERDICTS = {
    "faster": "decays faster than the bound's rate: compatible, the bound is not tight here",
    "within": "indistinguishable from the bound's rate",
    "slower": "slower than the bound's rate: contradicts the bound only if its assumptions hold",
    "logarithmic": "no power-law bound applies: not a test",
}


def verdict(low: float, high: float, prediction: Prediction) -> str:
    """Where a measured interval [low, high] lies relative to an upper bound's rate."""
    if prediction.kind == "logarithmic":
        return VERDICTS["logarithmic"]
    if low > prediction.exponent:
        found = VERDICTS["faster"]
    elif high < prediction.exponent:
        found = VERDICTS["slower"]
    else:
        found = VERDICTS["within"]
    return f"{HEURISTIC}: {found}" if prediction.kind == "heuristic" else found
