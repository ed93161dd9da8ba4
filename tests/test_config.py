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


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        ({"model": {"width": 8.0}}, ("model", "width"), 8),
        ({"seeds": [0.0, 1.0]}, ("seeds",), [0, 1]),
        ({"train": {"steps": 40.0, "patience": 10.0}}, ("train", "patience"), 10),
        (
            {"measure": {"iteration": {"k_eval": [1.0, 2]}}},
            ("measure", "iteration", "k_eval"),
            [1, 2],
        ),
        ({"problem": {"inputs": {"decay": 1}}}, ("problem", "inputs", "decay"), 1.0),
    ],
)
def test_values_are_normalised_to_their_schema_type(change, path, expected):
    config = cfg.validate_study(tiny_config(**change))
    value = config
    for key in path:
        value = value[key]
    assert value == expected
    items = value if isinstance(value, list) else [value]
    assert {type(v) for v in items} == {
        type(expected[0] if isinstance(expected, list) else expected)
    }


def test_a_non_integral_float_is_refused_where_an_integer_is_meant():
    with pytest.raises(cfg.ConfigError, match=r"model.width: 4.5 is not of type 'integer'"):
        cfg.validate_study(tiny_config(model={"width": 4.5}))


@pytest.mark.parametrize("path", ["train.batch_size", "model.p", "train.patience"])
def test_null_sweep_values_are_refused_naming_the_key(path):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate_study(tiny_config(sweep={path: [None, 4]}))
    assert f"sweep.{path}[0] = None: null cannot be a sweep value" in str(error.value)


DUPLICATES = """study: dup
model:
  width: 8
  depth: 2
  depth: 3
sweep:
  model.width: [4, 8]
  data.n_train: [8, 16]
  model.width: [16]
"""


def test_duplicate_keys_are_refused_with_their_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(DUPLICATES)
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load(path)
    message = str(error.value)
    assert message.startswith(f"invalid study config ({path}), nothing was run:")
    assert "duplicate key 'depth' on lines 4, 5 (YAML would keep only the last" in message
    assert "duplicate key 'model.width' on lines 7, 9" in message


def test_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("study: m\nbase: &b {width: 8, depth: 2}\n")
    assert cfg.read_yaml(path)["base"] == {"width": 8, "depth": 2}
    path.write_text("study: m\nx: &b {width: 8, depth: 2}\nmodel: {<<: *b, depth: 3}\n")
    assert cfg.read_yaml(path)["model"] == {"width": 8, "depth": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "train: {lr: 3e-3}",
            "train.lr: '3e-3' is not of type 'number' (write 3.0e-3 or 0.003: YAML 1.1 "
            "reads 3e-3 as a string)",
        ),
        ("train: {steps: 1e4}", "(write 1.0e+4 or 10000: YAML 1.1 reads 1e4 as a string)"),
        (
            "sweep: {train.lr: [3e-3, 0.01]}",
            "sweep.train.lr[0] = '3e-3': '3e-3' is not of type 'number' (write 3.0e-3 or 0.003",
        ),
    ],
)
def test_numbers_yaml_11_reads_as_strings_get_a_hint(tmp_path, text, expected):
    path = tmp_path / "s.yaml"
    path.write_text(f"study: s\n{text}\n")
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load(path)
    assert expected in str(error.value)


def test_a_quoted_integer_gets_no_yaml_hint():
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate_study(tiny_config(model={"width": "8"}))
    assert "YAML 1.1" not in str(error.value)


def test_a_study_name_has_a_length_limit():
    cfg.validate_study(tiny_config(study="s" * 64))
    with pytest.raises(cfg.ConfigError, match=r"study: 'ssssssssssssssssssss'... is too long"):
        cfg.validate_study(tiny_config(study="s" * 300))
