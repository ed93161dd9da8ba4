import json
import os

import numpy as np
import pytest

from opscale import cube, schema
from opscale.schema import POINT_SCHEMA, Variable
from tests.helpers import REPO

SPEC = {"seeds": [0, 1], "model": {"width": 4}}


def _results(seeds=2, steps=3, status=None):
    rng = np.random.default_rng(0)
    return {
        "test_rel_l2": rng.random(seeds),
        "train_rel_l2": rng.random(seeds),
        "val_rel_l2": rng.random(seeds),
        "test_linf": rng.random(seeds),
        "final_loss": rng.random(seeds),
        "best_step": np.arange(seeds),
        "steps_trained": np.full(seeds, 10 * steps),
        "n_params": np.full(seeds, 100),
        "train_flops": np.full(seeds, 1e9),
        "wall_time": np.full(seeds, 2.0),
        "loss_curve": rng.random((seeds, steps)),
        "step": np.arange(1, steps + 1) * 10,
        "val_curve": rng.random((seeds, steps)),
        "eval": np.arange(1, steps + 1) * 10,
        "status": np.zeros(seeds, int) if status is None else np.asarray(status),
    }


def _point(tmp_path, width, n, status=None):
    path = tmp_path / f"w{width}-n{n}.nc"
    coords = {"model.width": width, "data.n_train": n}
    ds = cube.point_dataset(_results(status=status), SPEC, coords, {"seed": SPEC["seeds"]})
    cube.write(ds, path)
    return path


def test_point_file_round_trip(tmp_path):
    path = _point(tmp_path, 4, 8)
    ds = cube.read(path)
    assert ds.sizes == {"member": 2, "step": 3, "eval": 3}
    assert json.loads(ds.attrs["config"]) == SPEC
    assert ds.attrs["opscale_version"] and ds.attrs["git_commit"]
    for name in [*ds.data_vars, *ds.coords]:
        assert {"long_name", "units"} <= set(ds[name].attrs), name
    assert ds.status.attrs["flag_meanings"] == "ok diverged missing"


def test_a_point_file_has_every_declared_variable_on_its_dims_with_its_attributes(tmp_path):
    ds = cube.read(_point(tmp_path, 4, 8))
    declared = {name for name, var in POINT_SCHEMA.items() if var.required}
    assert declared | {"width", "n_train"} == set(ds.variables)  # + the two axes
    for name in declared:
        var = POINT_SCHEMA[name]
        assert ds[name].dims == var.dims, name
        assert var.attrs.items() <= ds[name].attrs.items(), name
        assert (name in ds.coords) == var.coord, name


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r | {"test_rmse": r["test_rel_l2"]}, r"undeclared \['test_rmse'\]"),
        (lambda r: {k: v for k, v in r.items() if k != "wall_time"}, r"missing \['wall_time'\]"),
        (
            lambda r: {"loss_step" if k == "step" else k: v for k, v in r.items()},
            r"undeclared \['loss_step'\], missing \['step'\]",
        ),
    ],
    ids=["undeclared", "missing", "old-step-name"],
)
def test_a_point_dataset_refuses_results_that_do_not_match_the_schema(change, message):
    with pytest.raises(ValueError, match=message):
        cube.point_dataset(change(_results()), SPEC, {}, {"seed": [0, 1]})


def test_dataset_lays_out_and_describes_values_as_declared():
    declared = {
        "score": Variable(("member", "kind"), "a score", "1"),
        "kind": Variable(("kind",), "a label", "1", coord=True),
        "extra": Variable(("member",), "only sometimes", "s", required=False),
    }
    ds = cube.dataset({"kind": ["a", "b"], "score": np.ones((3, 2))}, declared)
    assert list(ds.data_vars) == ["score"] and list(ds.coords) == ["kind"]
    assert ds.score.dims == ("member", "kind") and list(ds.kind.values) == ["a", "b"]
    assert ds.score.attrs == {"long_name": "a score", "units": "1"}
    with pytest.raises(ValueError, match=r"missing \['score'\]"):
        cube.dataset({"kind": ["a"]}, declared)


def test_the_readme_shows_the_point_schema_as_declared():
    assert schema.table(POINT_SCHEMA) in (REPO / "docs" / "outputs.md").read_text()


