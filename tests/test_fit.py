import json

import numpy as np
import pytest

from opscale import cube, fit
from tests.helpers import synthetic_cube


def _row(fits, law, term):
    rows = [
        i
        for i in range(fits.sizes["row"])
        if fits.law.values[i] == law and fits.term.values[i] == term
    ]
    assert len(rows) == 1
    return fits.isel(row=rows[0])


def test_planted_exponents_without_floor_are_recovered():
    # Without a floor, a pure product law err = C n^-beta N^-alpha is exactly log-linear.
    ds = synthetic_cube()
    n = ds.n_train.broadcast_like(ds.test_rel_l2)
    ds["test_rel_l2"] = (
        5
        * n**-0.8
        * ds.n_params**-0.5
        * np.exp(np.random.default_rng(1).normal(0, 0.05, ds.test_rel_l2.shape))
    )
    fits = fit.fit(ds)
    for law, term, truth in [
        ("joint", "log_n", 0.8),
        ("joint", "log_N", 0.5),
        ("data", "log_n", 0.8),
        ("model", "log_N", 0.5),
    ]:
        row = _row(fits, law, term)
        assert float(row.ci_low) <= truth <= float(row.ci_high), (law, term)
        assert abs(float(row.exponent) - truth) < 0.05
        assert int(row.n_clusters) == 5
        assert "cluster-robust" in str(row.method.values)


def test_floor_biases_the_log_log_slope_down():
    # The known failure of plain log-log OLS that the statistics issue corrects.
    fits = fit.fit(synthetic_cube(alpha=0.5, beta=0.8, floor=0.05))
    assert float(_row(fits, "data", "log_n").exponent) < 0.6


def test_diverged_and_missing_models_are_excluded_and_counted():
    ds = synthetic_cube()
    ds["status"][0, 0, 0] = cube.DIVERGED
    ds["status"][1, 1, :] = cube.MISSING
    ds["test_rel_l2"][1, 1, :] = np.nan
    fits = fit.fit(ds)
    assert json.loads(fits.attrs["excluded"]) == {"diverged": 1, "missing": 5}
    assert int(_row(fits, "joint", "log_n").n_obs) == 4 * 5 * 5 - 6


def test_fitted_values_lie_on_the_grid():
    fits = fit.fit(synthetic_cube())
    assert fits.fitted_data.dims == ("width", "n_train")
    assert (fits.fitted_data > 0).all()


def test_single_seed_falls_back_to_hc1():
    fits = fit.fit(synthetic_cube(seeds=1))
    assert "HC1" in str(_row(fits, "joint", "log_n").method.values)


def test_fit_cube_writes_netcdf_and_markdown(tmp_path):
    cube.write(synthetic_cube(), tmp_path / "cube.nc")
    fit.fit_cube(tmp_path / "cube.nc", tmp_path / "fit.nc", tmp_path / "fit.md")
    table = (tmp_path / "fit.md").read_text()
    assert "| all | joint | n (training functions) |" in table
    assert cube.read(tmp_path / "fit.nc").sizes["row"] == 4


@pytest.mark.parametrize("axis", ["model.width", "data.n_train"])
def test_laws_need_their_axis_to_vary(axis):
    ds = synthetic_cube()
    name = axis.split(".")[1]
    one = ds.isel({name: [0]})
    fits = fit.fit(one)
    assert set(fits.law.values) == ({"model"} if name == "n_train" else {"data"})
