"""Label noise, and the calibration against least squares' known excess risk."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from opscale import config, cube, grid
from opscale.analyses import calibration
from opscale.measures.calibration import Calibration
from opscale.problems.registry import generate
from opscale.problems.tensors import Split
from opscale.rng import numpy_rng


def _spec(noise, n_train=16):
    problem = {"noise": noise, "sensors": 12, "queries": 8, "resolution": 64}
    problem["inputs"] = {"family": "sine", "modes": 3, "coefficients": "normal", "decay": 0.0}
    resolved = config.validate_study({"study": "x", "problem": problem})["problem"]
    return {
        "problem": resolved,
        "data": {"n_train": n_train, "n_val": 4, "n_test": 40},
        "seeds": [0, 1],
    }


def test_label_noise_is_on_train_and_val_labels_only_with_its_stated_sd():
    noisy, clean = generate(_spec(0.2)), generate(_spec(0.0))
    split = noisy["split"].values
    test = split == "test"
    assert np.array_equal(noisy.s.values[:, test], clean.s.values[:, test])
    rms = np.sqrt((clean.s.values[:, test] ** 2).mean(axis=(1, 2)))
    assert noisy.label_noise_sd.values == pytest.approx(0.2 * rms)
    for i in range(2):
        drawn = (noisy.s.values - clean.s.values)[i, split != "test"]
        assert drawn.std() == pytest.approx(0.2 * rms[i], rel=0.2)
    smaller = generate(_spec(0.2, n_train=8))  # a smaller training set: a prefix
    rows = np.flatnonzero(split == "train")[:8]
    assert np.allclose(
        smaller.s.values[:, smaller["split"].values == "train"], noisy.s.values[:, rows]
    )


def test_noise_zero_leaves_every_id_and_spec_as_it_was():
    # A point's spec (the rules' params: Snakemake reruns a job whose params change) and id
    # hold problem.noise only when it is set.
    quiet = grid.points(config.validate_study({"study": "x"}))[0]
    assert "noise" not in quiet.spec["problem"]
    assert quiet.id.rsplit("-", 1)[1] == grid.digest(quiet.spec)
    noisy = grid.points(config.validate_study({"study": "x", "problem": {"noise": 0.1}}))[0]
    assert noisy.spec["problem"]["noise"] == 0.1 and noisy.id != quiet.id


def test_the_closed_form_and_its_slope():
    # with an intercept: noise^2 (1/n + (1 + 1/n) b / (n - b - 2)); n = 20, b = 4: 1/20 + 1.05/3.5
    assert calibration.least_squares_risk(1.0, 4, 20) == pytest.approx(0.05 + 0.3)
    assert calibration.least_squares_risk(0.5, 4, 20) == pytest.approx(0.25 * 0.35)
    n = np.array([16.0, 64.0, 1e6])
    slope = calibration.risk_slope(4, n)  # -d log sqrt(R) / d log n, by hand at n = 1e6
    assert slope[-1] == pytest.approx(0.5, abs=1e-4) and (slope[:2] > 0.5).all()
    by_hand = -0.5 * np.diff(np.log(calibration.least_squares_risk(1.0, 4, np.array([63.9, 64.1]))))
    assert slope[1] == pytest.approx(by_hand[0] / np.diff(np.log([63.9, 64.1]))[0], rel=1e-4)


def test_least_squares_excess_risk_with_an_intercept_is_the_closed_form():
    # Known answer: outputs linear in b = 4 Gaussian coefficients, relative noise 0.3.
    b, n, q, noise, draws = 4, 40, 6, 0.3, 200
    rng = numpy_rng(0, "test", "calibration")
    mixing, readout = rng.normal(size=(b, 10)), rng.normal(size=(b, q))  # sensors 10 > b

    def split(rows, sd):
        c = rng.normal(size=(draws, rows, b))
        s = c @ readout
        return Split(
            torch.tensor(c @ mixing),
            torch.zeros(q, 1),
            torch.tensor(s + sd * rng.normal(size=s.shape)),
        )

    test = split(2000, 0.0)
    rms = float(test.s.square().mean().sqrt())
    data = {"train": split(n, noise * rms), "test": test}
    members = type("Members", (), {"n_train": np.full(draws, n)})()
    measure = Calibration({}, {"problem": {"query_points": "grid"}}, members)
    risks = [measure.least_squares(data, i) for i in range(draws)]
    assert np.mean(risks) == pytest.approx(calibration.least_squares_risk(noise, b, n), rel=0.1)
    assert np.mean(risks) > 1.1 * noise**2 * b / (n - b - 1)  # more than without intercept


def _cube(factor, seeds=4, b=4, noise=0.3, activations=None, spread=0.05):
    """A calibration cube whose measured risk is `factor` x the closed form (x `spread` noise).

    With `activations` (name -> factor) a swept model.activation axis, one factor each.
    """
    rng = np.random.default_rng(1)
    widths, n_train = [32, 128], [16, 32, 64, 128, 256, 512]
    factors = np.array(list((activations or {"relu": factor}).values()))[:, None, None, None]
    n = np.array(n_train, float)[None, None, :, None]
    closed = calibration.least_squares_risk(noise, b, n)
    shape = (len(factors), len(widths), len(n_train), seeds)
    measured = factors * closed * np.exp(rng.normal(0, spread, shape))
    measured[:, 0] *= 1.5  # the smaller model is worse: the envelope picks the larger
    dims, axes = ("activation", "width", "n_train", "seed"), {"width": "model.width"}
    sweep = {"model.width": widths, "data.n_train": n_train}
    coords = {"activation": list(activations or ["relu"]), "width": widths, "n_train": n_train}
    if activations is None:
        measured, dims, coords = measured[0], dims[1:], {k: coords[k] for k in dims[1:3]}
    else:
        axes, sweep = (
            {"activation": "model.activation", **axes},
            {"model.activation": list(activations), **sweep},
        )
    study = {"study": "cal", "sweep": sweep}
    study["problem"] = {"noise": noise, "inputs": {"family": "sine", "modes": b}}
    sizes = np.array(widths, float)[:, None, None] ** 2
    ds = xr.Dataset(
        {
            "test_rel_mse": (dims, measured),
            "test_rel_l2": (dims, np.sqrt(measured)),
            "n_params": (dims, np.ones_like(measured) * sizes),
            "ls_test_rel_mse": (dims, closed[0] * np.ones_like(measured)),
            "status": (dims, np.zeros(measured.shape, "int8")),
        },
        coords={**coords, "seed": np.arange(seeds)},
        attrs={
            "config": json.dumps(config.validate_study(study)),
            "axes": json.dumps({**axes, "n_train": "data.n_train"}),
        },
    )
    return cube.describe(cube.model_coords(ds, ["width"]))  # n_params as collect lays it out


def test_a_model_at_least_squares_risk_holds_every_statement():
    tables = calibration.analyse(_cube(1.03, spread=0.01), {"confidence": 0.95})
    risk, rate, theory = tables["risk"], tables["rate"], tables["theory"]
    assert (risk["size"] == "width=128").all() and risk["paired"].min() > 0.9
    row = rate.iloc[0]
    assert row.exponent_low < row.closed_form < row.exponent_high
    assert row.closed_form == pytest.approx(0.5, abs=0.02)
    assert list(theory["verdict"]) == ["holds", "holds", "holds"]
    assert set(theory["group"]) == {"all"}


def test_a_constant_factor_above_least_squares_does_not_approach_it():
    theory = calibration.analyse(_cube(1.5), {"confidence": 0.95})["theory"]
    verdicts = list(theory["verdict"])
    assert verdicts[0] == "holds" and verdicts[2] == "holds"  # above it, at its rate
    assert verdicts[1].startswith("does not hold: stays 1.") and verdicts[1].endswith("x above")


def test_the_calibration_says_when_models_beat_least_squares():
    theory = calibration.analyse(_cube(0.5), {"confidence": 0.95})["theory"]
    assert theory["verdict"].iloc[0] == "does not hold"


def test_each_activation_is_its_own_group_with_its_own_verdicts():
    ds = _cube(None, activations={"identity": 1.03, "relu": 8.0}, spread=0.01)
    theory = calibration.analyse(ds, {"confidence": 0.95})["theory"]
    verdicts = theory.groupby("group")["verdict"].apply(list).to_dict()
    assert verdicts["activation=identity"] == ["holds", "holds", "holds"]
    assert verdicts["activation=relu"][1] == "does not hold: stays 7.99x above"


def test_fit_md_prints_the_calibration_and_its_figure_draws(tmp_path):
    from opscale import fit, plots
    from opscale.markdown import markdown

    ds = _cube(1.3)
    settings = {"bootstrap": 0, "backtest_bootstrap": 0, "scaling": False}
    fits = fit.fit(ds, {**settings, "analyses": ["calibration"]})
    text = markdown(fits)
    assert "## Calibration: excess risk vs least squares" in text and "| holds |" in text
    cube.write(ds, tmp_path / "cube.nc")
    cube.write(fits, tmp_path / "fit.nc")
    out = tmp_path / "calibration_risk.png"
    failed = plots.draw_figures(
        tmp_path / "cube.nc", tmp_path / "fit.nc", {"calibration_risk": out}
    )
    assert not failed and out.stat().st_size > 5_000
