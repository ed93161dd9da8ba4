"""Pre-flight estimates: closed forms that match the models, refusals before anything runs."""

import json
import subprocess
import sys

import pytest
import torch

from benchmarks.resources import TRAIN as MEASURED  # the one measurement script
from opscale import config as cfg
from opscale import grid, problems, resources
from opscale.ensemble import params_per_member
from opscale.models import build_model
from tests.helpers import REPO, tiny_config

MODELS = [
    {"name": "deeponet"},
    {"name": "deeponet", "p": 5, "depth": 3},
    {"name": "deeponet", "linearized": True},
    {"name": "mlp", "depth": 3},
    {"name": "iterative", "shared": True},
    {"name": "iterative", "shared": False, "iterations": 3},
    {"name": "two_layer"},
]


def _model(change: dict) -> dict:
    return cfg.validate_study(tiny_config(model={"width": 7, "depth": 2} | change))["model"]


@pytest.mark.parametrize("change", MODELS, ids=lambda m: json.dumps(m, sort_keys=True))
def test_the_closed_forms_match_the_models(change):
    model = _model(change)
    queries = 1 if model["name"] == "two_layer" else 9
    shapes = resources.Shapes(sensors=11, queries=queries, y_dim=1, aligned=True)
    sizes = {"sensors": 11, "y_dim": 1, "queries": queries}
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    built = build_model(model, sizes, generators, torch.float64)
    assert resources.n_params(model, shapes) == params_per_member(built)
    assert resources.forward_flops(model, shapes, 13) == built.flops(13, queries, True)


def test_unaligned_deeponet_flops_match_the_model():
    model = _model({"name": "deeponet"})
    shapes = resources.Shapes(sensors=11, queries=9, y_dim=2, aligned=False)
    built = build_model(model, {"sensors": 11, "y_dim": 2, "queries": 9}, [None], torch.float64)
    assert resources.forward_flops(model, shapes, 13) == built.flops(13, 9, False)


def test_problem_shapes_follow_the_settings_and_the_files():
    config = cfg.validate_study(tiny_config(problem={"name": "diffusion_reaction", "queries": 7}))
    assert resources.problem_shapes(config["problem"]) == resources.Shapes(100, 49, 2, True)
    darcy = {"name": "dataset", "dataset": {"path": "resources/datasets/darcy16", "input": "a"}}
    darcy["dataset"]["output"] = "u"
    problem = cfg.validate_study(tiny_config(problem=darcy))["problem"]
    assert resources.problem_shapes(problem) == resources.Shapes(256, 256, 2, True)


def _estimates(config: dict) -> dict:
    return {p.id: resources.estimate(p.spec) for p in grid.points(config)}


def test_the_estimate_grows_with_every_size():
    base = cfg.validate_study(tiny_config(sweep={}))
    memory = resources.estimate(grid.points(base)[0].spec).memory_mb
    seconds = resources.estimate(grid.points(base)[0].spec).seconds
    for section, key, value in [
        ("model", "width", 2000),
        ("data", "n_train", 200_000),
        ("train", "steps", 10**8),
        ("problem", "queries", 100_000),
    ]:
        bigger = cfg.validate_study(tiny_config(sweep={}, **{section: {key: value}}))
        estimate = resources.estimate(grid.points(bigger)[0].spec)
        assert estimate.memory_mb > memory, key
        assert estimate.seconds >= seconds, key
    assert resources.PROCESS_MB < memory < 2 * resources.PROCESS_MB
    assert resources.estimate(grid.points(base)[0].spec).runtime_min >= 10


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"train": {"steps": int(1e12)}}, "loss and validation curves (train.steps or"),
        ({"model": {"width": int(1e9)}}, "parameters and optimiser state (model.width"),
        ({"data": {"n_train": int(1e9)}}, "data (data.n_train, data.n_val"),
    ],
    ids=["steps", "width", "n_train"],
)
def test_a_job_past_the_machine_is_refused_naming_the_keys(change, part):
    config = cfg.validate_study(tiny_config(sweep={}, **change))
    with pytest.raises(cfg.ConfigError) as error:
        resources.check(config, _estimates(config), "study.yaml")
    message = str(error.value)
    assert message.startswith("invalid study config (study.yaml), nothing was run:")
    assert "runtime.max_memory: 1 of 1 training job(s) would not fit: job point-" in message
    assert "more than this machine's memory" in message
    assert message.split("its largest parts: ")[1].startswith(part)  # the cause first


def test_runtime_max_memory_sets_the_limit():
    config = cfg.validate_study(tiny_config(runtime={"max_memory": 100}))
    with pytest.raises(cfg.ConfigError, match="4 of 4 training job.* more than runtime.max_m"):
        resources.check(config, _estimates(config))
    config = cfg.validate_study(tiny_config(runtime={"max_memory": 100_000}))
    resources.check(config, _estimates(config))  # fits


def test_sizes_read_as_text():
    assert resources.size(1536) == "1.5 KiB"
    assert resources.size(1.6e12) == "1.46 TiB"


def test_the_memory_estimate_covers_a_measured_job(tmp_path):
    config = cfg.validate_study(
        tiny_config(sweep={}, data={"n_train": 2000, "n_val": 50, "n_test": 500})
        | {"model": {"width": 256, "depth": 3}, "train": {"steps": 5}}
    )
    point = grid.points(config)[0]
    problems.make_data_file(grid.data_specs(config)[point.data_id], tmp_path / "data.nc")
    args = [json.dumps(point.spec), str(tmp_path / "data.nc"), str(tmp_path / "point.nc")]
    child = subprocess.run(
        [sys.executable, "-c", MEASURED, *args], capture_output=True, text=True, cwd=REPO
    )
    assert child.returncode == 0, child.stderr
    measured_mb = int(child.stdout.split()[-1]) / 1024
    estimated_mb = resources.estimate(point.spec).memory_mb
    assert measured_mb <= estimated_mb <= 2 * measured_mb, (measured_mb, estimated_mb)
