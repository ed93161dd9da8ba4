import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from opscale import config as cfg
from opscale import cube, grid, problems, train
from opscale.models import build_model
from opscale.problems.tensors import Split, load_splits
from opscale.schema import POINT_SCHEMA
from tests.helpers import REPO, tiny_config

RECIPE = cfg.validate_study(tiny_config())["train"] | {
    "steps": 60,
    "lr": 0.003,
    "log_every": 10,
    "eval_every": 10,
    "dtype": "float64",
}
MODEL = {"name": "deeponet", "width": 8, "depth": 2, "p": None, "activation": "tanh"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    config = cfg.validate_study(
        tiny_config(sweep={}, data={"n_train": 24, "n_val": 8, "n_test": 16})
    )
    point = grid.points(config)[0]
    path = tmp_path_factory.mktemp("data") / "data.nc"
    problems.make_data_file(grid.data_specs(config)[point.data_id], path)
    return point, path


def _trainer(path, seeds, n_train, recipe=RECIPE, dtype=torch.float64, model=MODEL):
    spec = {"seeds": seeds, "data": {"n_train": n_train}, "train": recipe}
    members = train.Members.of(spec)
    splits = load_splits(path, dtype)
    all_seeds = [0, 1]  # the data file's seeds
    rows = torch.as_tensor([all_seeds.index(s) for s in seeds])
    splits = {k: Split(v.u[rows], v.y, v.s[rows]) for k, v in splits.items()}
    data = members.select(splits)
    net = build_model(model, train.shapes(data), members.generators(), dtype)
    return train.Trainer(net, data, recipe, members), data


def _member_params(trainer, i):
    return [p[i] for p in trainer.model.parameters()]


def _assert_same(a, b, atol):
    for x, y in zip(a, b, strict=True):
        assert (x - y).abs().max() <= atol


def test_train_point_writes_a_complete_point_file(data_file, tmp_path):
    point, path = data_file
    out = tmp_path / "point.nc"
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 0}
    train.train_point(point.spec, {"model.width": 8}, path, out, runtime)
    ds = cube.read(out)
    assert ds.sizes["member"] == 2
    assert list(ds.seed.values) == [0, 1]
    assert (ds.status == cube.OK).all()
    assert np.isfinite(ds.test_rel_l2).all() and (ds.test_rel_l2 < 1.5).all()
    assert (ds.n_params == ds.n_params[0]).all() and ds.n_params[0] > 0
    assert (ds.steps_trained == point.spec["train"]["steps"]).all()
    assert (ds.train_flops > 0).all()
    assert ds.loss_curve.dims == ("member", "step")
    assert int(ds.width) == 8
    declared = {name: var for name, var in POINT_SCHEMA.items() if var.required}
    assert {name: ds[name].dims for name in declared} == {n: v.dims for n, v in declared.items()}
    assert list(ds["step"].values) == list(ds["eval"].values) == [10, 20, 30, 40]
    assert '"seeds": [0, 1]' in ds.attrs["config"]


def test_training_lowers_the_loss(data_file):
    trainer, _ = _trainer(data_file[1], [0, 1], 24)
    trainer.run()
    assert (trainer.loss_curve[:, -1] < trainer.loss_curve[:, 0]).all()
    assert (trainer.status == cube.OK).all()


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_batched_training_equals_training_each_member_alone(data_file, dtype, atol, batch_size):
    recipe = RECIPE | {"steps": 100, "batch_size": batch_size}
    batched, _ = _trainer(data_file[1], [0, 1], 24, recipe, dtype)
    batched.run()
    for i, seed in enumerate([0, 1]):
        alone, _ = _trainer(data_file[1], [seed], 24, recipe, dtype)
        alone.run()
        _assert_same(_member_params(batched, i), _member_params(alone, 0), atol)


@pytest.mark.parametrize(
    "recipe",
    [
        RECIPE,
        RECIPE | {"batch_size": 6},
        RECIPE | {"epochs": 5, "batch_size": 8, "schedule": "cosine"},
    ],
)
def test_members_with_different_n_train_equal_separate_jobs(data_file, recipe):
    grouped, _ = _trainer(data_file[1], [0, 1], [6, 24], recipe)
    grouped.run()
    for i, (seed, n) in enumerate([(0, 6), (0, 24), (1, 6), (1, 24)]):
        alone, _ = _trainer(data_file[1], [seed], n, recipe)
        alone.run()
        assert grouped.steps_trained[i] == alone.steps_trained[0]
        _assert_same(_member_params(grouped, i), _member_params(alone, 0), 1e-10)


