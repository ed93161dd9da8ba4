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


def test_integral_floats_are_integers_and_share_the_ids_of_the_integers():
    floats = tiny_config(
        seeds=[0.0, 1.0],
        train={**tiny_config()["train"], "steps": 40.0},
        sweep={"model.width": [4.0, 8], "data.n_train": [8.0, 16.0]},
    )
    config = cfg.validate_study(floats)
    assert config["seeds"] == [0, 1] and all(type(s) is int for s in config["seeds"])
    assert type(config["train"]["steps"]) is int
    assert [type(w) for w in config["sweep"]["model.width"]] == [int, int]
    assert _ids(floats) == _ids(tiny_config())
    assert {p.id for p in grid.points(config)} == _ids(tiny_config())
    assert all(type(p.spec["model"]["width"]) is int for p in grid.points(config))


def test_real_settings_given_as_integers_share_the_ids_of_the_floats():
    ones = tiny_config(train={**tiny_config()["train"], "lr": 1, "divergence_factor": 100})
    floats = tiny_config(train={**tiny_config()["train"], "lr": 1.0, "divergence_factor": 1e2})
    assert type(cfg.validate_study(ones)["train"]["lr"]) is float
    assert _ids(ones) == _ids(floats)


def test_long_sweep_values_are_hashed_into_short_ids():
    paths = [f"/data/{'x' * 300}/{name}" for name in ("first", "second")]
    config = cfg.validate_study(
        tiny_config(
            problem={"name": "dataset"},
            sweep={"problem.dataset.path": paths, "model.width": [4, 8]},
        )
    )
    points = grid.points(config)
    assert len({p.id for p in points}) == 4
    assert all(len(p.id) <= grid.LABEL_CHARS + 1 + grid.HASH_CHARS for p in points)
    assert all(p.id.startswith("path_") and "-width" in p.id for p in points)
    assert {p.coords["problem.dataset.path"] for p in points} == set(paths)  # values kept
    assert _ids(tiny_config()) == {p.id for p in grid.points(cfg.validate_study(tiny_config()))}


def test_the_whole_label_is_bounded_with_many_axes():
    many = {
        "problem.inputs.length_scale": [0.123456789012345],
        "problem.inputs.variance": [1.23456789012345],
        "problem.inputs.nu": [2.5],
        "problem.inputs.decay": [1.0],
        "train.lr": [0.00123456789],
        "train.weight_decay": [0.000123456789],
        "train.lr_min": [0.0000123456789],
        "model.width": [4],
    }
    point = grid.points(cfg.validate_study(tiny_config(sweep=many)))[0]
    assert len(point.id) == grid.LABEL_CHARS + 1 + grid.HASH_CHARS
