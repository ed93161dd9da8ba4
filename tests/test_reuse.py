import json

import numpy as np
import pytest
import xarray as xr

from opscale import config as cfg
from opscale import cube, grid, problems, reuse, train
from tests.helpers import tiny_config

RUNTIME = {"device": "cpu", "compile": False, "checkpoint_every": 0}


def _column(tmp_path, sizes):
    """The single column point (width 8) of a tiny members study with these n_train."""
    config = cfg.validate_study(
        tiny_config(sweep={"data.n_train": sizes}, members=["data.n_train"])
    )
    (point,) = grid.points(config)
    data = tmp_path / f"{point.data_id}.nc"
    if not data.exists():
        problems.make_data_file(grid.data_specs(config)[point.data_id], data)
    return point, data, tmp_path / "points" / f"{point.id}.nc"


def _train(tmp_path, sizes):
    point, data, out = _column(tmp_path, sizes)
    train.train_point(point.spec, point.coords, data, out, RUNTIME)
    return cube.read(out)


def test_adding_an_n_to_a_column_trains_only_the_new_members(tmp_path, caplog):
    first = _train(tmp_path, [8, 16])
    caplog.set_level("INFO")
    second = _train(tmp_path, [8, 16, 24])
    assert reuse.member_pairs(second) == [(0, 8), (0, 16), (0, 24), (1, 8), (1, 16), (1, 24)]
    old = second.isel(member=[0, 1, 3, 4])
    for name in ("test_rel_l2", "final_loss", "wall_time", "loss_curve"):
        assert np.array_equal(old[name].values, first[name].values, equal_nan=True), name
    assert "reusing 4 trained member(s)" in caplog.text
    assert "2 members" in caplog.text  # the job trained the two new members only
    assert (second.status == cube.OK).all()


def test_a_reused_member_matches_training_it_in_a_new_batch(tmp_path):
    _train(tmp_path, [8, 16])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    alone = _train(fresh, [8, 16, 24]).isel(member=[0, 1, 3, 4])
    reused = _train(tmp_path, [8, 16, 24]).isel(member=[0, 1, 3, 4])
    assert np.allclose(alone.test_rel_l2, reused.test_rel_l2, rtol=1e-4)


def test_dropping_an_n_trains_nothing(tmp_path, caplog):
    first = _train(tmp_path, [8, 16])
    caplog.set_level("INFO")
    fewer = _train(tmp_path, [16])
    assert reuse.member_pairs(fewer) == [(0, 16), (1, 16)]
    assert np.array_equal(fewer.test_rel_l2, first.test_rel_l2.isel(member=[1, 3]))
    assert "members x" not in caplog.text  # no training job started


@pytest.mark.parametrize("change", [{"lr": 0.01}, {"steps": 30}])
def test_members_of_other_settings_are_not_reused(tmp_path, change):
    _train(tmp_path, [8, 16])
    point, data, out = _column(tmp_path, [8, 16, 24])
    spec = point.spec | {"train": point.spec["train"] | change}
    assert reuse.earlier_members(spec, out, train.Members.of(spec).pairs()) is None


def test_a_renamed_earlier_file_of_the_column_is_reused(tmp_path, caplog):
    first = _train(tmp_path, [8, 16])
    _, _, out = _column(tmp_path, [8, 16])
    out.rename(out.with_name("renamed-by-hand.nc"))  # its name no longer holds the label
    caplog.set_level("INFO")
    second = _train(tmp_path, [8, 16, 24])
    assert "reusing 4 trained member(s) of renamed-by-hand.nc" in caplog.text
    assert np.array_equal(second.test_rel_l2.isel(member=[0, 1, 3, 4]), first.test_rel_l2)


def _recorded_train(ds):
    spec = cube.study_config(ds)
    spec["train"]["lr"] = 0.01
    return ds.assign_attrs(config=json.dumps(spec, sort_keys=True))


def _recorded_width(ds):
    return ds.assign_coords(width=4).assign_attrs(axes=json.dumps({"width": "model.width"}))


@pytest.mark.parametrize("record", [_recorded_train, _recorded_width])
def test_a_file_named_like_the_column_but_recording_another_is_not_reused(tmp_path, record):
    _train(tmp_path, [8, 16])
    _, _, earlier = _column(tmp_path, [8, 16])
    cube.write(record(cube.read(earlier)), earlier)  # same name, another spec or width
    point, _, out = _column(tmp_path, [8, 16, 24])
    assert out.name.split("-")[0] == earlier.name.split("-")[0]  # the same label
    assert reuse.earlier_members(point.spec, out, train.Members.of(point.spec).pairs()) is None


def test_unreadable_and_foreign_files_in_the_points_folder_are_skipped(tmp_path):
    _train(tmp_path, [8, 16])
    (tmp_path / "points" / "truncated.nc").write_bytes(b"\x89HDF\r\n")
    xr.Dataset({"x": ("i", [1.0])}).to_netcdf(tmp_path / "points" / "foreign.nc")
    point, _, out = _column(tmp_path, [8, 16, 24])
    found = reuse.earlier_members(point.spec, out, train.Members.of(point.spec).pairs())
    assert reuse.member_pairs(found) == [(0, 8), (0, 16), (1, 8), (1, 16)]


@pytest.mark.workflow
def test_the_workflow_reuses_a_column_when_an_n_is_added(tmp_path):
    from tests.helpers import run_snakemake, write_config

    sweep = {"model.width": [4, 8], "data.n_train": [8, 16]}
    config = write_config(
        tmp_path / "study.yaml", tiny_config(sweep=sweep, members=["data.n_train"])
    )
    run_snakemake(tmp_path, config)
    study = tmp_path / "results" / "tiny"
    before = cube.read(study / "cube.nc")
    sweep["data.n_train"] = [8, 16, 24]
    config = write_config(config, tiny_config(sweep=sweep, members=["data.n_train"]))
    run_snakemake(tmp_path, config)
    after = cube.read(study / "cube.nc")
    assert list(after.n_train.values) == [8, 16, 24] and (after.status == cube.OK).all()
    old = after.test_rel_l2.sel(n_train=[8, 16])
    assert np.array_equal(old.values, before.test_rel_l2.values)
    logs = [p.read_text() for p in (study / "logs" / "train").glob("*.log")]
    assert sum("reusing 4 trained member(s)" in text for text in logs) == 2
