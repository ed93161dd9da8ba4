"""The linearized model, the empirical-NTK measure and the linearization study."""

import numpy as np
import pytest
import torch

from opscale import config as cfg
from opscale import cube, grid, problems, train
from opscale.ensemble import params_per_member
from opscale.measures import ntk
from opscale.models import build_model
from opscale.problems.tensors import Split
from opscale.rng import torch_generator

DEEPONET = {"name": "deeponet", "width": 12, "depth": 3, "p": None, "activation": "tanh"}
MLP = {"name": "mlp", "width": 12, "depth": 3, "p": None, "activation": "relu"}
SHAPES = {"sensors": 7, "y_dim": 1, "queries": 5}
F64 = torch.float64


def _model(spec, seeds=(0, 1, 2), linearized=False):
    generators = [torch_generator(s, "init") for s in seeds]
    return build_model({**spec, "linearized": linearized}, SHAPES, generators, F64)


def _inputs(members=3, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(members, n, SHAPES["sensors"], generator=g, dtype=F64)
    return u, torch.rand(SHAPES["queries"], 1, generator=g, dtype=F64)


def _move(model, directions, scale=1.0):
    with torch.no_grad():
        for p, d in zip(model.parameters(), directions, strict=True):
            p.add_(scale * d)


def _directions(model, seed):
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype) for p in model.parameters()]


# ------------------------------------------------------------------ linearized model
@pytest.mark.parametrize("spec", [DEEPONET, MLP], ids=["deeponet", "mlp"])
def test_linearized_model_at_theta0_equals_the_network(spec):
    u, y = _inputs()
    torch.testing.assert_close(_model(spec, linearized=True)(u, y), _model(spec)(u, y))


def test_linearized_model_on_unaligned_points_equals_the_network():
    u, _ = _inputs()
    y = torch.rand(3, 4, 6, 1, dtype=F64)
    torch.testing.assert_close(
        _model(DEEPONET, linearized=True)(u, y), _model(DEEPONET)(u, y), rtol=0, atol=1e-14
    )


@pytest.mark.parametrize("spec", [DEEPONET, MLP], ids=["deeponet", "mlp"])
def test_linearized_model_is_affine_in_theta(spec):
    model, u = _model(spec, linearized=True), _inputs()[0]
    y = _inputs()[1]
    base = model(u, y).detach()
    d1, d2 = _directions(model, 1), _directions(model, 2)
    _move(model, d1)
    one = model(u, y).detach() - base
    _move(model, d1, -1.0)
    _move(model, d2)
    two = model(u, y).detach() - base
    _move(model, d1, 2.0)  # theta0 + 2 d1 + d2
    torch.testing.assert_close(model(u, y) - base, 2 * one + two, rtol=0, atol=1e-12)


def test_linearized_model_differs_from_the_network_away_from_theta0():
    net, lin = _model(DEEPONET), _model(DEEPONET, linearized=True)
    u, y = _inputs()
    for model in (net, lin):
        _move(model, _directions(model, 3), 5.0)
    assert (net(u, y) - lin(u, y)).abs().max() > 1e-2


def test_linearized_model_keeps_n_and_counts_three_forwards():
    net, lin = _model(DEEPONET), _model(DEEPONET, linearized=True)
    assert params_per_member(lin) == params_per_member(net)
    assert lin.flops(10, 5, True) == 3 * net.flops(10, 5, True)
    assert all(b.shape[0] == 3 for b in lin.buffers())  # theta0: per member


def test_fused_adamw_trains_theta_and_leaves_theta0():
    model = _model(DEEPONET, linearized=True)
    theta0 = [b.clone() for b in model.buffers()]
    u, y = _inputs()
    target = torch.sin(u[..., :5])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = (model(u, y) - target).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(torch.equal(a, b) for a, b in zip(theta0, model.buffers(), strict=True))


def test_linearized_member_equals_the_single_linearized_model():
    batched, single = _model(DEEPONET, linearized=True), _model(DEEPONET, (1,), linearized=True)
    d = _directions(single, 4)
    _move(single, d)
    _move(batched, [torch.cat([torch.zeros_like(x), x, torch.zeros_like(x)]) for x in d])
    u, y = _inputs()
    torch.testing.assert_close(batched(u, y)[1:2], single(u[1:2], y), rtol=0, atol=1e-13)