def test_write_is_atomic(tmp_path, monkeypatch):
    path = _point(tmp_path, 4, 8)
    before = path.read_bytes()

    def crash(self, *args, **kwargs):
        with open(args[0], "wb") as half:
            half.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("xarray.Dataset.to_netcdf", crash)
    with pytest.raises(KeyboardInterrupt):
        cube.write(cube.read(path), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_collect_aligns_curves_of_points_with_different_budgets(tmp_path):
    short = cube.point_dataset(_results(steps=2), SPEC, {"train.steps": 20}, {"seed": [0, 1]})
    long = cube.point_dataset(_results(steps=4), SPEC, {"train.steps": 40}, {"seed": [0, 1]})
    paths = [tmp_path / "short.nc", tmp_path / "long.nc"]
    for ds, path in zip([short, long], paths, strict=True):
        cube.write(ds, path)
    result = cube.collect([str(p) for p in paths], {"sweep": {"train.steps": [20, 40]}})
    assert list(result.step.values) == [10, 20, 30, 40]
    curve = result.loss_curve.sel(steps=20)
    np.testing.assert_array_equal(curve.sel(step=[10, 20]), short.loss_curve)
    assert np.isnan(curve.sel(step=[30, 40])).all()


def test_collect_of_a_study_without_sweep_axes_has_only_seeds(tmp_path):
    path = tmp_path / "point.nc"
    cube.write(cube.point_dataset(_results(), SPEC, {}, {"seed": [0, 1]}), path)
    result = cube.collect([str(path)], {"sweep": {}})
    assert result.test_rel_l2.dims == ("seed",)
    np.testing.assert_array_equal(result.test_rel_l2, cube.read(path).test_rel_l2)


def test_collect_builds_the_grid_and_marks_missing_points(tmp_path):
    paths = [_point(tmp_path, 4, 8), _point(tmp_path, 8, 8, status=[0, 1]), _point(tmp_path, 4, 16)]
    config = {"sweep": {"model.width": [4, 8], "data.n_train": [8, 16]}}
    result = cube.collect([str(p) for p in paths], config)
    assert result.test_rel_l2.dims == ("width", "n_train", "seed")
    assert result.loss_curve.dims == ("width", "n_train", "seed", "step")
    status = result.status.sel(seed=1)
    assert int(status.sel(width=8, n_train=8)) == cube.DIVERGED
    assert int(status.sel(width=8, n_train=16)) == cube.MISSING
    assert np.isnan(result.test_rel_l2.sel(width=8, n_train=16)).all()
    assert json.loads(result.attrs["axes"]) == {"width": "model.width", "n_train": "data.n_train"}
    assert "(model.width)" in result.width.attrs["long_name"]
    point = cube.read(paths[0])
    np.testing.assert_array_equal(result.test_rel_l2.sel(width=4, n_train=8), point.test_rel_l2)


def _sized_point(tmp_path, coords: dict, n_params: int):
    """A point file at `coords` (dotted path -> value) whose models have `n_params`."""
    results = _results() | {"n_params": np.full(2, n_params)}
    path = tmp_path / ("-".join(f"{k}{v}" for k, v in coords.items()) + ".nc")
    cube.write(cube.point_dataset(results, SPEC, coords, {"seed": SPEC["seeds"]}), path)
    return str(path)


def test_n_params_is_a_coordinate_of_the_model_axis_known_where_a_point_is_missing(tmp_path):
    points = [  # width 8 trained at n = 8 only: its n = 16 point is missing
        _sized_point(tmp_path, {"model.width": w, "data.n_train": n}, 10 * w * w)
        for w, n in [(4, 8), (4, 16), (8, 8)]
    ]
    config = {"sweep": {"model.width": [4, 8], "data.n_train": [8, 16]}}
    result = cube.collect(points, config)
    assert "n_params" in result.coords and "n_params" not in result.data_vars
    assert result.n_params.dims == ("width",) and result.n_params.dtype == np.int64
    assert result.n_params.values.tolist() == [160, 640]
    assert result.n_params.attrs == POINT_SCHEMA["n_params"].attrs
    assert int(result.status.sel(width=8, n_train=16, seed=0)) == cube.MISSING


def test_n_params_keeps_a_non_model_axis_it_varies_along(tmp_path):
    # problem.sensors changes the sensor layer's size: N depends on it, the seed does not
    points = [
        _sized_point(tmp_path, {"model.width": w, "problem.sensors": m}, w * (m + 1))
        for w in (4, 8)
        for m in (10, 20)
    ]
    config = {"sweep": {"model.width": [4, 8], "problem.sensors": [10, 20]}}
    result = cube.collect(points, config)
    assert result.n_params.dims == ("width", "sensors")
    assert result.n_params.values.tolist() == [[44, 84], [88, 168]]


def test_n_params_of_a_model_never_trained_is_nan(tmp_path):
    points = [_sized_point(tmp_path, {"model.width": 4}, 160)]
    result = cube.collect(points, {"sweep": {"model.width": [4, 8]}})
    assert result.n_params.dims == ("width",)
    assert result.n_params.sel(width=4) == 160 and np.isnan(result.n_params.sel(width=8))
