"""The local-recovery study: tanh teacher, two-layer student, recovery measure, analysis."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from opscale import config as cfg
from opscale import grid, train
from opscale.analyses import recovery as analysis
from opscale.measures import recovery as measure
from opscale.models import build_model, two_layer
from opscale.models.two_layer import TwoLayer
from opscale.problems import generate, teacher
from opscale.problems.tensors import Split, load_splits
from opscale.rng import numpy_rng, torch_generator
from opscale.tables import table
from tests.helpers import run_snakemake, write_config

STUDY = {
    "study": "recovery-tiny",
    "seeds": [0, 1, 2, 3],
    "problem": {"name": "tanh_teacher", "neurons": 1, "dim": 2},
    "data": {"n_train": 12, "n_val": 16, "n_test": 64},
    "model": {"name": "two_layer", "width": 1, "init_scale": 0.1},
    "train": {
        "dtype": "float64",
        "steps": 1000,
        "lr": 0.02,
        "eval_every": 100,
        "log_every": 100,
    },
    "measure": {"recovery": {"probes": 64, "tolerance": 1e-8, "polish": 200}},
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
    def __init__(self, seeds, n_train=None):
        self.seed = np.asarray(seeds)
        self.n_train = np.full(len(seeds), 10) if n_train is None else np.asarray(n_train)

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
def test_probe_rank_at_the_embeddings_is_the_model_rank_k_times_d_plus_one(k, d, m):
    spec = _spec(k=k, d=d, m=m, seeds=(0, 1, 2))
    rec = measure.Recovery(_options(probes=128), spec, _Members([0, 1, 2]))
    model = TwoLayer(d, m, 1.0, [torch_generator(s, "init") for s in range(3)])
    probes = rec.probes()
    for name in measure.EMBEDDINGS:
        jac = measure.jacobian(rec.embedded(name), probes)
        assert jac.shape == (3, 128, m * (d + 1))
        assert list(measure.rank(jac, 1e-8)) == [k * (d + 1)] * 3
    full = measure.rank(measure.jacobian(measure._params(model), probes), 1e-8)
    assert list(full) == [m * (d + 1)] * 3  # generic point of the wide student: full rank


@pytest.mark.parametrize("k,d,m", [(1, 2, 3), (2, 2, 5), (2, 3, 2)])
def test_training_input_rank_at_the_teacher_is_min_of_n_and_k_times_d_plus_one(k, d, m, tmp_path):
    sizes = [1, 2, k * (d + 1) - 1, k * (d + 1), k * (d + 1) + 1, 3 * k * (d + 1)]
    seeds = [0, 1] * len(sizes)
    n = np.repeat(sizes, 2)
    spec = _spec(k=k, d=d, m=m, seeds=(0, 1), n_train=max(sizes))
    data = _member_data(spec, seeds, n, tmp_path / "data.nc")
    rec = measure.Recovery(_options(), spec, _Members(seeds, n))
    model = TwoLayer(d, m, 1.0, [torch_generator(s, "init") for s in seeds], torch.float64)
    rec.start(model, data)
    measured = rec.finish(model, data).rank_train_embedding  # (member, embedding)
    expected = np.minimum(n, k * (d + 1))
    for name in measure.EMBEDDINGS:
        np.testing.assert_array_equal(measured.sel(embedding=name), expected)


def test_two_layer_jacobian_is_autograd_of_its_outputs():
    model = TwoLayer(3, 4, 1.0, [torch_generator(s, "init") for s in range(2)], torch.float64)
    x = torch.randn(2, 7, 3, dtype=torch.float64, generator=torch_generator(1, "x"))
    params = measure._params(model)
    jac = measure.jacobian(params, x)  # (2, 7, 16)
    for i in range(2):
        one = {name: p[i : i + 1] for name, p in params.items()}

        def f(w, a, i=i):
            return two_layer.outputs({"w": w, "a": a}, x[i : i + 1])[0]

        dw, da = torch.autograd.functional.jacobian(f, (one["w"], one["a"]))
        torch.testing.assert_close(jac[i], torch.cat([dw.reshape(7, 12), da.reshape(7, 4)], 1))
    np.testing.assert_allclose(
        model(x, torch.zeros(1, 1))[..., 0].detach(), two_layer.outputs(params, x)
    )


def test_polish_identifies_the_teacher_from_enough_samples_and_only_interpolates_otherwise():
    k, d = 2, 2  # k(d+1) = 6; exact-width student near its teacher
    w, a = teacher.weights(3, k, d, 1.0)
    rng = numpy_rng(3, "polish")
    x = torch.as_tensor(rng.standard_normal((2, 24, d)))
    target = torch.as_tensor(np.stack([teacher.forward(xs, w, a) for xs in x.numpy()]))
    mask = torch.as_tensor(np.arange(24) < np.array([[4], [24]]), dtype=torch.float64)
    start = {"w": torch.as_tensor(np.stack([w, w])), "a": torch.as_tensor(np.stack([a, a]))}
    start = {
        name: p + 0.05 * torch.as_tensor(rng.standard_normal(p.shape)) for name, p in start.items()
    }
    polished = measure.polish(start, x, target * mask, mask, 60)
    fresh = torch.as_tensor(rng.standard_normal((2, 500, d)))
    truth = torch.as_tensor(np.stack([teacher.forward(xs, w, a) for xs in fresh.numpy()]))
    test = ((two_layer.outputs(polished, fresh) - truth) ** 2).mean(1) / truth.var(1)
    train = (((two_layer.outputs(polished, x) - target) * mask) ** 2).sum(1) / mask.sum(1)
    assert (train < 1e-24).all()  # both interpolate their training sets
    assert test[1] < 1e-20  # n = 24 >= k(d+1): the teacher itself
    assert test[0] > 1e-6  # n = 4 < k(d+1): another interpolant
    unchanged = measure.polish(start, x, target * mask, mask, 0)
    torch.testing.assert_close(unchanged["w"], start["w"])


def test_rank_counts_singular_values_above_the_relative_tolerance():
    u, _ = torch.linalg.qr(torch.randn(20, 5, dtype=torch.float64))
    values = torch.tensor([1.0, 0.5, 1e-3, 1e-9, 0.0], dtype=torch.float64)
    matrix = (u * values)[None]  # singular values exactly `values`
    assert measure.rank(matrix, 1e-8)[0] == 3
    assert measure.rank(matrix, 1e-10)[0] == 4
    assert measure.rank(matrix, 1e-2)[0] == 2


def test_relative_mse_is_mse_over_the_targets_variance():
    params = {"w": torch.zeros(1, 1, 1).double(), "a": torch.zeros(1, 1).double()}  # f = 0
    s = torch.tensor([[[1.0], [3.0]]])  # variance 1, mean square 5
    split = Split(torch.zeros(1, 2, 1), torch.zeros(1, 1), s)
    assert measure.relative_mse(params, split)[0] == pytest.approx(5.0)


def test_recovery_measure_names_the_config_keys_it_needs():
    spec = _spec(k=3, m=2)
    with pytest.raises(ValueError, match=r"model.width = 2 < problem.neurons = 3"):
        measure.Recovery({}, spec, _Members([0]))
    spec["model"]["name"] = "mlp"
    with pytest.raises(ValueError, match="measure.recovery needs model.name two_layer"):
        measure.Recovery({}, spec, _Members([0]))


def _options(**changes) -> dict:
    return {"probes": 64, "rtol": 1e-8, "tolerance": 1e-8, "polish": 0} | changes


def _member_data(spec: dict, seeds, n, path) -> dict:
    """Each member's splits of the spec's data file, float64, as opscale.train selects them."""
    generate(spec).to_netcdf(path)
    members = train.Members(np.asarray(seeds), np.asarray(n), np.asarray(seeds), True)
    return members.select(load_splits(path, torch.float64))


# ---------------------------------------------------------------- analysis: n50
def test_logit_n50_recovers_a_planted_crossing():
    rng = numpy_rng(0, "planted")
    n = np.repeat([4, 6, 8, 12, 16, 24, 32, 48], 200).astype(float)
    seeds = np.tile(np.arange(20), n.size // 20)
    p = 1 / (1 + np.exp(-3.0 * (np.log(n) - np.log(12.0))))  # n50 = 12
    result = analysis.n50(n, (rng.uniform(size=n.size) < p).astype(float), seeds=seeds)
    assert result["method"] == "logit, clustered by seed (20 clusters)"
    assert result["low"] < 12.0 < result["high"]
    assert result["n50"] == pytest.approx(12.0, rel=0.1)


def _planted_seed_effects(rng, seeds=10):
    """One model per (seed, n); seed s shifts log n50 by u_s ~ N(0, 0.5^2); n50 = 12."""
    sizes = np.array([3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64], float)
    n, seed = np.tile(sizes, seeds), np.repeat(np.arange(seeds), len(sizes))
    shift = rng.normal(0.0, 0.5, seeds)[seed]
    p = 1 / (1 + np.exp(-4.0 * (np.log(n) - np.log(12.0) - shift)))
    return n, (rng.uniform(size=n.size) < p).astype(float), seed


def test_clustered_n50_interval_covers_with_seed_effects_where_the_naive_one_does_not():
    # the seed's effect is symmetric in log n, so the marginal n50 is still 12
    rng = numpy_rng(1, "planted", "clusters")
    covered = {"clustered": [], "naive": []}
    for _ in range(150):
        n, recovered, seed = _planted_seed_effects(rng)
        for name, groups in (("clustered", seed), ("naive", None)):
            result = analysis.n50(n, recovered, seeds=groups)
            if result["method"].startswith("logit"):
                covered[name].append(result["low"] < 12.0 < result["high"])
    clustered, naive = np.mean(covered["clustered"]), np.mean(covered["naive"])
    assert len(covered["clustered"]) > 100
    assert clustered > 0.85 and clustered > naive + 0.05


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


# ---------------------------------------------------------------- analysis: rank, claim
def test_claim_table_counts_recoveries_below_and_from_k_times_d_plus_one():
    # k = 1, d = 2: k(d+1) = 3; n = 2 below, n = 3 and 6 from it; 2 seeds each
    members = pd.DataFrame(
        {
            "k": 1, "d": 2, "m": 4, "init_scale": 0.1,
            "n": [2, 2, 3, 3, 6, 6],
            "recovered": [0, 1, 0, 1, 0, 1],
            "train_rel_mse_polished": [0.0, 0.0, 1e-30, 0.0, 1e-3, 0.0],
            "test_rel_mse_polished": [0.1, 1e-12, 1e-4, 1e-12, 1e-2, 1e-12],
        }
    )  # fmt: skip
    row = analysis.claim_table(members, 1e-8).iloc[0]
    assert (row.below_recovered, row.below_models) == (1, 2)
    assert (row.above_recovered, row.above_models) == (2, 4)
    assert (row.above_interpolated, row.above_unfit) == (1, 1)  # n = 3 fits, n = 6 does not
    assert (row.interpolated_train, row.interpolated_test) == (1e-30, 1e-4)
    assert row.smallest_n == 2 and row.verdict == "does not hold"
    held = analysis.claim_table(members[members.n > 2].assign(recovered=[0, 1, 0, 1]), 1e-8)
    assert held.verdict.iloc[0].startswith("not tested")
    below_fail = members.assign(recovered=[0, 0, 0, 1, 0, 1])
    assert analysis.claim_table(below_fail, 1e-8).verdict.iloc[0] == "holds"


def test_rank_table_needs_rank_k_times_d_plus_one_at_both_embeddings_from_k_times_d_plus_one():
    # k = 1, d = 2: theory min(n, 3); model 2 (n = 4) has rank 2 at the split embedding
    ranks = pd.DataFrame(
        {
            "k": 1, "d": 2, "m": 4,
            "model": [0, 0, 1, 1, 2, 2],
            "n": [2, 2, 3, 3, 4, 4],
            "embedding": ["null", "split"] * 3,
            "rank_train_embedding": [2, 2, 3, 3, 3, 2],
            "rank_embedding": [3] * 6,
        }
    )  # fmt: skip
    members = pd.DataFrame({"k": [1], "d": [2], "m": [4], "rank_init": [12], "rank_trained": [9]})
    row = analysis.rank_table(ranks, members).iloc[0]
    assert (row.above_match, row.above_models, row.below_match, row.below_models) == (1, 2, 1, 1)
    assert row.verdict == "does not hold" and row.probe_null == "3"
    ranks.loc[5, "rank_train_embedding"] = 3
    assert analysis.rank_table(ranks, members).verdict.iloc[0] == "holds"


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("recovery")
    config = write_config(workdir / "study.yaml", STUDY)
    run_snakemake(workdir, config)
    results = workdir / "results" / STUDY["study"]
    return results, xr.open_dataset(results / "cube.nc"), xr.open_dataset(results / "fit.nc")


def test_tiny_study_measures_the_training_input_rank_and_recovers_in_float64(tiny_run):
    results, cube, fits = tiny_run
    assert cube.test_rel_mse_polished.dtype == np.float64
    assert (cube.rank_embedding == 3).all()  # the model rank k(d+1) = 1 * (2 + 1), both m
    np.testing.assert_array_equal(  # min(n, k(d+1)) on the training inputs
        cube.rank_train_embedding.max("embedding").max("seed"), [[2, 3, 3, 3]] * 2
    )
    rank = table(fits, "recovery_rank")
    assert list(rank.m) == [1, 3] and list(rank.verdict) == ["holds", "holds"]
    assert list(rank.above_models) == [12, 12] and list(rank.below_match) == [4, 4]
    rate = cube.recovered.mean("seed")
    assert (rate.sel(n_train=12) == 1).all() and (rate.sel(n_train=2) == 0).all()
    assert (cube.test_rel_mse_polished.sel(n_train=12) < 1e-8).all()
    claim = table(fits, "recovery_claim")
    assert list(claim.below_recovered) == [0, 0] and list(claim.verdict) == ["holds"] * 2
    n50 = table(fits, "recovery_n50")
    assert ((n50.n50 > 2) & (n50.n50 < 12)).all()
    text = (results / "fit.md").read_text()
    assert "| 1 | 2 | 3 | 3 | 9 | 12/12 | 4/4 | 3 / 3 |" in text
    assert "recovery needs n >= k(d+1)" in text and "n50 / k(d+1)" in text
    for figure in ("recovery_probability", "recovery_rank"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_tiny_study_cube_names_and_units_every_measured_variable(tiny_run):
    _, cube, _ = tiny_run
    for name in measure.VARIABLES:
        assert cube[name].attrs["long_name"] and cube[name].attrs["units"]
    assert json.loads(cube.attrs["config"])["measure"]["recovery"]["tolerance"] == 1e-8
    frame = analysis.member_frame(cube)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2 * 4 * 4
