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


def test_least_squares_excess_risk_is_noise2_b_over_n_minus_b_minus_1():
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
    assert np.mean(risks) == pytest.approx(noise**2 * b / (n - b - 1), rel=0.15)


def _cube(factor, seeds=4, b=4, noise=0.3):
    """A calibration cube whose measured risk is `factor` x the closed form (x 5% noise)."""
    rng = np.random.default_rng(1)
    widths, n_train = [32, 128], [16, 32, 64, 128, 256, 512]
    n = np.array(n_train, float)[None, :, None]
    closed = noise**2 * b / (n - b - 1)
    measured = factor * closed * np.exp(rng.normal(0, 0.05, (len(widths), len(n_train), seeds)))
    measured[0] *= 1.5  # the smaller model is worse: the envelope picks the larger
    dims = ("width", "n_train", "seed")
    study = {"study": "cal", "sweep": {"model.width": widths, "data.n_train": n_train}}
    study["problem"] = {"noise": noise, "inputs": {"family": "sine", "modes": b}}
    ds = xr.Dataset(
        {
            "test_rel_mse": (dims, measured),
            "test_rel_l2": (dims, np.sqrt(measured)),
            "n_params": (dims, np.ones_like(measured) * np.array(widths)[:, None, None] ** 2),
            "ls_test_rel_mse": (dims, closed * np.ones_like(measured)),
            "status": (dims, np.zeros(measured.shape, "int8")),
        },
        coords={"width": widths, "n_train": n_train, "seed": np.arange(seeds)},
        attrs={
            "config": json.dumps(config.validate_study(study)),
            "axes": json.dumps({"width": "model.width", "n_train": "data.n_train"}),
        },
    )
    return cube.describe(cube.model_coords(ds, ["width"]))  # n_params as collect lays it out


def test_the_calibration_holds_above_the_closed_form_and_at_its_rate():
    tables = calibration.analyse(_cube(1.3), {"confidence": 0.95})
    risk, rate, theory = tables["risk"], tables["rate"], tables["theory"]
    assert (risk["size"] == "width=128").all() and risk["ratio"].min() > 1.1
    row = rate.iloc[0]
    assert row.exponent_low < row.closed_form < row.exponent_high
    assert row.closed_form == pytest.approx(0.5, abs=0.02)
    assert list(theory["verdict"]) == ["holds", "holds"]


def test_the_calibration_says_when_models_beat_least_squares():
    theory = calibration.analyse(_cube(0.5), {"confidence": 0.95})["theory"]
    assert theory["verdict"].iloc[0] == "does not hold"


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
