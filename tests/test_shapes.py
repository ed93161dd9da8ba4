"""Model size as the theorem counts it, the envelope, and the invariance claims (D, n_x):
known answers on planted cubes and tables."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from opscale import fit, resources, tables
from opscale.config import validate_study
from opscale.ensemble import params_per_member
from opscale.markdown import markdown
from opscale.models import deeponet
from opscale.resources import sensor_layer
from opscale.scaling import shapes, sizes
from opscale.scaling.observations import observations
from tests.helpers import synthetic_cube

QUICK = {"bootstrap": 60, "backtest_bootstrap": 0, "refine": 2}


def _size_rows(fits, size, term="log_N"):
    rows = tables.table(fits, "size").query("size == @size and term == @term")
    assert len(rows) == 1, (size, term, tables.table(fits, "size")[["size", "term"]])
    return rows.iloc[0]


@pytest.mark.parametrize(("depth", "p"), [(2, None), (3, 16), (1, 8)])
def test_the_sensor_layer_is_the_branch_s_first_layer_of_the_built_model(depth, p):
    spec = {"name": "deeponet", "width": 24, "depth": depth, "p": p, "activation": "relu"}
    shapes_ = resources.Shapes(sensors=37, queries=11, y_dim=1, aligned=True)
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    model = deeponet.build(spec, {"sensors": 37, "y_dim": 1}, generators, torch.float32)
    first = model.branch.layers[0]
    assert sensor_layer(spec, shapes_) == params_per_member(first)  # the model's own count
    assert sensor_layer(spec, shapes_) == (37 + 1) * (24 if depth > 1 else p)
    assert resources.n_params(spec, shapes_) == params_per_member(model)


def _real_counts_cube(alpha=0.6, beta=0.7, rng_seed=3):
    """A width sweep whose n_params are the real DeepONet counts of its config (100
    sensors, width 16 ... 128), with err = 3 N_core^-alpha + 2 n^-beta planted in N
    without the sensor layer."""
    widths = (16, 32, 64, 128)
    ds = synthetic_cube(widths=widths, rng_seed=rng_seed, noise=0.05)
    config = json.loads(ds.attrs["config"])
    shapes_ = resources.problem_shapes(config["problem"])
    models = [{**config["model"], "width": w} for w in widths]
    n_params = np.array([resources.n_params(m, shapes_) for m in models])
    core = n_params - np.array([sensor_layer(m, shapes_) for m in models])
    rng = np.random.default_rng(rng_seed)
    law = 3 * core[:, None, None] ** -alpha + 2 * ds.n_train.values[None, :, None] ** -beta
    noise = np.exp(rng.normal(0, 0.05, ds.test_rel_l2.shape))
    ds["test_rel_l2"] = (ds.test_rel_l2.dims, law * noise)
    return ds.assign_coords(n_params=("width", n_params))


def test_a_law_planted_in_n_without_the_sensor_layer_is_recovered_there_only():
    fits = fit.fit(_real_counts_cube(), QUICK)
    core, full = _size_rows(fits, "N without sensor layer"), _size_rows(fits, "N (all parameters)")
    assert core.ci_low <= 0.6 <= core.ci_high and abs(core.exponent - 0.6) < 0.06
    # the sensor layer, linear in the width, makes log N grow more slowly than log N_core
    # over the widths, so the same error falls faster per unit of log N
    assert full.exponent > core.exponent
    assert not full.ci_low <= 0.6 <= full.ci_high
    assert core.verdict.startswith("not the theorem's count")
    assert core.theory_exponent == full.theory_exponent  # shown for comparison
    assert not full.verdict.startswith("not the theorem's count")
    # the exponent table and its headline stay in N, all parameters
    robust = tables.table(fits, "row").query("law == 'robust' and term == 'log_N'")
    assert robust.exponent.tolist() == [full.exponent]


def _p_sweep(alpha=0.5, p_values=(4, 8, 16, 32, 64)):
    """A model.p sweep at fixed width: synthetic_cube's N = 10 p^2, so the planted law
    3 N^-alpha is 3 10^-alpha p^-(2 alpha): an exponent 2 alpha in p."""
    ds = synthetic_cube(alpha=alpha, widths=p_values, n_train=(32, 64, 128, 256), rng_seed=4)
    ds = ds.rename(width="p")
    config = json.loads(ds.attrs["config"])
    config["sweep"] = {"model.p": list(p_values), "data.n_train": config["sweep"]["data.n_train"]}
    axes = {"p": "model.p", "n_train": "data.n_train"}
    return ds.assign_attrs(config=json.dumps(validate_study(config)), axes=json.dumps(axes))


def test_a_law_planted_in_p_is_recovered_within_its_interval():
    cube_ = _p_sweep()
    obs, _ = observations(cube_)
    assert np.allclose(np.exp(obs["log_p"]), obs["p"])  # model.p swept: p is the value
    fits = fit.fit(cube_, QUICK)
    p_row = _size_rows(fits, "p (basis functions)")
    assert p_row.ci_low <= 1.0 <= p_row.ci_high and abs(p_row.exponent - 1.0) < 0.1
    assert p_row.theory == "" and "no prediction in p" in p_row.verdict
    # width 40 with 100 sensors: N (here 10 p^2) is no larger than the sensor layer
    notes = tables.table(fits, "note")
    assert "without this count" in notes.query("step == 'N without sensor layer'").reason.iloc[0]


def test_a_width_sweep_with_p_null_is_a_p_sweep():
    obs, _ = observations(synthetic_cube())
    assert (np.exp(obs["log_p"]).round() == obs["width"]).all()


def test_the_envelope_is_the_smallest_error_over_n_per_n_and_seed():
    frame = pd.DataFrame(
        {
            "log_N": np.log([10, 100, 10, 100, 10, 100]),
            "log_n": np.log([8, 8, 16, 16, 16, 16]),
            "seed": [0, 0, 0, 0, 1, 1],
            "err": [0.5, 0.4, 0.3, 0.35, 0.2, 0.1],
        }
    )
    best = sizes.envelope(frame)
    assert best["err"].tolist() == [0.4, 0.3, 0.1]
    assert best["point"].tolist() == [0, 1, 1]


def test_the_envelope_recovers_a_planted_data_exponent():
    fits = fit.fit(synthetic_cube(alpha=0.7, beta=0.6, floor=0.01, rng_seed=5), QUICK)
    row = _size_rows(fits, "envelope min over N", "log_n")
    assert row.law == "envelope" and row.identified == "yes"
    assert row.ci_low <= 0.6 <= row.ci_high and abs(row.exponent - 0.6) < 0.1
    assert row.n_obs == 5 * 5  # one model per (n, seed)
    assert "whole seeds redrawn" in row.method
    assert "local slope" not in row.verdict and "not the theorem" not in row.verdict


def _sensor_sweep(betas, sensors=(25, 50, 100, 200)):
    """Planted studies stacked on a swept problem.sensors, data exponent betas[i]."""
    parts = [
        synthetic_cube(beta=b, rng_seed=10 + i, widths=(8, 16, 32), n_train=(16, 32, 64, 128))
        for i, b in enumerate(betas)
    ]
    ds = xr.concat(parts, dim="sensors").assign_coords(sensors=list(sensors))
    ds = ds.transpose("sensors", "width", "n_train", "seed")
    config = json.loads(parts[0].attrs["config"])
    config["sweep"] = {"problem.sensors": list(sensors), **config["sweep"]}
    axes = {"sensors": "problem.sensors", "width": "model.width", "n_train": "data.n_train"}
    return ds.assign_attrs(config=json.dumps(validate_study(config)), axes=json.dumps(axes))


def _invariance(fits, term, law="robust"):
    rows = tables.table(fits, "invariance").query("term == @term and law == @law")
    assert len(rows) == 1
    return rows.iloc[0]


def test_an_exponent_planted_independent_of_n_x_holds_and_a_planted_difference_does_not():
    same = fit.fit(_sensor_sweep((0.8, 0.8, 0.8, 0.8)), QUICK, workers=2)
    for term in ("log_N", "log_n"):
        row = _invariance(same, term)
        assert row.verdict == "holds", row
        assert row.difference_low <= 0 <= row.difference_high
        assert row.compared == "n_x = 25 and 200" and row.setting == "problem.sensors"
    apart = fit.fit(_sensor_sweep((0.5, 0.6, 0.8, 1.1)), QUICK, workers=2)
    row = _invariance(apart, "log_n")
    assert row.verdict == "does not hold" and row.difference_low > 0
    assert row.difference == pytest.approx(0.6, abs=0.15)
    # the OLS local slopes, a second row: biased by the N term (the faster beta's n term
    # falls under it sooner), so no planted answer, only that it is there
    local = _invariance(apart, "log_n", "data")
    assert local.compared == "n_x = 25 and 200" and np.isfinite(local.difference)
    text = markdown(apart)
    assert "Shape across D and n_x" in text and "does not depend on the sensor count" in text


def _exponent_rows(exponents):
    """Exponent rows of groups (dim, ambient_dim) -> (exponent, half-width of its CI)."""
    return pd.DataFrame(
        [
            {
                "group": f"dim={d}, ambient_dim={D}",
                "law": "robust",
                "term": "log_n",
                "exponent": e,
                "ci_low": e - h,
                "ci_high": e + h,
                "identified": "yes",
            }
            for (d, D), (e, h) in exponents.items()
        ]
    )


def test_the_d_claim_compares_groups_of_one_d_and_its_interval_is_the_quadrature_sum():
    exponents = {(1, 8): (0.50, 0.10), (1, 32): (0.52, 0.10), (2, 8): (0.30, 0.03)}
    exponents[(2, 32)] = (0.40, 0.04)
    paths = {
        f"dim={d}, ambient_dim={D}": {"problem.dim": d, "problem.ambient_dim": D}
        for d, D in exponents
    }
    rows = shapes.invariance_rows(_exponent_rows(exponents), paths)
    by = {r["within"]: r for r in rows}
    assert set(by) == {"problem.dim = 1", "problem.dim = 2"}
    one, two = by["problem.dim = 1"], by["problem.dim = 2"]
    assert one["difference"] == pytest.approx(0.02) and one["verdict"] == "holds"
    # half-widths 0.03 and 0.04 at 95%: the difference's is their quadrature sum, 0.05
    assert two["difference"] == pytest.approx(0.10)
    assert two["difference_low"] == pytest.approx(0.05) and two["verdict"] == "does not hold"
    assert two["relative"] == pytest.approx(0.10 / 0.35)
    assert two["compared"] == "D = 8 and 32"


def test_a_skewed_interval_keeps_its_sides_in_the_difference():
    rows = _exponent_rows({(1, 8): (0.3, 0.0), (1, 32): (0.6, 0.0)})
    rows.loc[0, ["ci_low", "ci_high"]] = 0.25, 0.5  # long upper side at D = 8
    rows.loc[1, ["ci_low", "ci_high"]] = 0.55, 0.62
    paths = {
        g: {"problem.dim": 1, "problem.ambient_dim": D}
        for g, D in zip(rows.group, (8, 32), strict=True)
    }
    (row,) = shapes.invariance_rows(rows, paths)
    # below: D = 32's lower side (0.05) with D = 8's upper side (0.2); above: 0.02 and 0.05
    assert row["difference_low"] == pytest.approx(0.3 - np.hypot(0.05, 0.2))
    assert row["difference_high"] == pytest.approx(0.3 + np.hypot(0.02, 0.05))
    assert row["verdict"] == "does not hold"


def test_an_unidentified_exponent_leaves_the_claim_untested():
    rows = _exponent_rows({(1, 8): (0.5, 0.1), (1, 32): (0.5, 0.1)})
    rows.loc[1, "identified"] = "no"
    paths = {
        g: {"problem.dim": 1, "problem.ambient_dim": D}
        for g, D in zip(rows.group, (8, 32), strict=True)
    }
    (row,) = shapes.invariance_rows(rows, paths)
    assert row["verdict"].startswith("not tested") and "not identified" in row["exponents"]
    rows.loc[1, ["identified", "ci_low", "ci_high"]] = "yes", np.nan, np.nan  # no interval
    (row,) = shapes.invariance_rows(rows, paths)
    assert row["verdict"].startswith("not tested") and np.isnan(row["difference_low"])