def test_epoch_budgets_grow_with_n():
    recipe = RECIPE | {"epochs": 3, "batch_size": 8}
    np.testing.assert_array_equal(train.budgets(recipe, np.array([4, 8, 20])), [3, 3, 8])
    full = RECIPE | {"epochs": 3, "batch_size": None}
    np.testing.assert_array_equal(train.budgets(full, np.array([4, 20])), [3, 3])


def test_schedules():
    recipe = RECIPE | {"lr": 1.0, "lr_min": 0.1, "decay_every": 10, "decay_factor": 0.5}
    T = np.array([100])
    assert train.SCHEDULES["cosine"](0, T, recipe)[0] == pytest.approx(1.0)
    assert train.SCHEDULES["cosine"](100, T, recipe)[0] == pytest.approx(0.1)
    assert train.SCHEDULES["step"](25, T, recipe)[0] == pytest.approx(0.25)
    assert train.SCHEDULES["constant"](25, T, recipe)[0] == 1.0


def test_a_diverging_member_is_marked_and_the_others_go_on(data_file):
    trainer, _ = _trainer(data_file[1], [0, 1], 24)
    with torch.no_grad():
        trainer.model.branch.layers[0].weight[1] = torch.nan
    trainer.run()
    assert trainer.status.tolist() == [cube.OK, cube.DIVERGED]
    assert trainer.steps_trained.tolist() == [60, 1]
    healthy, _ = _trainer(data_file[1], [0], 24)
    healthy.run()
    _assert_same(_member_params(trainer, 0), _member_params(healthy, 0), 1e-10)


def test_an_exploding_but_finite_loss_counts_as_divergence(data_file):
    trainer, _ = _trainer(data_file[1], [0, 1], 24, RECIPE | {"lr": 100.0, "steps": 200})
    trainer.run()
    assert (trainer.status == cube.DIVERGED).all()
    assert (trainer.steps_trained < 200).all()
    exploded = trainer.final_loss > RECIPE["divergence_factor"] * trainer.first_loss
    assert exploded.all() and np.isfinite(trainer.final_loss).all()
    sane, _ = _trainer(data_file[1], [0, 1], 24)
    sane.run()
    assert (sane.status == cube.OK).all()


def test_best_validation_state_is_reported(data_file):
    trainer, data = _trainer(data_file[1], [0, 1], 24, RECIPE | {"lr": 0.05})
    trainer.run()
    with torch.no_grad():
        restored = train.relative_l2(trainer.model(data["val"].u, data["val"].y), data["val"].s)
    np.testing.assert_allclose(restored.numpy(), np.nanmin(trainer.val_curve, axis=1))
    steps = RECIPE["eval_every"] * (1 + np.nanargmin(trainer.val_curve, axis=1))
    np.testing.assert_array_equal(trainer.best_step, steps)


def test_early_stopping_stops_a_member_without_progress(data_file):
    trainer, _ = _trainer(
        data_file[1], [0, 1], 24, RECIPE | {"lr": 0.2, "steps": 400, "patience": 20}
    )
    trainer.run()
    assert (trainer.steps_trained < 400).all()
    assert (trainer.steps_trained - trainer.best_step >= 20).all()


def test_without_validation_functions_the_last_state_is_reported(data_file):
    trainer, data = _trainer(data_file[1], [0], 24)
    empty = Split(data["val"].u[:, :0], data["val"].y, data["val"].s[:, :0])
    trainer.data["val"] = empty
    trainer.validated = False
    trainer.run()
    with torch.no_grad():
        loss = train.member_losses(
            trainer.model, data["train"].u, data["train"].y, data["train"].s, None
        )
    # the last recorded loss was taken before the last step; the state is after it
    assert loss[0] < trainer.final_loss[0]
    assert np.isnan(trainer.val_curve).all()


def test_device_resolution():
    assert train.resolve_device("cpu").type == "cpu"
    assert train.resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="runtime.device"):
            train.resolve_device("cuda")


KILL_SCRIPT = """
import sys, json
from opscale.train import train_point
spec, path, out, ckpt = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
runtime = {"device": "cpu", "compile": False, "checkpoint_every": 20}
train_point(spec, {}, path, out, runtime, ckpt)
"""


