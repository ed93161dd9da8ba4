from opscale import config as cfg
from opscale import grid
from tests.helpers import tiny_config


def _ids(config):
    return {p.id for p in grid.points(cfg.validate_study(config))}


def test_grid_is_the_cartesian_product():
    points = grid.points(cfg.validate_study(tiny_config()))
    assert len(points) == 4
    assert {(p.coords["model.width"], p.coords["data.n_train"]) for p in points} == {
        (4, 8),
        (4, 16),
        (8, 8),
        (8, 16),
    }
    point = next(p for p in points if p.coords == {"model.width": 4, "data.n_train": 16})
    assert point.spec["model"]["width"] == 4
    assert point.spec["data"]["n_train"] == 16
    assert point.id.startswith("width4-n_train16-")


def test_ids_are_stable():
    assert _ids(tiny_config()) == _ids(tiny_config())


def test_changing_a_fixed_parameter_changes_every_id():
    old = _ids(tiny_config())
    new = _ids(tiny_config(train={**tiny_config()["train"], "lr": 0.01}))
    assert not old & new


def test_adding_an_axis_value_keeps_the_old_ids():
    old = _ids(tiny_config())
    new = _ids(tiny_config(sweep={"model.width": [4, 8, 16], "data.n_train": [8, 16]}))
    assert old < new
    assert len(new - old) == 2


def test_runtime_settings_do_not_change_ids():
    assert _ids(tiny_config()) == _ids(tiny_config(runtime={"device": "auto"}))


def test_points_that_differ_only_in_the_model_share_data():
    points = grid.points(cfg.validate_study(tiny_config()))
    by_n = {}
    for p in points:
        by_n.setdefault(p.coords["data.n_train"], set()).add(p.data_id)
    assert all(len(ids) == 1 for ids in by_n.values())
    assert len(grid.data_specs(cfg.validate_study(tiny_config()))) == 2


def test_no_sweep_gives_one_point():
    points = grid.points(cfg.validate_study(tiny_config(sweep={})))
    assert len(points) == 1
    assert points[0].id.startswith("point-")
