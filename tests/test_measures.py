import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from opscale import config as cfg
from opscale import cube, grid, measures, problems, train
from opscale.models import build_model
from tests.helpers import tiny_config


class ParameterSum:
    """Sum of each member's parameters at initialisation and after training."""

    def __init__(self, options, spec, members):
        self.scale, self.sums = options["scale"], []

    def _sum(self, model):
        return self.scale * sum(p.detach().flatten(1).sum(1) for p in model.parameters())

    def start(self, model, data):
        self.sums.append(self._sum(model))

    def finish(self, model, data):
        values = torch.stack([*self.sums, self._sum(model)], dim=1).numpy()
        return xr.Dataset(
            {"parameter_sum": (("member", "stage"), values, {"long_name": "sum", "units": "1"})},
            coords={"stage": ["init", "end"]},
        )


@pytest.fixture
def spec_and_data(tmp_path, monkeypatch):
    monkeypatch.setitem(measures.MEASURES, "parameter_sum", ParameterSum)
    config = cfg.validate_study(tiny_config(sweep={}, data={"n_train": 16, "n_val": 8}))
    point = grid.points(config)[0]
    path = tmp_path / "data.nc"
    problems.make_data_file(grid.data_specs(config)[point.data_id], path)
    return point.spec, path


def test_a_measure_is_started_at_initialisation_and_stored_per_member(spec_and_data, tmp_path):
    spec, path = spec_and_data
    spec = spec | {"measure": {"parameter_sum": {"scale": 2.0}}}
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 0}
    train.train_point(spec, {}, path, tmp_path / "point.nc", runtime)
    ds = cube.read(tmp_path / "point.nc")
    assert ds["parameter_sum"].dims == ("member", "stage")
    members = train.Members.of(spec)
    shapes = train.shapes(problems.tensors.load_splits(path, torch.float32))
    fresh = build_model(spec["model"], shapes, members.generators(), torch.float32)
    at_init = 2.0 * sum(p.detach().flatten(1).sum(1) for p in fresh.parameters()).numpy()
    assert np.allclose(ds["parameter_sum"].sel(stage="init"), at_init, rtol=1e-5)
    assert not np.allclose(ds["parameter_sum"].sel(stage="end"), at_init)


RECOVERY = {  # the sections a recovery study needs
    "problem": {"name": "tanh_teacher", "neurons": 1, "dim": 2},
    "model": {"name": "two_layer", "width": 3},
}


@pytest.mark.parametrize("name, sections", [("ntk", {}), ("recovery", RECOVERY)])
def test_a_measure_takes_its_options_from_the_resolved_spec(name, sections):
    config = cfg.validate_study(tiny_config(sweep={}, measure={name: {}}, **sections))
    spec = grid.points(config)[0].spec
    [measure] = measures.Measures(spec, train.Members.of(spec)).measures
    schema = cfg.load_schema()["properties"]["measure"]["properties"][name]["properties"]
    defaults = {key: leaf["default"] for key, leaf in schema.items()}
    assert measure.options == spec["measure"][name] == defaults  # filled in at validation


def test_an_unknown_measure_is_refused_by_name(spec_and_data):
    spec, _ = spec_and_data
    with pytest.raises(ValueError, match="unknown measure.*nope"):
        measures.Measures(spec | {"measure": {"nope": {}}}, train.Members.of(spec))


class Shifted(nn.Module):
    """A model plus a per-member constant held as a buffer (like a wrapper's theta0)."""

    def __init__(self, model, shift):
        super().__init__()
        self.model = model
        self.register_buffer("shift", shift)

    def forward(self, u, y):
        return self.model(u, y) + self.shift


def test_per_member_buffers_follow_members_that_stop_early(spec_and_data):
    spec, path = spec_and_data
    members = train.Members.of({"seeds": [0, 1], "data": {"n_train": [4, 16]}})
    data = members.select(problems.tensors.load_splits(path, torch.float64))
    base = build_model(spec["model"], train.shapes(data), members.generators(), torch.float64)
    shift = torch.arange(4.0, dtype=torch.float64).view(4, 1, 1)
    model = Shifted(base, shift.clone())
    recipe = spec["train"] | {"steps": None, "epochs": 3, "batch_size": 4, "dtype": "float64"}
    trainer = train.Trainer(model, data, recipe, members)
    trainer.run()  # members with n = 4 stop after 3 steps, the others after 12
    assert list(trainer.steps_trained) == [3, 12, 3, 12]
    assert torch.equal(model.shift, shift)  # full size again, in member order