# ------------------------------------------------------------------ NTK: known answers
def test_alignment_of_the_target_kernel_is_one_and_of_the_identity_one_over_root_m():
    y = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    assert ntk.alignment(torch.outer(y, y), y) == pytest.approx(1.0, abs=1e-15)
    assert ntk.alignment(torch.eye(4, dtype=F64), y) == pytest.approx(0.5, abs=1e-15)


def test_unnormalised_alignment_is_the_rayleigh_quotient():
    # the authors' code's form: yᵀΘy/‖y‖² = ‖y‖² for Θ = y yᵀ, the eigenvalue along an
    # eigenvector, and it scales with the kernel (the normalised form does not)
    y = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    assert ntk.unnormalised_alignment(torch.outer(y, y), y) == pytest.approx(14.25, rel=1e-15)
    kernel = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=F64))
    assert ntk.unnormalised_alignment(kernel, torch.eye(4, dtype=F64)[1]) == pytest.approx(3.0)
    assert ntk.unnormalised_alignment(5 * kernel, y) == pytest.approx(
        5 * ntk.unnormalised_alignment(kernel, y), rel=1e-14
    )
    assert ntk.alignment(5 * kernel, y) == pytest.approx(ntk.alignment(kernel, y), rel=1e-14)


def test_centred_alignment_known_answers():
    y = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0], dtype=F64)
    ones = torch.ones(5, 5, dtype=F64)
    assert ntk.centred_alignment(torch.outer(y, y), y) == pytest.approx(1.0, abs=1e-14)
    assert ntk.centred_alignment(7 * ones, y) == 0.0  # HΘH = 0: nothing to align with
    # c 11ᵀ + ε I: HΘH = ε H, ỹᵀΘỹ = ε‖ỹ‖², so 1/‖H‖_F = 1/√(M - 1) whatever c, ε
    kernel = 3 * ones + 0.1 * torch.eye(5, dtype=F64)
    assert ntk.centred_alignment(kernel, y) == pytest.approx(0.5, abs=1e-14)


def test_centred_alignment_ignores_a_large_target_mean_that_the_uncentred_one_sees():
    # kernel y yᵀ + c 11ᵀ and targets y + m: the centred alignment is 1 whatever c and m;
    # the uncentred one is dominated by the constant (about 1 for the constant kernel too)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(12, generator=g, dtype=F64)
    ones = torch.ones(12, 12, dtype=F64)
    for c, m in [(0.0, 0.0), (10.0, 50.0), (100.0, -3.0)]:
        kernel = torch.outer(y, y) + c * ones
        assert ntk.centred_alignment(kernel, y + m) == pytest.approx(1.0, abs=1e-12)
    assert ntk.alignment(ones, y + 50.0) > 0.99
    centred = ntk.centred_alignment(ones + 1e-3 * torch.eye(12, dtype=F64), y + 50.0)
    assert centred == pytest.approx(11**-0.5, abs=1e-12)


def test_the_analysis_and_the_measure_name_the_same_alignment_forms():
    from opscale.analyses import linearization

    assert list(linearization.FORMS) == list(ntk.FORMS)
    assert linearization.PAPER in ntk.FORMS
    names = [ntk.alignment_name(f, s, w) for f in ntk.FORMS for s in ntk.SPLITS for w in ntk.WHEN]
    assert names == [
        linearization.alignment_name(f, s, w)
        for f in ntk.FORMS
        for s in ntk.SPLITS
        for w in ntk.WHEN
    ]
    assert set(names) <= set(ntk.VARIABLES)


def test_kernel_distance_of_proportional_and_orthogonal_kernels():
    a = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    b = torch.diag(torch.tensor([0.0, 1.0], dtype=F64))
    assert ntk.kernel_distance(a, 3 * a) == pytest.approx(0.0, abs=1e-15)
    assert ntk.kernel_distance(a, b) == pytest.approx(1.0, abs=1e-15)


def _members(n_train=(4, 4, 4)):
    return train.Members(np.arange(len(n_train)), np.array(n_train), np.arange(len(n_train)), False)


def _split(members=3, n=6, seed=0):
    u, y = _inputs(members, n, seed)
    return Split(u, y, torch.cos(u[..., :5]))


