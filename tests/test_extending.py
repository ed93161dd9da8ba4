"""A user's package adds a model and an operator through entry points (opscale.plugins).

The package is real: its modules and a ``<name>.dist-info`` folder (METADATA and
entry_points.txt, all ``importlib.metadata`` needs) in a temporary folder on sys.path.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from opscale import config as cfg
from opscale import cube, grid, problems, train
from opscale.models import MODELS
from opscale.plugins import PluginError
from opscale.problems.layout import read
from opscale.problems.registry import PROBLEMS, Problem
from tests.helpers import tiny_config

FILES = {
    "demo_ext/__init__.py": "",
    "demo_ext/nets.py": '''
        """A plain single-member network, batched by opscale."""
        from torch import nn

        from opscale.models.module import vmapped


        class Small(nn.Module):
            def __init__(self, sensors, width, queries):
                super().__init__()
                self.body = nn.Sequential(
                    nn.Linear(sensors, width), nn.Tanh(), nn.Linear(width, queries)
                )

            def forward(self, u, y):  # u (n, sensors) -> (n, queries)
                return self.body(u)


        @vmapped
        def small_net(spec, shapes):
            return Small(shapes["sensors"], spec["width"], shapes["queries"])
        ''',
    "demo_ext/problems.py": """
        from opscale.problems.registry import operator

        DOUBLE = operator("demo_ext.solvers:double_antiderivative", d2=1)
        """,
    "demo_ext/solvers.py": """
        from scipy.integrate import cumulative_trapezoid


        def double_antiderivative(u, x, problem):
            return 2 * cumulative_trapezoid(u, x, axis=-1, initial=0.0)
        """,
    "demo_ext/bad.py": """
        def not_a_record(u, x, problem):
            return u
        """,
}
ENTRY_POINTS = """
    [opscale.models]
    demo_net = demo_ext.nets:small_net

    [opscale.problems]
    demo_double = demo_ext.problems:DOUBLE
    """


def _install(root, name, entry_points):
    """A package's files and its dist-info under `root` (a folder on sys.path)."""
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(text))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def _forget():
    """Make the registries and the schema read the entry points again."""
    MODELS.reload()
    PROBLEMS.reload()
    cfg.load_schema.cache_clear()
    cfg.schema_file.cache_clear()
    for module in [m for m in sys.modules if m.split(".")[0] == "demo_ext"]:
        del sys.modules[module]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """Install a package with entry points; `package(text)` for other entry points."""

    def install(entry_points=ENTRY_POINTS):
        _install(tmp_path, "demo_ext", entry_points)
        monkeypatch.syspath_prepend(str(tmp_path))
        _forget()

    yield install
    monkeypatch.undo()
    _forget()


def _study(**changes):
    sections = {
        "sweep": {},
        "problem": {"name": "demo_double", "sensors": 20, "queries": 10, "resolution": 101},
        "model": {"name": "demo_net", "width": 8},
    }
    return tiny_config(**(sections | changes))


def test_entry_points_appear_in_the_registries_and_the_schema(package):
    package()
    config = cfg.validate_study(_study())  # names only: validation imports no user module
    assert config["model"]["name"] == "demo_net" and "demo_ext.nets" not in sys.modules
    schema = cfg.load_schema()["properties"]
    assert "demo_net" in schema["model"]["properties"]["name"]["enum"]
    assert "demo_double" in schema["problem"]["properties"]["name"]["enum"]
    assert MODELS["demo_net"].factory.__name__ == "small_net"
    assert {"deeponet", "demo_net"} <= set(MODELS)
    assert isinstance(PROBLEMS["demo_double"], Problem) and "demo_double" in PROBLEMS
    assert problems.output_dim(config["problem"]) == 1


def test_an_unregistered_name_lists_the_plugins_names(package):
    package()
    with pytest.raises(cfg.ConfigError, match="registered values: .*demo_net"):
        cfg.validate_study(_study(model={"name": "demo_nett"}))


def test_without_the_package_its_names_are_refused():
    _forget()
    with pytest.raises(cfg.ConfigError, match="'demo_net' is not allowed"):
        cfg.validate_study(_study())
    assert "demo_net" not in MODELS


def test_a_study_trains_the_plugin_model_on_the_plugin_operator(package, tmp_path):
    package()
    config = cfg.validate_study(_study())
    point = grid.points(config)[0]
    path = tmp_path / "data.nc"
    problems.make_data_file(grid.data_specs(config)[point.data_id], path)
    reference = cfg.validate_study(_study(problem={**config["problem"], "name": "antiderivative"}))
    ref_path = tmp_path / "ref.nc"
    problems.make_data_file(grid.data_specs(reference)[grid.points(reference)[0].data_id], ref_path)
    ours, theirs = read(path), read(ref_path)
    np.testing.assert_array_equal(ours.u.values, theirs.u.values)  # same inputs, twice the map
    np.testing.assert_allclose(ours.s.values, 2 * theirs.s.values, rtol=1e-12)

    out = tmp_path / "point.nc"
    runtime = {"device": "cpu", "compile": False, "checkpoint_every": 0}
    train.train_point(point.spec, {}, path, out, runtime)
    ds = cube.read(out)
    assert (ds.status == cube.OK).all() and np.isfinite(ds.test_rel_l2).all()
    assert (ds.n_params == (20 * 8 + 8) + (8 * 10 + 10)).all()
    steps, n = point.spec["train"]["steps"], point.spec["data"]["n_train"]
    flops = steps * 3 * 2 * n * (20 * 8 + 8 * 10)  # forward + backward, FlopCounterMode's count
    assert (ds.train_flops == flops).all()


@pytest.mark.parametrize(
    ("entry_points", "reason"),
    [
        ("[opscale.models]\nbroken = no_such_module_xyz:build\n", "failed to load: Module"),
        ("[opscale.models]\nmlp = demo_ext.nets:small_net\n", "the name 'mlp' is taken"),
        ("[opscale.problems]\nodd = demo_ext.bad:not_a_record\n", "not a Problem record"),
    ],
)
def test_a_bad_entry_point_is_named(package, entry_points, reason):
    package(entry_points)
    name = entry_points.split("\n")[1].split(" = ")[0]
    registry = MODELS if "models" in entry_points else PROBLEMS
    for _ in range(2):  # every read fails, naming it (not: once, then silently without it)
        with pytest.raises(PluginError, match=f"entry point '{name}'.*demo_ext.*{reason}"):
            registry[name]
