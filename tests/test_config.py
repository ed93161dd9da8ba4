import pytest
import yaml

from opscale import config as cfg
from opscale.analyses import ANALYSES
from opscale.models import MODELS
from opscale.problems import PROBLEMS
from opscale.problems.inputs import FAMILIES
from tests.helpers import tiny_config


def test_defaults_are_filled_in():
    config = cfg.validate_study({"study": "x"})
    assert config["model"]["width"] == 40
    assert config["problem"]["inputs"]["length_scale"] == 0.2
    assert config["seeds"] == [0, 1, 2]


def test_default_study_is_valid():
    config = cfg.load(cfg.DEFAULT_CONFIG)
    assert len(config["sweep"]["model.width"]) >= 4
    assert len(config["sweep"]["data.n_train"]) >= 5
    assert len(config["seeds"]) >= 3


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"model": {"widht": 8}}, ["model: unknown key(s) 'widht'", "did you mean 'width'?"]),
        ({"model": {"width": -3}}, ["model.width: -3 is less than the minimum of 1"]),
        ({"model": {"name": "fno"}}, ["model.name: 'fno' is not allowed", "deeponet"]),
        ({"seeds": [0, 0]}, ["seeds: [0, 0] has non-unique elements"]),
        ({"sweep": {"model.width": [4, -8]}}, ["sweep.model.width[1] = -8", "minimum of 1"]),
        (
            {"sweep": {"model.widht": [4]}},
            ["sweep.model.widht: not a setting", "did you mean 'model.width'?"],
        ),
        ({"sweep": {"model": [4]}}, ["sweep: 'model' does not match"]),
        ({"trian": {}}, ["<top level>: unknown key(s) 'trian' (did you mean 'train'?)"]),
    ],
)
def test_bad_configs_name_the_key(section, expected):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate_study(tiny_config(**section), source="study.yaml")
    message = str(error.value)
    assert "study.yaml" in message
    for fragment in expected:
        assert fragment in message


def test_every_problem_is_listed_not_only_the_first():
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate_study(tiny_config(model={"width": 0, "depth": 0}))
    assert "model.width" in str(error.value)
    assert "model.depth" in str(error.value)


def test_axis_names_must_not_clash():
    config = tiny_config(sweep={"model.width": [4], "problem.inputs.width": [1]})
    with pytest.raises(cfg.ConfigError, match="not a setting|clashes"):
        cfg.validate_study(config)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(cfg.ConfigError, match="nope.yaml"):
        cfg.load(tmp_path / "nope.yaml")


def test_load_reads_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    assert cfg.load(path)["study"] == "tiny"


def test_schema_enums_match_the_registries():
    schema = cfg.load_schema()["properties"]
    assert set(schema["model"]["properties"]["name"]["enum"]) == set(MODELS)
    assert set(schema["problem"]["properties"]["name"]["enum"]) == set(PROBLEMS)
    assert set(schema["problem"]["properties"]["inputs"]["properties"]["family"]["enum"]) == set(
        FAMILIES
    )
    assert set(schema["fit"]["properties"]["analyses"]["items"]["enum"]) == set(ANALYSES)


def test_every_schema_key_is_described():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}{key} has no description"
            walk(sub, f"{path}{key}.")

    walk(cfg.load_schema(), "")


def test_dotted_paths():
    config = {}
    cfg.set_path(config, "a.b.c", 3)
    assert cfg.get_path(config, "a.b.c") == 3
    assert cfg.axis_name("problem.inputs.modes") == "modes"
    assert cfg.axis_name("problem.name") == "problem"  # not "name"