def test_kernel_of_a_linear_map_is_delta_times_inputs_gram_plus_one():
    # f(u) = u W + b: Θ[(a,k),(a',k')] = δ_kk' (u_a·u_a' + 1)
    model = _model({**MLP, "depth": 1})
    measure = ntk.NTK({"functions": 3, "queries": None}, {}, _members())
    sub = measure.subsample({"train": _split()}, "train")
    kernel = ntk.batched_kernels(model, sub)[1]
    u = sub.u[1]
    expected = torch.kron(u @ u.T + 1, torch.eye(5, dtype=F64))
    torch.testing.assert_close(kernel, expected, rtol=1e-12, atol=1e-12)


def test_batched_kernels_equal_each_members_own_jacobian():
    model = _model(DEEPONET)
    measure = ntk.NTK({"functions": 3, "queries": 2}, {}, _members((4, 2, 4)))
    sub = measure.subsample({"train": _split()}, "train")
    kernels = ntk.batched_kernels(model, sub)
    assert [k.shape[0] for k in kernels] == [6, 4, 6]  # member 1 has only 2 functions
    for i, kernel in enumerate(kernels):
        single = _model(DEEPONET, (i,))
        rows = slice(0, sub.valid[i] // 2)

        def outputs(*params, i=i, rows=rows, single=single):
            names = [n for n, _ in single.named_parameters()]
            out = torch.func.functional_call(
                single, dict(zip(names, params, strict=True)), (sub.u[i : i + 1, rows], sub.y)
            )
            return out[0][:, sub.cols[i]].reshape(-1)

        jac = torch.autograd.functional.jacobian(outputs, tuple(single.parameters()))
        flat = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
        torch.testing.assert_close(kernel, flat @ flat.T, rtol=1e-10, atol=1e-12)


def _measured(model, move=True):
    data = {"train": _split(n=6), "val": _split(n=3, seed=2), "test": _split(n=8, seed=1)}
    measure = ntk.NTK({"functions": 4, "queries": 3}, {}, _members((6, 6, 6)))
    measure.start(model, data)
    if move:
        _move(model, _directions(model, 5), 3.0)
    return measure.finish(model, data)


def test_the_linearized_models_kernel_does_not_move():
    ds = _measured(_model(DEEPONET, linearized=True))
    for split in ntk.SPLITS:
        np.testing.assert_allclose(ds[f"ntk_distance_{split}"], 0, atol=1e-12)
        for form in ntk.FORMS:
            np.testing.assert_allclose(
                ds[ntk.alignment_name(form, split, "end")],
                ds[ntk.alignment_name(form, split, "init")],
                rtol=1e-10,
            )


def test_the_networks_kernel_moves_and_equals_the_linearized_ones_at_init():
    net, lin = _measured(_model(DEEPONET)), _measured(_model(DEEPONET, linearized=True))
    assert (net["ntk_distance_train"] > 1e-3).all()
    for split in ntk.SPLITS:
        for form in ntk.FORMS:
            name = ntk.alignment_name(form, split, "init")
            np.testing.assert_allclose(net[name], lin[name], rtol=1e-12)
    bounded = [name for name in net.data_vars if "unnormalised" not in name]
    assert all(0 <= v <= 1 for name in bounded for v in net[name].values)
    assert all(v > 0 for name in net.data_vars if "unnormalised" in name for v in net[name])
    assert all(net[name].attrs["long_name"] and net[name].dims == ("member",) for name in net)


# ------------------------------------------------------------------ through the trainer
@pytest.fixture
def linearized_spec(tmp_path):
    config = cfg.validate_study(
        {
            "study": "lin-unit",
            "seeds": [0, 1],
            "problem": {"sensors": 12, "queries": 6, "resolution": 101},
            "data": {"n_train": 16, "n_val": 4, "n_test": 8},
            "model": {"width": 6, "depth": 2, "activation": "tanh", "linearized": True},
            "train": {"epochs": 6, "batch_size": 4, "eval_every": 2, "lr": 0.01},
            "measure": {"ntk": {"functions": 4, "queries": 3}},
            "sweep": {"data.n_train": [8, 16]},
            "members": ["data.n_train"],
        }
    )
    point = grid.points(config)[0]
    path = tmp_path / "data.nc"
    problems.make_data_file(grid.data_specs(config)[point.data_id], path)
    return point.spec, path


def _train(spec, path, out):
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 0}
    train.train_point(
        {**spec, "train": {**spec["train"], "dtype": "float64"}}, {}, path, out, runtime
    )
    return cube.read(out)


