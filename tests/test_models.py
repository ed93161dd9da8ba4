import numpy as np
import pytest
import torch

from opscale import config as cfg
from opscale import train
from opscale.ensemble import BatchedMLP, members, params_per_member
from opscale.models import build_model, linearized
from opscale.models.deeponet import DeepONet
from opscale.models.module import build_member, vmapped
from opscale.problems.tensors import Split
from opscale.rng import torch_generator
from tests.helpers import tiny_config

SPEC = {"name": "deeponet", "width": 40, "depth": 2, "p": None, "activation": "relu"}
SHAPES = {"sensors": 100, "y_dim": 1, "queries": 100}


def _generators(*seeds):
    return [torch_generator(s, "init") for s in seeds]


def test_deeponet_shapes():
    model = build_model(SPEC, SHAPES, _generators(0, 1, 2), torch.float32)
    u, y = torch.randn(3, 7, 100), torch.rand(11, 1)
    assert model(u, y).shape == (3, 7, 11)
    assert members(model) == 3


def test_deeponet_parameter_count_matches_deepxde():
    # DeepXDE's antiderivative example: branch [100, 40, 40], trunk [1, 40, 40] -> 7,401
    assert params_per_member(build_model(SPEC, SHAPES, _generators(0), torch.float32)) == 7401


def test_member_equals_the_single_model_with_its_seed():
    batched = build_model(SPEC, SHAPES, _generators(0, 1, 2), torch.float64)
    single = build_model(SPEC, SHAPES, _generators(1), torch.float64)
    u, y = torch.randn(1, 5, 100, dtype=torch.float64), torch.rand(9, 1, dtype=torch.float64)
    for b, s in zip(batched.parameters(), single.parameters(), strict=True):
        torch.testing.assert_close(b[1:2], s, rtol=0, atol=0)
    torch.testing.assert_close(batched(u.expand(3, 5, 100), y)[1:2], single(u, y))


def test_members_are_independent():
    model = build_model(SPEC, SHAPES, _generators(0, 1), torch.float64)
    u, y = torch.randn(2, 4, 100, dtype=torch.float64), torch.rand(6, 1, dtype=torch.float64)
    model(u, y)[0].sum().backward()
    assert all(p.grad[1].abs().max() == 0 for p in model.parameters())


def test_trunk_output_is_activated_and_branch_output_is_not():
    model = DeepONet(10, 1, 8, 2, 5, "relu", _generators(0))
    assert (model.trunk(torch.randn(1, 50, 1)) >= 0).all()
    assert (model.branch(torch.randn(1, 50, 10)) < 0).any()


def test_flops_count_every_matmul():
    mlp = BatchedMLP([3, 4, 2], "relu", _generators(0))
    assert mlp.flops(10) == 10 * (4 * (2 * 3 + 1) + 2 * (2 * 4 + 1))
    model = build_model(SPEC, SHAPES, _generators(0), torch.float32)
    n, q = 7, 11
    expected = model.branch.flops(n) + model.trunk.flops(q) + n * q * (2 * 40 + 1)
    assert model.flops(n, q) == expected


def test_deeponet_on_unaligned_points_matches_the_aligned_path():
    model = build_model(SPEC, SHAPES, _generators(0, 1), torch.float64)
    u, y = torch.randn(2, 5, 100, dtype=torch.float64), torch.rand(7, 1, dtype=torch.float64)
    per_function = y.expand(2, 5, 7, 1)
    torch.testing.assert_close(model(u, per_function), model(u, y))
    assert model.flops(5, 7, aligned=False) > model.flops(5, 7)


def test_mlp_maps_sensor_values_to_every_output():
    spec = {"name": "mlp", "width": 16, "depth": 3, "p": None, "activation": "relu"}
    model = build_model(
        spec, {"sensors": 6, "y_dim": 1, "queries": 2}, _generators(0, 1, 2), torch.float32
    )
    assert model(torch.randn(3, 10, 6), torch.zeros(2, 1)).shape == (3, 10, 2)
    assert params_per_member(model) == (6 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2)
    with pytest.raises(ValueError, match="aligned"):
        model(torch.randn(3, 10, 6), torch.zeros(3, 10, 2, 1))