def test_a_killed_job_resumes_to_the_same_result(data_file, tmp_path):
    import json

    point, path = data_file
    spec = point.spec | {"train": point.spec["train"] | {"steps": 3000, "batch_size": 8}}
    args = [json.dumps(spec), str(path)]
    ckpt = tmp_path / "job.pt"
    cmd = [sys.executable, "-c", KILL_SCRIPT]
    subprocess.run(
        [*cmd, *args, str(tmp_path / "whole.nc"), str(tmp_path / "other.pt")], check=True, cwd=REPO
    )
    job = subprocess.Popen([*cmd, *args, str(tmp_path / "resumed.nc"), str(ckpt)], cwd=REPO)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert ckpt.exists() and not (tmp_path / "resumed.nc").exists()
    subprocess.run([*cmd, *args, str(tmp_path / "resumed.nc"), str(ckpt)], check=True, cwd=REPO)
    whole, resumed = cube.read(tmp_path / "whole.nc"), cube.read(tmp_path / "resumed.nc")
    for name in whole.data_vars:
        if name != "wall_time":
            np.testing.assert_array_equal(whole[name].values, resumed[name].values, err_msg=name)


def test_a_job_rerun_after_it_finished_restores_its_final_state_instead_of_training(
    data_file, tmp_path, caplog
):
    # Killed after its point file was written but before Snakemake recorded the job as
    # done, a job reruns with its point file deleted: its final checkpoint (kept until
    # collect) brings back the finished state, and nothing is trained again.
    import logging
    import re

    point, path = data_file
    spec = point.spec | {"train": point.spec["train"] | {"steps": 200, "batch_size": 8}}
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 20}
    ckpt, out = tmp_path / "job.pt", tmp_path / "point.nc"
    train.train_point(spec, {}, str(path), str(out), runtime, str(ckpt))
    first = cube.read(out)
    final_step = torch.load(ckpt, weights_only=True)["trainer"]["step"]
    assert final_step == int(first.steps_trained.max())  # the finished state
    out.unlink()
    with caplog.at_level(logging.INFO, logger="opscale.train"):
        train.train_point(spec, {}, str(path), str(out), runtime, str(ckpt))
    started = re.search(r"training from step (\d+) of (\d+)", caplog.text)
    assert started and int(started[1]) == final_step
    again = cube.read(out)
    for name in first.data_vars:
        if name != "wall_time":
            np.testing.assert_array_equal(first[name].values, again[name].values, err_msg=name)


@pytest.mark.parametrize("weighted", [False, True])
def test_fused_squared_error_matches_autograd(weighted):
    rng = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, 4, dtype=torch.float64, generator=rng, requires_grad=True)
    target = torch.randn(3, 5, 4, dtype=torch.float64, generator=rng)
    weights = torch.rand(3, 5, dtype=torch.float64, generator=rng) if weighted else None
    assert torch.autograd.gradcheck(train.SquaredError.apply, (pred, target, weights))
    plain = (pred - target).square().mean(-1)
    plain = plain.mean(-1) if weights is None else (plain * weights).sum(-1)
    torch.testing.assert_close(train.SquaredError.apply(pred, target, weights), plain)