def test_grouped_linearized_members_train_as_if_alone(linearized_spec, tmp_path):
    # budgets 12 and 24 steps: the n=8 members stop first and theta0 is sliced with them
    spec, path = linearized_spec
    grouped = _train(spec, path, tmp_path / "grouped.nc")
    alone = _train({**spec, "data": {**spec["data"], "n_train": 8}}, path, tmp_path / "alone.nc")
    small = grouped.isel(member=grouped["n_train"].values == 8)
    np.testing.assert_allclose(small["test_rel_l2"], alone["test_rel_l2"], rtol=1e-10)
    np.testing.assert_allclose(grouped["ntk_distance_train"], 0, atol=1e-10)
    assert (grouped["steps_trained"].values == [12, 24, 12, 24]).all()


# ------------------------------------------------------------------ the analysis
def _study_cube(flip_linearized_ranking=False, unfinished=()):
    """A cube with planted errors and NTK values: 2 tasks x network/linearized x 2 N x 3 n.

    Network error 0.1 (task a) or 0.2 (task b) times (N n)^-0.5; the linearized model's
    is twice the network's, except at the smallest grid point (half). Network alignment
    (every form) 0.3 -> 0.6 on train, 0.3 -> 0.4 on test; the linearized model's stays
    at 0.3. Every member ran 1000 steps with its best at 500 (at its floor), except the
    linearized members of the widths in `unfinished` (best at 1000: still improving).
    """
    import json

    import xarray as xr

    tasks, flags, widths, sizes, seeds = ["a", "b"], [False, True], [4, 8], [8, 16, 32], 3
    n_params = np.array([10 * w * w for w in widths], float)
    law = (n_params[:, None] * np.array(sizes, float)) ** -0.5  # (width, n)
    scale = np.array([0.1, 0.2])[:, None, None, None]
    ratio = np.full((2, 1, 2, 3), 2.0)
    ratio[:, 0, 0, 0] = 0.5
    if flip_linearized_ranking:
        ratio = ratio * np.array([4.0, 1.0])[:, None, None, None]
    err = scale * law * np.concatenate([np.ones_like(ratio), ratio], axis=1)
    noise = np.exp(0.01 * np.random.default_rng(0).normal(size=(*err.shape, seeds)))
    dims = ("name", "linearized", "width", "n_train", "seed")
    shape = (*err.shape, seeds)
    lin = np.array(flags)[None, :, None, None, None]
    planted = {"train_init": 0.3, "train_end": 0.6, "test_init": 0.3, "test_end": 0.4}
    ntk_vars = {
        **{
            f"ntk_alignment_{form}_{which}": np.where(lin, 0.3, value) * np.ones(shape)
            for form in ntk.FORMS
            for which, value in planted.items()
        },
        "ntk_distance_train": np.where(lin, 0.0, 0.2) * np.ones(shape),
        "ntk_distance_test": np.where(lin, 0.0, 0.1) * np.ones(shape),
    }
    still = lin & np.isin(widths, unfinished)[None, None, :, None, None]
    ntk_vars["best_step"] = np.where(still, 1000, 500) * np.ones(shape, "int64")
    ntk_vars["steps_trained"] = np.full(shape, 1000)
    ds = xr.Dataset(
        {
            "test_rel_l2": (dims, err[..., None] * noise),
            "n_params": (dims, np.broadcast_to(n_params[:, None, None], shape).copy()),
            "status": (dims, np.zeros(shape, "int8")),
            **{name: (dims, values) for name, values in ntk_vars.items()},
        },
        coords={
            "name": tasks,
            "linearized": flags,
            "width": widths,
            "n_train": sizes,
            "seed": np.arange(seeds),
        },
        attrs={
            # resolved, as collect stores it
            "config": json.dumps(cfg.validate_study({"study": "planted", "data": {"n_train": 32}})),
            "axes": json.dumps(
                {
                    "name": "problem.name",
                    "linearized": "model.linearized",
                    "width": "model.width",
                    "n_train": "data.n_train",
                }
            ),
        },
    )
    return cube.model_coords(ds, ["linearized", "width"])  # n_params as collect lays it out


