import numpy as np
import pytest

from opscale import config as cfg
from opscale import grid, problems
from opscale.problems.inputs import FAMILIES, rbf_kernel
from opscale.problems.operators import antiderivative
from opscale.rng import numpy_rng
from tests.helpers import tiny_config

X = np.linspace(0.0, 1.0, 201)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families_are_prefix_stable(family):
    spec = cfg.validate_study({"study": "x"})["problem"]["inputs"] | {"family": family}
    small = FAMILIES[family](numpy_rng(3, "t"), 5, X, spec)
    large = FAMILIES[family](numpy_rng(3, "t"), 40, X, spec)
    # the same draws; BLAS may round the last bit differently for different n
    np.testing.assert_allclose(small, large[:5], rtol=0, atol=1e-12)


def test_grf_covariance_matches_its_kernel():
    spec = {"kernel": "rbf", "length_scale": 0.2, "variance": 2.0}
    x = np.linspace(0.0, 1.0, 41)
    samples = FAMILIES["grf"](numpy_rng(0, "cov"), 20000, x, spec)
    np.testing.assert_allclose(np.cov(samples.T), rbf_kernel(x, 0.2, 2.0), atol=0.08)


def test_antiderivative_matches_closed_form():
    u = np.cos(2 * np.pi * X)[None]
    exact = np.sin(2 * np.pi * X) / (2 * np.pi)
    errors = []
    for resolution in (101, 201, 401):
        x = np.linspace(0.0, 1.0, resolution)
        s = antiderivative(np.cos(2 * np.pi * x)[None], x, {})
        errors.append(np.abs(s[0] - np.sin(2 * np.pi * x) / (2 * np.pi)).max())
    assert np.abs(antiderivative(u, X, {})[0] - exact).max() < 1e-4
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 2.0, atol=0.05)  # trapezoid rule: second order


def _data(config):
    point = grid.points(cfg.validate_study(config))[0]
    return problems.generate(grid.data_specs(cfg.validate_study(config))[point.data_id])


def test_generated_file_layout():
    ds = _data(tiny_config(sweep={}))
    assert ds.u.dims == ("seed", "sample", "sensor")
    assert ds.s.dims == ("seed", "sample", "query")
    assert ds.y.dims == ("query", "y_dim")
    assert ds.sizes["sensor"] == 20 and ds.sizes["query"] == 10
    assert list(np.unique(ds.split.values, return_counts=True)[1]) == [16, 16, 8]
    assert (ds.s.isel(query=0) == 0).all()  # s(0) = 0
    for name in [*ds.data_vars, *ds.coords]:
        assert {"long_name", "units"} <= set(ds[name].attrs), name


def test_smaller_training_sets_are_prefixes_and_other_splits_are_shared():
    small = _data(tiny_config(sweep={}, data={"n_train": 5, "n_val": 8, "n_test": 16}))
    large = _data(tiny_config(sweep={}, data={"n_train": 12, "n_val": 8, "n_test": 16}))
    train_small = small.u.values[:, small.split.values == "train"]
    train_large = large.u.values[:, large.split.values == "train"]
    np.testing.assert_allclose(train_small, train_large[:, :5], rtol=0, atol=1e-12)
    for split in ("val", "test"):
        np.testing.assert_allclose(
            small.s.values[:, small.split.values == split],
            large.s.values[:, large.split.values == split],
            atol=1e-12,
        )


def test_seeds_draw_different_functions():
    ds = _data(tiny_config(sweep={}))
    assert not np.allclose(ds.u.values[0], ds.u.values[1])