# ---------------------------------------------------------------- plain nn.Module by vmap


class _Dense(torch.nn.Module):
    """A plain single-member network: u (n, m) -> (n, q); ignores the query points."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, u, y):
        for layer in self.layers[:-1]:
            u = torch.tanh(layer(u))
        return self.layers[-1](u)


class _Basis(torch.nn.Module):
    """A plain DeepONet-like module that uses y: aligned (q, d) or per function (n, q, d)."""

    def __init__(self, m, d, p):
        super().__init__()
        self.branch, self.trunk = torch.nn.Linear(m, p), torch.nn.Linear(d, p)
        self.register_buffer("scale", torch.rand(1))

    def forward(self, u, y):
        b, t = self.branch(u), torch.tanh(self.trunk(y))  # (n, p); (q, p) or (n, q, p)
        out = b @ t.T if y.dim() == 2 else torch.einsum("np,nqp->nq", b, t)
        return self.scale * out


def _dense(spec, shapes):
    return _Dense([shapes["sensors"], spec["width"], spec["width"], shapes["queries"]])


def _basis(spec, shapes):
    return _Basis(shapes["sensors"], shapes["y_dim"], spec["width"])


DENSE_SPEC = {"name": "dense", "width": 6}
DENSE_SHAPES = {"sensors": 5, "y_dim": 1, "queries": 3}


def test_vmapped_member_equals_its_plain_module_run_alone():
    model = vmapped(_dense)(DENSE_SPEC, DENSE_SHAPES, _generators(0, 1, 2), torch.float64)
    u, y = torch.randn(3, 7, 5, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
    out = model(u, y)  # (S, n, q)
    assert out.shape == (3, 7, 3) and members(model) == 3
    for i, seed in enumerate([0, 1, 2]):
        plain = build_member(_dense, DENSE_SPEC, DENSE_SHAPES, *_generators(seed), torch.float64)
        state = dict(zip(model.names, model.stacked, strict=True))
        for name, p in plain.named_parameters():  # member i holds seed i's weights
            torch.testing.assert_close(state[name][i], p, rtol=0, atol=0)
        torch.testing.assert_close(out[i], plain(u[i], y), rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(out[i], model.member(i)(u[i], y), rtol=1e-14, atol=1e-14)


def test_vmapped_members_differ_and_leave_the_global_rng_alone():
    before = torch.random.get_rng_state()
    model = vmapped(_dense)(DENSE_SPEC, DENSE_SHAPES, _generators(0, 1), torch.float32)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert not torch.equal(model.stacked[0][0], model.stacked[0][1])
    model(torch.randn(2, 4, 5), torch.zeros(3, 1))[0].sum().backward()
    assert all(p.grad[1].abs().max() == 0 for p in model.parameters())


def test_vmapped_module_reads_aligned_and_per_function_query_points_and_buffers():
    shapes = {"sensors": 5, "y_dim": 2, "queries": 4}
    model = vmapped(_basis)({"width": 3}, shapes, _generators(0, 1), torch.float64)
    u, y = torch.randn(2, 6, 5, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64)
    aligned = model(u, y)
    torch.testing.assert_close(model(u, y.expand(2, 6, 4, 2)), aligned)
    for i in range(2):
        torch.testing.assert_close(aligned[i], model.member(i)(u[i], y))
    assert params_per_member(model) == (5 * 3 + 3) + (2 * 3 + 3)  # the buffer is no parameter


def test_vmapped_flops_are_the_hand_count_of_a_dense_network():
    model = vmapped(_dense)(DENSE_SPEC, DENSE_SHAPES, _generators(0), torch.float32)
    n = 11  # 2 FLOPs per multiply-add of 5 -> 6 -> 6 -> 3; biases and tanh not counted
    assert model.flops(n, 3) == 2 * n * (5 * 6 + 6 * 6 + 6 * 3)
    hand_batched = BatchedMLP([5, 6, 6, 3], "tanh", _generators(0))
    assert hand_batched.flops(n) - model.flops(n, 3) == n * (6 + 6 + 3)  # its bias adds
    basis = vmapped(_basis)(
        {"width": 3}, {"sensors": 5, "y_dim": 2, "queries": 4}, _generators(0), torch.float32
    )
    assert basis.flops(n, 4) == 2 * (n * 5 * 3 + 4 * 2 * 3 + n * 3 * 4)
    assert basis.flops(n, 4, aligned=False) == 2 * (n * 5 * 3 + n * 4 * 2 * 3 + n * 4 * 3)


def test_vmapped_model_can_be_linearized():
    model = vmapped(_dense)(DENSE_SPEC, DENSE_SHAPES, _generators(0, 1), torch.float64)
    u, y = torch.randn(2, 4, 5, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
    expected = model(u, y)
    linear = linearized.wrap(model)
    torch.testing.assert_close(linear(u, y), expected)  # at theta = theta0
    assert linear.flops(4, 3) == 3 * model.flops(4, 3)


def _splits(seeds, n, m, q, n_val=0):
    """Random train/val/test splits (S, n, m) -> (S, n, q) at q shared points."""
    g = torch.Generator().manual_seed(7)
    y = torch.zeros(q, 1, dtype=torch.float64)

    def split(rows):
        u = torch.randn(seeds, rows, m, generator=g, dtype=torch.float64)
        return Split(u, y, torch.sin(u[..., :q]) + 0.1 * u[..., :q] ** 2)

    return {"train": split(n), "val": split(n_val), "test": split(4)}


def test_vmapped_training_in_the_engine_equals_training_each_plain_module_alone():
    recipe = cfg.validate_study(tiny_config())["train"] | {
        "steps": 30,
        "lr": 0.01,
        "log_every": 5,
        "eval_every": 5,
        "dtype": "float64",
    }
    members = train.Members.of({"seeds": [0, 1], "data": {"n_train": 12}, "train": recipe})
    data = members.select(_splits(2, 12, 5, 3))
    model = vmapped(_dense)(DENSE_SPEC, DENSE_SHAPES, members.generators(), torch.float64)
    trainer = train.Trainer(model, data, recipe, members)
    trainer.run()
    u, y, s = data["train"]
    for i, generator in enumerate(members.generators()):  # each member alone, plain PyTorch
        plain = build_member(_dense, DENSE_SPEC, DENSE_SHAPES, generator, torch.float64)
        optimizer = torch.optim.AdamW(plain.parameters(), lr=recipe["lr"], weight_decay=0.0)
        losses = []
        for _ in range(recipe["steps"]):
            optimizer.zero_grad()
            loss = (plain(u[i], y) - s[i]).square().mean()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        np.testing.assert_allclose(trainer.loss_curve[i], losses[4::5], rtol=1e-10)
        assert trainer.final_loss[i] == pytest.approx(losses[-1], rel=1e-10)
        state = dict(zip(model.names, model.parameters(), strict=True))
        for name, p in plain.named_parameters():
            torch.testing.assert_close(state[name][i], p.detach(), rtol=1e-9, atol=1e-11)
    assert (trainer.loss_curve[:, -1] < trainer.loss_curve[:, 0]).all()
    flops = train.training_flops(model, data, recipe, members, trainer.steps_trained)
    assert (flops == 30 * 3 * 2 * 12 * (5 * 6 + 6 * 6 + 6 * 3)).all()


def test_the_identity_activation_makes_a_linear_network():
    # Known answer: linear layers compose to an affine map: f(a x + (1-a) y) = a f(x) + (1-a) f(y)
    mlp = BatchedMLP([3, 5, 5, 2], "identity", _generators(0, 1), dtype=torch.float64)
    x, y = torch.randn(2, 2, 7, 3, dtype=torch.float64)
    mixed = mlp(0.3 * x + 0.7 * y)
    assert torch.allclose(mixed, 0.3 * mlp(x) + 0.7 * mlp(y), atol=1e-12)
    relu = BatchedMLP([3, 5, 5, 2], "relu", _generators(0, 1), dtype=torch.float64)
    assert not torch.allclose(relu(0.3 * x + 0.7 * y), 0.3 * relu(x) + 0.7 * relu(y))
