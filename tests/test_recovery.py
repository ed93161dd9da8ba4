"""The local-recovery study: tanh teacher, two-layer student, recovery measure, analysis."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from opscale import config as cfg
from opscale import grid
from opscale.analyses import recovery as analysis
from opscale.measures import recovery as measure
from opscale.models import build_model
from opscale.models.two_layer import TwoLayer
from opscale.problems import generate, teacher
from opscale.problems.tensors import Split
from opscale.rng import numpy_rng, torch_generator
from opscale.tables import table
from tests.helpers import run_snakemake, write_config

STUDY = {
    "study": "recovery-tiny",
    "seeds": [0, 1, 2, 3],
    "problem": {"name": "tanh_teacher", "neurons": 1, "dim": 2},
    "data": {"n_train": 12, "n_val": 16, "n_test": 64},
    "model": {"name": "two_layer", "width": 1, "init_scale": 0.1},
    "train": {"steps": 1000, "lr": 0.02, "eval_every": 100, "log_every": 100},
    "measure": {"recovery": {"probes": 64, "tolerance": 0.01}},
    "members": ["data.n_train"],
    "fit": {"scaling": False, "analyses": ["recovery"]},
    "sweep": {"model.width": [1, 3], "data.n_train": [2, 3, 6, 12]},
}


def _spec(k=2, d=3, m=6, seeds=(0, 1), n_train=10):
    config = cfg.validate_study(
        {**STUDY, "seeds": list(seeds), "sweep": {}, "members": []}
        | {"problem": {"name": "tanh_teacher", "neurons": k, "dim": d}}
        | {"model": {"name": "two_layer", "width": m}, "data": {"n_train": n_train}}
    )
    return grid.points(config)[0].spec


class _Members:
    def __init__(self, seeds):
        self.seed, self.n_train = np.asarray(seeds), np.full(len(seeds), 10)

    def __len__(self):
        return len(self.seed)


# ---------------------------------------------------------------- problem
def test_teacher_data_are_the_teachers_outputs_on_gaussian_inputs():
    spec = _spec(k=3, d=4)
    ds = generate(spec)
    assert ds.u.shape == (2, 10 + 200 + 500, 4) and ds.s.shape == (2, 710, 1)
    for i, seed in enumerate(spec["seeds"]):
        w, a = teacher.weights(seed, 3, 4, 1.0)
        np.testing.assert_array_equal(ds.teacher_w[i], w)
        np.testing.assert_array_equal(ds.teacher_a[i], a)
        expected = np.tanh(ds.u.values[i] @ w.T) @ a  # the teacher, written out
        np.testing.assert_allclose(ds.s.values[i, :, 0], expected, rtol=1e-12)
    x = ds.u.values.reshape(-1, 4)
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05  # x ~ N(0, I)
    w = np.stack([teacher.weights(s, 3, 4, 1.0)[0] for s in range(200)])
    assert abs((w**2).sum(-1).mean() - 1.0) < 0.05  # w_j ~ N(0, I/d): |w_j|^2 ~ 1


def test_teacher_training_sets_are_nested_prefixes():
    small, large = generate(_spec(n_train=5)), generate(_spec(n_train=20))
    np.testing.assert_array_equal(small.u[:, :5], large.u[:, :5])
    np.testing.assert_array_equal(
        small.u[:, small.split == "test"], large.u[:, large.split == "test"]
    )


# ---------------------------------------------------------------- model
def test_two_layer_is_the_formula_and_each_member_is_its_own_model():
    gens = [torch_generator(s, "init") for s in range(3)]
    model = TwoLayer(4, 5, 0.7, gens, torch.float64)
    x = torch.randn(3, 6, 4, dtype=torch.float64, generator=torch_generator(9, "x"))
    out = model(x, torch.zeros(1, 1))
    assert out.shape == (3, 6, 1)
    for i in range(3):
        w, a = model.w[i].detach().numpy(), model.a[i].detach().numpy()
        np.testing.assert_allclose(out[i, :, 0].detach(), teacher.forward(x[i].numpy(), w, a))
        alone = TwoLayer(4, 5, 0.7, [torch_generator(i, "init")], torch.float64)
        torch.testing.assert_close(alone.w[0], model.w[i])
    assert model.flops(10, 1) == 10 * 2 * 5 * (4 + 1)


def test_two_layer_init_scale_sets_the_weights_spread():
    gens = [torch_generator(s, "init") for s in range(50)]
    for scale in (1.0, 0.1):
        model = TwoLayer(8, 64, scale, gens, torch.float64)
        assert model.w.std().item() == pytest.approx(scale / np.sqrt(8), rel=0.05)
        assert model.a.std().item() == pytest.approx(scale / np.sqrt(64), rel=0.05)


def test_two_layer_refuses_data_with_several_outputs():
    with pytest.raises(ValueError, match="two_layer.*query points"):
        build_model({"name": "two_layer", "width": 4, "init_scale": 1.0}, _shapes(q=3), [], None)


def _shapes(q=1):
    return {"sensors": 3, "y_dim": 1, "queries": q}


# ---------------------------------------------------------------- measure
@pytest.mark.parametrize("embedding", sorted(measure.EMBEDDINGS))
def test_embeddings_realise_the_teacher_exactly(embedding):
    w, a = teacher.weights(0, 3, 4, 1.0)
    x = numpy_rng(0, "x").standard_normal((50, 4))
    we, ae = measure.EMBEDDINGS[embedding](w, a, 8)
    assert we.shape == (8, 4) and ae.shape == (8,)
    np.testing.assert_allclose(teacher.forward(x, we, ae), teacher.forward(x, w, a), atol=1e-14)


@pytest.mark.parametrize("k,d,m", [(1, 2, 1), (1, 2, 5), (2, 3, 2), (2, 3, 9), (3, 2, 7)])
def test_rank_at_the_embeddings_is_k_times_d_plus_one(k, d, m):
    spec = _spec(k=k, d=d, m=m, seeds=(0, 1, 2))
    rec = measure.Recovery({"probes": 128}, spec, _Members([0, 1, 2]))
    model = TwoLayer(d, m, 1.0, [torch_generator(s, "init") for s in range(3)])
    probes, y = rec.probes(), torch.zeros(1, 1, dtype=torch.float64)
    for name in measure.EMBEDDINGS:
        jac = measure.jacobian(model, rec.embedded(name), probes, y)
        assert jac.shape == (3, 128, m * (d + 1))
        assert list(measure.rank(jac, 1e-8)) == [k * (d + 1)] * 3
    full = measure.rank(measure.jacobian(model, measure._params(model), probes, y), 1e-8)
    assert list(full) == [m * (d + 1)] * 3  # generic point of the wide student: full rank


def test_jacobian_columns_are_the_analytic_derivatives():
    model = TwoLayer(3, 4, 1.0, [torch_generator(0, "init")], torch.float64)
    x = torch.randn(1, 7, 3, dtype=torch.float64, generator=torch_generator(1, "x"))
    jac = measure.jacobian(model, measure._params(model), x, torch.zeros(1, 1))[0]  # (7, 16)
    w, a, xs = model.w[0].detach(), model.a[0].detach(), x[0]
    h = torch.tanh(xs @ w.T)  # (7, 4)
    dw = (a * (1 - h**2))[:, :, None] * xs[:, None, :]  # df/dw_jk = a_j sech^2 x_k
    torch.testing.assert_close(jac[:, :12], dw.reshape(7, 12))
    torch.testing.assert_close(jac[:, 12:], h)


def test_rank_counts_singular_values_above_the_relative_tolerance():
    u, _ = torch.linalg.qr(torch.randn(20, 5, dtype=torch.float64))
    values = torch.tensor([1.0, 0.5, 1e-3, 1e-9, 0.0], dtype=torch.float64)
    matrix = (u * values)[None]  # singular values exactly `values`
    assert measure.rank(matrix, 1e-8)[0] == 3
    assert measure.rank(matrix, 1e-10)[0] == 4
    assert measure.rank(matrix, 1e-2)[0] == 2


def test_relative_mse_is_mse_over_the_targets_variance():
    class Constant(torch.nn.Module):
        def forward(self, u, y):
            return torch.zeros_like(u[..., :1])

    s = torch.tensor([[[1.0], [3.0]]])  # variance 1, mean square 5
    split = Split(torch.zeros(1, 2, 1), torch.zeros(1, 1), s)
    assert measure.relative_mse(Constant(), split)[0] == pytest.approx(5.0)


def test_recovery_measure_names_the_config_keys_it_needs():
    spec = _spec(k=3, m=2)
    with pytest.raises(ValueError, match=r"model.width = 2 < problem.neurons = 3"):
        measure.Recovery({}, spec, _Members([0]))
    spec["model"]["name"] = "mlp"
    with pytest.raises(ValueError, match="measure.recovery needs model.name two_layer"):
        measure.Recovery({}, spec, _Members([0]))


# ---------------------------------------------------------------- analysis: n50
def test_logit_n50_recovers_a_planted_crossing():
    rng = numpy_rng(0, "planted")
    n = np.repeat([4, 6, 8, 12, 16, 24, 32, 48], 200).astype(float)
    p = 1 / (1 + np.exp(-3.0 * (np.log(n) - np.log(12.0))))  # n50 = 12
    result = analysis.n50(n, (rng.uniform(size=n.size) < p).astype(float))
    assert result["method"] == "logit"
    assert result["low"] < 12.0 < result["high"]
    assert result["n50"] == pytest.approx(12.0, rel=0.1)


def test_perfect_separation_falls_back_to_the_gap_midpoint():
    n = np.array([2, 2, 4, 4, 8, 8, 16, 16], float)
    result = analysis.n50(n, (n >= 8).astype(float))
    assert result["method"].startswith("separated")
    assert (result["low"], result["high"]) == (4.0, 8.0)
    assert result["n50"] == pytest.approx(np.sqrt(32.0))


def test_all_or_nothing_gives_no_n50_and_says_why():
    n = np.array([2, 4, 8], float)
    assert "above" in analysis.n50(n, np.zeros(3))["method"]
    assert np.isnan(analysis.n50(n, np.ones(3))["n50"])


def test_interpolated_crossing_is_linear_in_log_n():
    n = np.repeat([2.0, 8.0, 32.0], 4)
    recovered = np.array([0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0], float)  # rates 0, 1/4, 3/4
    result = analysis.interpolated_n50(n, recovered)
    assert result["n50"] == pytest.approx(16.0)  # halfway from 1/4 to 3/4 in log n
    assert (result["low"], result["high"]) == (8.0, 32.0)


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("recovery")
    config = write_config(workdir / "study.yaml", STUDY)
    run_snakemake(workdir, config)
    results = workdir / "results" / STUDY["study"]
    return results, xr.open_dataset(results / "cube.nc"), xr.open_dataset(results / "fit.nc")


def test_tiny_study_measures_rank_k_d_plus_one_and_recovers(tiny_run):
    results, cube, fits = tiny_run
    assert (cube.rank_embedding == 3).all()  # k(d+1) = 1 * (2 + 1), for both m
    assert set(cube.rank_trained.values.ravel()) <= set(range(1, 10))
    rank = table(fits, "recovery_rank")
    assert list(rank.m) == [1, 3] and list(rank.verdict) == ["pass", "pass"]
    assert list(rank.m_d1) == [3, 9]
    rate = cube.recovered.mean("seed")
    assert (rate.sel(n_train=12) == 1).all() and (rate.sel(n_train=2) < 1).all()
    n50 = table(fits, "recovery_n50")
    assert ((n50.n50 > 1) & (n50.n50 < 12)).all()
    text = (results / "fit.md").read_text()
    assert "| 1 | 2 | 3 | 3 | 3 | 3 | 9 |" in text and "n50 / k(d+1)" in text
    for figure in ("recovery_probability", "recovery_rank"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_tiny_study_cube_names_and_units_every_measured_variable(tiny_run):
    _, cube, _ = tiny_run
    for name in measure.VARIABLES:
        assert cube[name].attrs["long_name"] and cube[name].attrs["units"]
    assert json.loads(cube.attrs["config"])["measure"]["recovery"]["tolerance"] == 0.01
    frame = analysis.member_frame(cube)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2 * 4 * 4
