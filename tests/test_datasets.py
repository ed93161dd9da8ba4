"""Datasets read from NetCDF files: the shipped ones, seeds and splits, and bad files."""

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import cumulative_trapezoid

from opscale import config as cfg
from opscale import grid, problems
from opscale.problems.datasets import DatasetError, files, resolve
from opscale.problems.registry import problem_files
from tests.helpers import REPO, planned_jobs, run_snakemake, tiny_config, write_config

SHIPPED = REPO / "resources" / "datasets"
ANTIDERIVATIVE = {
    "name": "dataset",
    "dataset": {"path": "resources/datasets/antiderivative_aligned"},
}
DARCY = {
    "name": "dataset",
    "dataset": {"path": "resources/datasets/darcy16", "input": "a", "output": "u"},
}


def _build(problem, seeds=(0, 1), **sizes):
    config = cfg.validate_study(
        {
            "study": "d",
            "seeds": list(seeds),
            "problem": problem,
            "data": {"n_train": 100, "n_val": 20, "n_test": 200} | sizes,
        }
    )
    return problems.generate(grid.data_specs(config)[grid.points(config)[0].data_id])


def test_shipped_files_are_in_the_repository_with_provenance():
    for stem in ("antiderivative_aligned", "darcy16"):
        for part in ("train", "test"):
            assert (SHIPPED / f"{stem}_{part}.nc").is_file()
    readme = (SHIPPED / "README.md").read_text()
    assert "DeepXDE" in readme and "neuraloperator" in readme and "sha256" in readme


def test_relative_paths_resolve_against_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("resources/datasets/x") == REPO / "resources" / "datasets" / "x"
    assert resolve(str(tmp_path / "y")) == tmp_path / "y"
    paths = files(cfg.validate_study({"study": "d", "problem": ANTIDERIVATIVE})["problem"])
    assert paths["train"] == SHIPPED / "antiderivative_aligned_train.nc"


def test_the_workflow_reads_the_train_and_test_files_of_a_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Snakemake's -d: paths still resolve against the repo
    problem = cfg.validate_study({"study": "d", "problem": DARCY})["problem"]
    assert problem_files(problem) == [
        str(SHIPPED / f"darcy16_{part}.nc") for part in ("train", "test")
    ]


def test_antiderivative_dataset_in_the_common_layout():
    ds = _build(ANTIDERIVATIVE)
    assert ds.u.dims == ("seed", "sample", "sensor") and ds.sizes["sensor"] == 100
    assert ds.y.dims == ("query", "y_dim") and ds.sizes["y_dim"] == 1
    np.testing.assert_allclose(ds.y.values[:, 0], np.linspace(0, 1, 100))
    # the outputs are the antiderivatives of the inputs (to the files' own accuracy)
    integral = cumulative_trapezoid(ds.u.values, ds.y.values[:, 0], axis=-1, initial=0)
    assert np.abs(integral - ds.s.values).max() < 0.03


def test_seeds_share_the_functions_but_split_them_differently():
    ds = _build(ANTIDERIVATIVE, n_train=130, n_val=20)
    with xr.open_dataset(SHIPPED / "antiderivative_aligned_train.nc") as raw:
        file_u = raw.u.values
    train = ds.split.values == "train"
    for seed in range(2):  # every seed's train + val is the whole file, in its own order
        used = np.concatenate([ds.u.values[seed, train], ds.u.values[seed, ds.split == "val"]])
        np.testing.assert_array_equal(np.sort(used, axis=0), np.sort(file_u, axis=0))
    assert not np.array_equal(ds.u.values[0, train], ds.u.values[1, train])
    test = ds.split.values == "test"
    np.testing.assert_array_equal(ds.u.values[0, test], ds.u.values[1, test])


def test_dataset_training_sets_are_nested_prefixes():
    small, large = _build(ANTIDERIVATIVE, n_train=30), _build(ANTIDERIVATIVE, n_train=120)
    for var in ("u", "s"):
        a = small[var].values[:, small.split.values == "train"]
        b = large[var].values[:, large.split.values == "train"]
        np.testing.assert_array_equal(a, b[:, :30])
        np.testing.assert_array_equal(
            small[var].values[:, small.split.values == "val"],
            large[var].values[:, large.split.values == "val"],
        )


def test_validation_from_the_test_file_allows_training_on_the_whole_train_file():
    problem = ANTIDERIVATIVE | {"dataset": ANTIDERIVATIVE["dataset"] | {"validation": "test"}}
    ds = _build(problem, n_train=150, n_val=100, n_test=900)
    with xr.open_dataset(SHIPPED / "antiderivative_aligned_test.nc") as raw:
        test_u = raw.u.values
    for seed in range(2):
        held_out = ds.u.values[seed, ds.split.values != "train"]
        np.testing.assert_array_equal(np.sort(held_out, axis=0), np.sort(test_u, axis=0))


def test_darcy_dataset_has_two_dimensional_queries():
    ds = _build(DARCY, n_train=100, n_val=20, n_test=50)
    assert ds.sizes["sensor"] == 256 and ds.sizes["query"] == 256 and ds.sizes["y_dim"] == 2
    with xr.open_dataset(SHIPPED / "darcy16_test.nc") as raw:
        # query q = (i, j) in C order: y = (x1[i], x2[j]), s = u[:, i, j]
        np.testing.assert_allclose(ds.y.values[17], [raw.x1.values[1], raw.x2.values[1]])
        np.testing.assert_allclose(ds.s.values[0, -50:, 17], raw.u.values[:, 1, 1], rtol=1e-6)