class _RunsCode:
    """A pickled object that would run code when unpickled (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(data_file, tmp_path):
    point, path = data_file
    ckpt, marker = tmp_path / "job.pt", tmp_path / "code-ran"
    torch.save({"key": "anything", "trainer": _RunsCode(marker)}, ckpt)
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 20}
    with pytest.raises(train.CheckpointError) as error:
        train.train_point(point.spec, {}, path, tmp_path / "out.nc", runtime, str(ckpt))
    message = str(error.value)
    assert f"refusing checkpoint {ckpt}: it holds more than tensors and plain values" in message
    assert "Unsupported global" in message
    assert f"rm {ckpt}" in message
    assert not marker.exists() and not (tmp_path / "out.nc").exists()


def test_a_checkpoint_holds_tensors_and_plain_values_only(data_file, tmp_path):
    point, path = data_file
    trainer, _ = _trainer(path, [0, 1], 16, RECIPE | {"batch_size": 4})
    for _ in range(3):
        trainer.step += 1
        trainer.after_step(trainer.train_step())
    ckpt = train.Checkpoint(str(tmp_path / "job.pt"), 1, "key")
    ckpt.maybe_save(trainer)
    again, _ = _trainer(path, [0, 1], 16, RECIPE | {"batch_size": 4})
    ckpt.restore(again)  # weights_only=True
    assert again.step == trainer.step
    for name in train.Trainer.ARRAYS:
        np.testing.assert_array_equal(getattr(again, name), getattr(trainer, name))
        assert isinstance(getattr(again, name), np.ndarray)
    np.testing.assert_array_equal(
        again.sampler.indices(again.active), trainer.sampler.indices(trainer.active)
    )


HOST_READS = ("cpu", "item", "numpy", "tolist", "__bool__", "__float__", "__int__", "__array__")


def _counting(method, reads, name):
    def counted(self, *args, **kwargs):
        reads.append(name)
        return method(self, *args, **kwargs)

    return counted


def test_a_step_reads_nothing_back_to_the_host_between_sync_points(data_file, monkeypatch):
    """Losses, divergence, best state and curves stay on the device; reads only at sync steps.

    Sync points: validation (every 15), logging (every 10), the end of a budget (30). Each
    host read goes through ``Trainer._host`` (``.cpu().numpy()``): a divergence check and,
    at validation steps, a patience check.
    """
    recipe = RECIPE | {"steps": 30, "log_every": 10, "eval_every": 15, "batch_size": 8}
    recipe |= {"patience": 100, "schedule": "cosine", "lr_min": 1e-4}
    trainer, _ = _trainer(data_file[1], [0, 1], [6, 24], recipe)
    reads = []
    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, _counting(getattr(torch.Tensor, name), reads, name))
    per_step, syncs = {}, {}
    while len(trainer.active):
        trainer.step += 1
        before, synced = len(reads), trainer.syncs
        trainer.after_step(trainer.train_step())
        per_step[trainer.step] = len(reads) - before
        syncs[trainer.step] = trainer.syncs - synced
    monkeypatch.undo()
    quiet = [step for step in per_step if step not in (10, 15, 20, 30)]
    assert quiet and all(per_step[step] == 0 for step in quiet)
    assert syncs == {step: {10: 1, 15: 2, 20: 1, 30: 2}.get(step, 0) for step in per_step}
    assert all(per_step[step] == 2 * syncs[step] for step in per_step)  # .cpu().numpy()
    assert (trainer.steps_trained == 30).all() and (trainer.status == cube.OK).all()


@pytest.mark.parametrize(
    ("recipe", "decays"),
    [
        (RECIPE, None),
        (RECIPE | {"batch_size": 6, "schedule": "cosine", "weight_decay": 0.01}, None),
        (RECIPE | {"epochs": 5, "batch_size": 8, "schedule": "step"}, [0.0, 0.05]),
    ],
)
def test_members_with_their_own_lr_and_weight_decay_equal_separate_runs(data_file, recipe, decays):
    """``members: [data.n_train, train.lr, train.weight_decay]``: one job, one AdamW."""
    rates = [0.001, 0.003, 0.01]
    tuned = recipe | {"lr": rates} | ({"weight_decay": decays} if decays else {})
    spec = {"seeds": [0, 1], "data": {"n_train": [6, 24]}, "train": tuned}
    members = train.Members.of(spec)
    assert len(members) == 2 * 2 * len(rates) * (len(decays) if decays else 1)
    grouped, _ = _trainer(data_file[1], [0, 1], [6, 24], tuned)
    grouped.run()
    coords = members.coords()
    assert set(coords) == {"seed", "n_train", "lr", *(["weight_decay"] if decays else [])}
    for i in range(len(members)):
        alone_recipe = recipe | {"lr": coords["lr"][i]}
        if decays:
            alone_recipe["weight_decay"] = coords["weight_decay"][i]
        seed, n = int(coords["seed"][i]), int(coords["n_train"][i])
        alone, _ = _trainer(data_file[1], [seed], n, alone_recipe)
        alone.run()
        assert grouped.steps_trained[i] == alone.steps_trained[0]
        assert grouped.best_step[i] == alone.best_step[0]
        _assert_same(_member_params(grouped, i), _member_params(alone, 0), 1e-10)


def test_a_job_with_lr_as_member_axis_writes_each_members_rate(data_file, tmp_path):
    config = cfg.validate_study(
        tiny_config(
            sweep={"data.n_train": [6, 24], "train.lr": [0.001, 0.01]},
            members=["data.n_train", "train.lr"],
            data={"n_train": 24, "n_val": 8, "n_test": 16},
        )
    )
    [point] = grid.points(config)
    assert point.spec["train"]["lr"] == [0.001, 0.01]
    path = tmp_path / "data.nc"
    problems.make_data_file(grid.data_specs(config)[point.data_id], path)
    out = tmp_path / "point.nc"
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 0}
    train.train_point(point.spec, point.coords, path, out, runtime)
    ds = cube.read(out)
    assert ds.sizes["member"] == 2 * 2 * 2
    assert ds.lr.values.tolist() == [0.001, 0.01] * 4
    assert ds.n_train.values.tolist() == [6, 6, 24, 24] * 2
    assert (ds.status == cube.OK).all()
