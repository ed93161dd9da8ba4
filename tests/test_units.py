"""NetCDF conventions of real files: UDUNITS units, n_params's layout, split, fit.nc's tables.

One tiny study is built for real (data files, training, collect, fit) and every `units`
attribute of its data file, point files, cube and fit.nc is parsed by cf-units (the
UDUNITS-2 library that CF names).
"""

import json

import cf_units
import numpy as np
import pytest
import xarray as xr

from opscale import config as cfg
from opscale import cube, fit, grid, problems, train
from opscale.problems import layout
from opscale.tables import TABLES, table
from tests.helpers import tiny_config

RUNTIME = {"device": "cpu", "compile": False, "checkpoint_every": 0}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study's files: {"data": [...], "points": [...], "cube": ..., "fit": ...}."""
    root = tmp_path_factory.mktemp("study")
    config = cfg.validate_study(tiny_config())
    specs = grid.data_specs(config)
    files = {"data": [], "points": []}
    for data_id, spec in specs.items():
        files["data"].append(root / f"{data_id}.nc")
        problems.make_data_file(spec, files["data"][-1])
    for point in grid.points(config):
        files["points"].append(root / f"{point.id}.nc")
        data = root / f"{point.data_id}.nc"
        train.train_point(point.spec, point.coords, data, files["points"][-1], RUNTIME)
    files["cube"], files["fit"] = root / "cube.nc", root / "fit.nc"
    cube.collect_cube([str(p) for p in files["points"]], config, files["cube"])
    fast = {"bootstrap": 20, "backtest_bootstrap": 0}
    fit.fit_cube(files["cube"], files["fit"], root / "fit.md", fast)
    return files


def _units(path) -> dict[str, str]:
    with xr.open_dataset(path) as ds:
        return {name: ds[name].attrs.get("units") for name in ds.variables}


@pytest.mark.parametrize("kind", ["data", "points", "cube"])
def test_every_variable_has_udunits_units(study, kind):
    paths = study[kind] if isinstance(study[kind], list) else [study[kind]]
    for path in paths:
        units = _units(path)
        assert None not in units.values(), [n for n, u in units.items() if u is None]
        for unit in units.values():
            cf_units.Unit(unit)  # raises ValueError on an unparseable string


def test_every_numeric_column_of_fit_nc_has_udunits_units(study):
    with xr.open_dataset(study["fit"]) as ds:
        for name in ds.data_vars:
            if np.issubdtype(ds[name].dtype, np.number):
                cf_units.Unit(ds[name].attrs["units"])


def test_no_units_string_is_a_made_up_one(study):
    seen = {u for path in [*study["points"], study["cube"]] for u in _units(path).values()}
    assert seen <= {"1", "s"}, seen  # counts and FLOPs are "1", wall time seconds
    assert _units(study["cube"])["wall_time"] == "s"
    assert cf_units.Unit("s").is_convertible(cf_units.Unit("hour"))  # s is time


def test_n_params_is_a_coordinate_of_the_model_axis(study):
    ds = cube.read(study["cube"])
    assert "n_params" in ds.coords and "n_params" not in ds.data_vars
    assert ds["n_params"].dims == ("width",)  # constant along n_train and seed
    assert ds["n_params"].dtype.kind == "i"
    assert int(ds.n_params.sel(width=8)) > int(ds.n_params.sel(width=4)) > 0
    for path in study["points"]:  # each point: the same count on every member
        point = cube.read(path)
        assert "n_params" in point.coords
        assert int(point.n_params[0]) == int(ds.n_params.sel(width=int(point.width)))


def test_split_selects_the_functions_of_a_data_file(study):
    path = study["data"][0]
    ds = layout.read(path)
    spec = json.loads(ds.attrs["config"])
    for name in layout.SPLITS:
        chosen = ds.sel(split=name)
        assert chosen.sizes["sample"] == spec["data"][f"n_{name}"]
        mask = ds["split"].values == name
        np.testing.assert_array_equal(chosen.u.values, ds.u.values[:, mask])
    plain = xr.open_dataset(path).set_xindex("split")  # as the split's comment says
    assert "set_xindex('split')" in plain["split"].attrs["comment"]
    np.testing.assert_array_equal(plain.sel(split="val").s, ds.sel(split="val").s)


def test_a_split_of_one_function_keeps_its_sample_dimension():
    split = ["train", "train", "val", "test"]
    ds = layout.dataset(
        np.zeros((1, 4, 3)), np.zeros((1, 4, 2)), np.arange(3.0), np.zeros((2, 1)), split, [0]
    )
    assert layout.part(ds, "val").u.dims == ("seed", "sample", "sensor")
    assert ds.sel(split="train").sizes["sample"] == 2


def test_every_column_of_fit_nc_says_what_it_is_and_which_table(study):
    with xr.open_dataset(study["fit"]) as ds:
        described = json.loads(ds.attrs["tables"])
        for name in ds.data_vars:
            attrs = ds[name].attrs
            assert attrs.get("long_name"), name
            if name.startswith("fitted_"):  # the fitted grids: on the cube's axes
                continue
            assert attrs["table"] in described, name
            assert ds[name].dims == (attrs["table"],), name
            assert not attrs["long_name"].endswith("table)"), name  # the fit's own columns
        for name, description in described.items():
            assert description == TABLES[name]
            assert not table(ds, name).empty
