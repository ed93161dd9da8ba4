import numpy as np
import pytest
import torch

from opscale import config as cfg
from opscale import cube, grid, problems, train
from opscale.models import build_model
from opscale.problems.tensors import Split, load_splits
from opscale.rng import torch_generator
from tests.helpers import tiny_config

RECIPE = {"steps": 60, "lr": 0.003, "log_every": 10, "eval_every": 10, "dtype": "float64"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    config = cfg.validate_study(tiny_config(sweep={}))
    point = grid.points(config)[0]
    path = tmp_path_factory.mktemp("data") / "data.nc"
    problems.make_data_file(grid.data_specs(config)[point.data_id], path)
    return point, path


def _model(data, seeds, dtype=torch.float64):
    spec = {"name": "deeponet", "width": 8, "depth": 2, "p": None, "activation": "tanh"}
    gens = [torch_generator(s, "init") for s in seeds]
    return build_model(spec, train.shapes(data), gens, dtype)


def _select(data, index):
    """The data of some members only."""
    return {k: Split(v.u[index], v.y, v.s[index]) for k, v in data.items()}


def test_train_point_writes_a_complete_point_file(data_file, tmp_path):
    point, path = data_file
    out = tmp_path / "point.nc"
    train.train_point(point.spec, {"model.width": 8}, path, out, {"device": "cpu"})
    ds = cube.read(out)
    assert ds.sizes["member"] == 2
    assert list(ds.seed.values) == [0, 1]
    assert (ds.status == cube.OK).all()
    assert np.isfinite(ds.test_rel_l2).all() and (ds.test_rel_l2 < 1.5).all()
    assert (ds.n_params == ds.n_params[0]).all() and ds.n_params[0] > 0
    assert (ds.train_flops > 0).all()
    assert ds.loss_curve.dims == ("member", "step")
    assert int(ds.width) == 8
    assert '"seeds": [0, 1]' in ds.attrs["config"]


def test_training_lowers_the_loss(data_file):
    _, path = data_file
    data = load_splits(path, torch.float64)
    model = _model(data, [0, 1])
    history = train.optimise(model, data, RECIPE)
    curve = torch.stack(history.losses, dim=1)
    assert (curve[:, -1] < curve[:, 0]).all()
    assert not history.diverged.any()


def test_batched_training_equals_training_each_member_alone(data_file):
    _, path = data_file
    data = load_splits(path, torch.float64)
    batched = _model(data, [0, 1])
    train.optimise(batched, data, RECIPE)
    alone = _model(_select(data, [1]), [1])
    train.optimise(alone, _select(data, [1]), RECIPE)
    for b, a in zip(batched.parameters(), alone.parameters(), strict=True):
        assert (b[1:2] - a).abs().max() <= 1e-10


def test_a_diverging_member_is_marked_and_frozen_and_the_others_go_on(data_file):
    _, path = data_file
    data = load_splits(path, torch.float64)
    model = _model(data, [0, 1])
    with torch.no_grad():
        model.branch.layers[0].weight[1] = torch.nan
    history = train.optimise(model, data, RECIPE)
    assert history.diverged.tolist() == [False, True]
    healthy = _model(_select(data, [0]), [0])
    train.optimise(healthy, _select(data, [0]), RECIPE)
    for b, h in zip(model.parameters(), healthy.parameters(), strict=True):
        assert (b[0:1] - h).abs().max() <= 1e-10


def test_best_validation_state_is_restored(data_file):
    _, path = data_file
    data = load_splits(path, torch.float64)
    model = _model(data, [0, 1])
    recipe = {**RECIPE, "lr": 0.05}
    history = train.optimise(model, data, recipe)
    curve = torch.stack(history.val_errors, dim=1)
    restored = train.validation_error(model, data)
    torch.testing.assert_close(restored, curve.min(dim=1).values)
    steps = torch.as_tensor(history.eval_steps)
    assert torch.equal(history.best_step, steps[curve.argmin(dim=1)])


def test_device_resolution():
    assert train.resolve_device("cpu").type == "cpu"
    assert train.resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="runtime.device"):
            train.resolve_device("cuda")