def test_the_analysis_recovers_planted_ratios_rankings_and_alignments():
    from opscale.analyses import linearization

    tables = linearization.analyse(_study_cube(), {})
    advantage = tables["advantage"]
    assert len(advantage) == 12
    np.testing.assert_allclose(np.sort(advantage["ratio"])[:2], 0.5, rtol=0.05)
    np.testing.assert_allclose(np.sort(advantage["ratio"])[2:], 2.0, rtol=0.05)
    overall = tables["ranking"].iloc[-1]
    assert overall["order_network"] == overall["order_linearized"] == "name=a < name=b"
    alignment = tables["alignment"].set_index(["task", "model", "form"])
    assert len(alignment) == 2 * 2 * len(ntk.FORMS)
    assert alignment.loc[("name=a", "network", "centred"), "train_end"] == 0.6
    assert alignment.loc[("name=b", "linearized", "unnormalised"), "grows_train"] == 0.0
    assert tables["advantage"]["floor"].all()
    verdicts = dict(zip(tables["theory"]["statement"], tables["theory"]["verdict"], strict=True))
    assert set(verdicts.values()) == {"held"}
    assert "10/12 grid points" in tables["theory"]["measured"][1]


def test_the_analysis_says_when_a_statement_does_not_hold():
    from opscale.analyses import linearization

    theory = linearization.analyse(_study_cube(flip_linearized_ranking=True), {})["theory"]
    verdicts = dict(zip(theory["statement"], theory["verdict"], strict=True))
    assert verdicts["linearization ranks tasks the same as the network"] == "did not hold"


def _members_table(best_steps, steps=1000, linearized=True):
    """Planted members of one grid point and model: their best and their last step."""
    import pandas as pd

    return pd.DataFrame(
        {
            "task": "a",
            "point": "n=8",
            "linearized": linearized,
            "test_rel_l2": 0.1,
            "best_step": best_steps,
            "steps_trained": steps,
        }
    )


@pytest.mark.parametrize(
    ("best_steps", "steps", "at_budget", "floor"),
    [
        ([500, 600, 700], 1000, "0/3", True),  # all stopped improving
        ([950, 600, 700], 1000, "1/3", True),  # one at the last 5%: still the floor
        ([950, 1000, 700], 1000, "2/3", False),  # most still improving
        ([949, 990, 100, 1000], 1000, "2/4", True),  # half: the fit's budget-limited rule
        ([1700, 2100, 2400], [2000, 2400, 2700], "0/3", True),  # early stopped (patience)
        ([2400, 2350, 2100], [2400, 2400, 2400], "2/3", False),
    ],
)
def test_floor_criterion_on_planted_members(best_steps, steps, at_budget, floor):
    from opscale.analyses import linearization

    row = linearization.floor_table(_members_table(best_steps, steps)).iloc[0]
    assert row["linearized_at_budget"] == at_budget
    assert bool(row["linearized_floor"]) is floor


def test_floor_is_not_reached_when_the_cube_cannot_say():
    from opscale.analyses import linearization

    frame = _members_table([500, 600]).drop(columns=["best_step", "steps_trained"])
    assert not linearization.floor_table(frame).iloc[0]["linearized_floor"]


def test_comparisons_are_inconclusive_when_the_linearized_models_had_not_finished():
    from opscale.analyses import linearization

    tables = linearization.analyse(_study_cube(unfinished=(4, 8)), {})
    assert not tables["advantage"]["floor"].any()
    assert tables["advantage"]["network_floor"].all()
    verdicts = dict(zip(tables["theory"]["statement"], tables["theory"]["verdict"], strict=True))
    unfinished = "inconclusive: the linearized models had not finished training"
    assert verdicts["the network is not always better"] == unfinished
    assert verdicts["linearization ranks tasks the same as the network"] == unfinished
    assert verdicts["alignment grows during training (train data, network)"] == "held"


def test_comparisons_count_only_the_grid_points_where_both_reached_their_floor():
    # the linearized model is better only at width 4 (n = 8); with width 4 unfinished
    # the statement is decided on width 8 alone, where the network is always better
    from opscale.analyses import linearization

    tables = linearization.analyse(_study_cube(unfinished=(4,)), {})
    assert tables["advantage"]["floor"].sum() == 6
    theory = tables["theory"].set_index("statement")
    assert theory.loc["the network is not always better", "verdict"] == "did not hold"
    assert "at 6/6 grid points" in theory.loc["the network is not always better", "measured"]
    ranks = theory.loc["linearization ranks tasks the same as the network"]
    assert ranks["verdict"] == "held" and "(3/6 grid points)" in ranks["measured"]
    assert tables["ranking"].iloc[-1]["point"] == linearization.OVERALL


