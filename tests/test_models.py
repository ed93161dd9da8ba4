import pytest
import torch

from opscale.ensemble import BatchedMLP, members, params_per_member
from opscale.models import build_model
from opscale.models.deeponet import DeepONet
from opscale.rng import torch_generator

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