def test_asking_for_more_functions_than_the_file_holds_names_the_sizes():
    with pytest.raises(
        DatasetError, match=r"has 150 samples, fewer than data.n_val = 20 \+ data.n_train = 140"
    ):
        _build(ANTIDERIVATIVE, n_train=140)


# ---------------------------------------------------------------- malformed files


def _shipped(part="train"):
    with xr.open_dataset(SHIPPED / f"antiderivative_aligned_{part}.nc") as ds:
        return ds.load()


def _missing_variable(ds):
    return ds.drop_vars("s")


def _wrong_dims(ds):
    return ds.rename({"sample": "function"})


def _nans(ds):
    ds = ds.copy(deep=True)
    ds["u"][7, 3] = np.nan
    return ds


def _mismatched_counts(ds):
    s = ds.s.rename({"sample": "sample_s"}).isel(sample_s=slice(0, 149))
    return ds.drop_vars("s").assign(s=s)


def _zero_outputs(ds):
    ds = ds.copy(deep=True)
    ds["s"][[4, 9]] = 0.0
    return ds


def _string_coordinates(ds):
    return ds.assign_coords(x=[f"x{i}" for i in range(ds.sizes["x"])])


FAULTS = {  # fault -> (how to make it, what the error must say)
    "zero outputs": (
        _zero_outputs,
        r"'s' is identically zero in 2 sample\(s\) \(sample index 4, 9\): the relative L2 "
        r"error of a zero output is 0/0",
    ),
    "string coordinates": (
        _string_coordinates,
        r"the coordinate of dim 'x' of 'u' is not numeric \(dtype .*, e.g. 'x0'\)",
    ),
    "missing variable": (_missing_variable, r"no variable 's' \(problem.dataset.output\)"),
    "wrong dims": (_wrong_dims, r"wrong dims: 'u' has dims \('function', 'x'\)"),
    "NaNs": (_nans, r"'u' has 1 NaN/inf values \(first in sample 7\)"),
    "mismatched sample counts": (
        _mismatched_counts,
        r"mismatched sample counts: 'u' has 150 \(dim 'sample'\), 's' has 149",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_malformed_file_gives_a_clear_error_naming_file_and_problem(tmp_path, fault):
    make, message = FAULTS[fault]
    make(_shipped("train")).to_netcdf(tmp_path / "bad_train.nc")
    _shipped("test").to_netcdf(tmp_path / "bad_test.nc")
    problem = {"name": "dataset", "dataset": {"path": str(tmp_path / "bad")}}
    with pytest.raises(DatasetError, match=message) as error:
        _build(problem)
    assert str(tmp_path / "bad_train.nc") in str(error.value)  # the file
    assert f"problem.dataset.path = '{tmp_path / 'bad'}'" in str(error.value)  # the problem


def test_train_and_test_grids_must_agree(tmp_path):
    _shipped("train").to_netcdf(tmp_path / "bad_train.nc")
    _shipped("test").isel(x=slice(0, 50)).to_netcdf(tmp_path / "bad_test.nc")
    with pytest.raises(DatasetError, match=r"bad_test.nc: wrong dims: grids"):
        _build({"name": "dataset", "dataset": {"path": str(tmp_path / "bad")}})


def test_missing_file_and_unreadable_file(tmp_path):
    problem = {"name": "dataset", "dataset": {"path": str(tmp_path / "none")}}
    with pytest.raises(DatasetError, match=r"none_train.nc: file not found"):
        _build(problem)
    (tmp_path / "junk_train.nc").write_text("not netcdf")
    _shipped("test").to_netcdf(tmp_path / "junk_test.nc")
    with pytest.raises(DatasetError, match=r"junk_train.nc: not a readable NetCDF file"):
        _build({"name": "dataset", "dataset": {"path": str(tmp_path / "junk")}})


# ---------------------------------------------------------------- through the workflow


@pytest.mark.workflow
def test_a_dataset_study_runs_and_editing_the_file_rebuilds_its_data(tmp_path):
    for part in ("train", "test"):
        _shipped(part).isel(sample=slice(0, 60)).to_netcdf(tmp_path / f"mine_{part}.nc")
    config = tiny_config(
        study="mine",
        problem={"name": "dataset", "dataset": {"path": str(tmp_path / "mine")}},
        data={"n_train": 40, "n_val": 10, "n_test": 30},
        sweep={"data.n_train": [20, 40]},
    )
    path = write_config(tmp_path / "mine.yaml", config)
    work, cube_file = tmp_path / "work", "results/mine/cube.nc"  # no fit: it is slow
    run_snakemake(work, path, cube_file)
    cube = xr.open_dataset(work / cube_file)
    assert cube.test_rel_l2.dims == ("n_train", "seed") and np.isfinite(cube.test_rel_l2).all()
    assert planned_jobs(work, path, cube_file) == {}
    edited = _shipped("train").isel(sample=slice(0, 60))
    edited["u"] = edited.u * 2
    edited.to_netcdf(tmp_path / "mine_train.nc")
    planned = planned_jobs(work, path, cube_file)
    assert planned["data"] == 2 and planned["train"] == 2  # one data file per n_train