def test_alignment_verdicts_use_the_papers_form():
    # the unnormalised alignment grows, the normalised and centred ones fall: the
    # verdict follows the paper's form and the cell shows the others
    from opscale.analyses import linearization

    ds = _study_cube()
    for form in ("normalised", "centred"):
        ds[f"ntk_alignment_{form}_train_end"] = ds[f"ntk_alignment_{form}_train_end"] * 0.1
    theory = linearization.analyse(ds, {})["theory"].set_index("statement")
    row = theory.loc["alignment grows during training (train data, network)"]
    assert row["verdict"] == "held"
    assert "yᵀΘy/‖y‖² 0.3 -> 0.6" in row["measured"]
    assert "centred: 0.3 -> 0.06" in row["measured"]


def test_train_and_test_growth_are_compared_by_ratio_not_difference():
    # unnormalised alignment train 100 -> 300 (x3), test 200 -> 500 (x2.5): the test's
    # difference is larger only because it started higher; by ratio train grew more
    from opscale.analyses import linearization

    ds = _study_cube()
    lin = ds["linearized"]
    for name, value in {
        "train_init": 100,
        "train_end": 300,
        "test_init": 200,
        "test_end": 500,
    }.items():
        var = f"ntk_alignment_unnormalised_{name}"
        ds[var] = ds[var].where(lin, value)
    theory = linearization.analyse(ds, {})["theory"].set_index("statement")
    row = theory.loc["alignment grows more on train than on test data (network)"]
    assert row["verdict"] == "held"
    assert "end/init 3 vs 2.5 (18/18)" in row["measured"]
    ds["ntk_alignment_unnormalised_test_end"] = ds["ntk_alignment_unnormalised_test_end"].where(
        lin, 600
    )  # x3 on both: a kernel that only grew in scale does not grow more on train
    theory = linearization.analyse(ds, {})["theory"].set_index("statement")
    row = theory.loc["alignment grows more on train than on test data (network)"]
    assert row["verdict"] == "did not hold"


def test_fit_md_puts_network_and_linearized_exponents_side_by_side():
    from opscale import fit
    from opscale.markdown import markdown

    fits = fit.fit(
        _study_cube(), {"bootstrap": 0, "backtest_bootstrap": 0, "analyses": ["linearization"]}
    )
    text = markdown(fits)
    assert "## Linearization: theory vs measured" in text
    section = text.split("## Linearization: scaling exponents", 1)[1].split("##", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| name=")]
    assert len(lines) == 4  # 2 tasks x 2 axes, each with both models' exponents
    assert all(line.count("[") == 2 for line in lines)


# ------------------------------------------------------------------ end to end
@pytest.mark.workflow
def test_the_linearized_study_runs_end_to_end(tmp_path):
    from opscale import tables
    from tests.helpers import run_snakemake, tiny_config, write_config

    config = tiny_config(
        study="lin-tiny",
        model={"width": 8, "depth": 2, "activation": "tanh"},
        train={"steps": 60, "eval_every": 10, "log_every": 10, "lr": 0.01},
        measure={"ntk": {"functions": 6, "queries": 4}},
        fit={"bootstrap": 0, "backtest_bootstrap": 0, "analyses": ["linearization"]},
        sweep={"model.linearized": [False, True], "data.n_train": [8, 16]},
        members=["data.n_train"],
    )
    run_snakemake(tmp_path, write_config(tmp_path / "study.yaml", config))
    results = tmp_path / "results" / "lin-tiny"
    ds = cube.read(results / "cube.nc")
    assert ds["ntk_distance_train"].dims == ("linearized", "n_train", "seed")
    network, linearized = ds.sel(linearized=False), ds.sel(linearized=True)
    assert float(abs(linearized["ntk_distance_train"]).max()) < 1e-6
    assert float(network["ntk_distance_train"].min()) > 1e-4
    np.testing.assert_allclose(  # the same initial kernel: the Taylor model's expansion point
        network["ntk_alignment_centred_test_init"],
        linearized["ntk_alignment_centred_test_init"],
        rtol=1e-5,
    )
    assert (network["test_rel_l2"] != linearized["test_rel_l2"]).all()
    theory = tables.table(cube.read(results / "fit.nc"), "linearization_theory")
    allowed = {"held", "did not hold", "n/a"}
    assert all(v in allowed or v.startswith("inconclusive: the ") for v in theory["verdict"])
    assert len(theory) == 6
    text = (results / "fit.md").read_text()
    assert "## Linearization: scaling exponents, network vs linearized" in text
    for figure in ("linearization_errors", "linearization_alignment"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000
