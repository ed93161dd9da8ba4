"""Study configuration: schema validation with readable errors, and dotted paths.

A study config is a nested dict validated against the package's
``opscale/data/config.schema.yaml`` (JSON Schema, draft 2020-12; the workflow's
``workflow/schemas/config.schema.yaml`` is a link to it). Validation fills in the schema's
defaults and, on failure, lists *every* problem with the dotted key it concerns, the
allowed values and a did-you-mean for misspelt keys. This module imports nothing heavy
(no torch, no xarray): Snakemake imports it at parse time, in every DAG build and every
cluster job.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from opscale import plugins

# The checkout this module runs from (editable installs); meaningless in an installed wheel,
# which finds what it needs at run time through the package (its data files, below).
REPO_ROOT = Path(__file__).resolve().parents[2]
# Package data (shipped in the wheel): the schema and the default study. The checkout's
# workflow/schemas/config.schema.yaml and config/config.yaml are links to these files.
PACKAGE_DATA = Path(str(resources.files("opscale") / "data"))
SCHEMA_PATH = PACKAGE_DATA / "config.schema.yaml"
DEFAULT_CONFIG = PACKAGE_DATA / "config.yaml"
# Top-level sections whose leaves may be swept: the rest describes the run, not a model.
SWEEPABLE_SECTIONS = ("problem", "data", "model", "train")


class ConfigError(ValueError):
    """A study config that fails validation; the message lists every problem by key."""


# Enums of registered names: the schema file lists the package's own, and the names of
# installed entry points of each group are appended at load time (``opscale.plugins``).
PLUGIN_ENUMS = {"model.name": plugins.GROUPS["models"], "problem.name": plugins.GROUPS["problems"]}


@functools.cache
def load_schema() -> dict:
    """The study schema as a dict (cached), with the registered names of plugins' entries."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    for path, group in PLUGIN_ENUMS.items():
        node = schema
        for key in path.split("."):
            node = node["properties"][key]
        node["enum"] += [name for name in plugins.names(group) if name not in node["enum"]]
    return schema


@functools.cache
def schema_file() -> Path:
    """A file holding ``load_schema()`` for ``snakemake.utils.validate`` (which reads files).

    The package's schema file itself when no plugin adds a name; otherwise a copy with
    the plugins' names, written once per process to a temporary folder.
    """
    schema = load_schema()
    if schema == yaml.safe_load(SCHEMA_PATH.read_text()):
        return SCHEMA_PATH
    import json
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="opscale-schema-")) / "config.schema.json"
    path.write_text(json.dumps(schema))
    return path


def load(path: str | Path) -> dict:
    """Read a study YAML file (strictly: ``read_yaml``), validated, defaults filled in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return validate_study(read_yaml(path), source=str(path))


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that records duplicate keys instead of keeping the last one.

    Plain YAML loaders let a second ``depth:`` (or a second sweep axis of the same name)
    silently replace the first. Merge keys (``<<: *base``) may still be overridden.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, list[int]] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            lines.setdefault(key, []).append(key_node.start_mark.line + 1)
        self.duplicates += [
            f"duplicate key {key!r} on lines {', '.join(map(str, at))} (YAML would keep "
            "only the last, silently)"
            for key, at in lines.items()
            if len(at) > 1
        ]
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict:
    """The mapping of a YAML study file, refusing duplicate keys (``StrictLoader``).

    Snakemake reads ``--configfile`` itself, keeping the last of duplicate keys; the
    workflow reads the same files again with this before validating (``common.smk``).

    Raises
    ------
    ConfigError
        Naming every duplicate key and the lines where it occurs.
    """
    loader = StrictLoader(Path(path).read_text())
    try:
        config = loader.get_single_data() or {}
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(_report(str(path), loader.duplicates))
    return config


def validate_study(config: dict, source: str = "config") -> dict:
    """Validate `config` in place (filling defaults) and check its sweep axes.

    Uses ``snakemake.utils.validate`` for validation and defaults; when it fails, every
    schema violation is listed by dotted key instead of the first one only.

    Raises
    ------
    ConfigError
        Listing each invalid key with the reason and the allowed values.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema_file()), set_default=True)
    except WorkflowError:
        raise ConfigError(_report(source, schema_errors(config))) from None
    problems = sweep_errors(config)
    if problems:
        raise ConfigError(_report(source, problems))
    return normalise(config)


def normalise(config: dict) -> dict:
    """Give every value of a valid `config` its schema type, in place (and return it).

    An integral setting holds a Python ``int`` (``4.0`` -> ``4``; JSON Schema counts 4.0
    as an integer, torch and ``range`` do not), a real-valued one a ``float`` (``1`` ->
    ``1.0``), in sections, in lists (``seeds``) and in sweep values alike. So equal
    configs are equal dicts, and hash to the same point ids (``opscale.grid``).
    """
    _normalise(config, load_schema())
    for path, values in config.get("sweep", {}).items():
        leaf = schema_at(path) or {}
        config["sweep"][path] = [_normalise(value, leaf) for value in values]
    return config


def _normalise(value: Any, schema: dict) -> Any:
    """`value` with the type its `schema` declares; dicts and lists are changed in place."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                value[key] = _normalise(value[key], sub)
        return value
    if isinstance(value, list):
        value[:] = [_normalise(item, schema.get("items", {})) for item in value]
        return value
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if "integer" in types and "number" not in types:
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if "number" in types and isinstance(value, int):
        return float(value)
    return value


def schema_errors(config: dict, schema: dict | None = None) -> list[str]:
    """Every schema violation of `config`, one readable line each."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [_describe(error) for error in errors]


def sweep_errors(config: dict) -> list[str]:
    """Problems with `sweep` and `members`: unknown paths, clashing names, invalid values."""
    problems, names = [], {}
    for path, values in config.get("sweep", {}).items():
        leaf = schema_at(path)
        if leaf is None or leaf.get("type") == "object":
            problems.append(f"sweep.{path}: not a setting that can be swept{_suggest_path(path)}")
            continue
        name = axis_name(path)
        if name in names:
            problems.append(f"sweep.{path}: axis name '{name}' clashes with sweep.{names[name]}")
        names[name] = path
        problems += [
            f"sweep.{path}[{i}] = {v!r}: {m}"
            for i, v in enumerate(values)
            for m in ([_NULL_SWEPT] if v is None else _value_errors(config, path, v))
        ]
    problems += [
        f"members: {path} is not a swept axis; sweep it or drop it from members"
        for path in config.get("members", [])
        if path not in config.get("sweep", {})
    ]
    return problems


# A swept value becomes a coordinate of the cube, and a NetCDF coordinate cannot hold null
# next to numbers: refused, rather than trained and then lost as a NaN coordinate.
_NULL_SWEPT = (
    "null cannot be a sweep value (a cube coordinate cannot hold it); sweep other values "
    "and run the null setting as a study of its own"
)


def _value_errors(config: dict, path: str, value: Any) -> list[str]:
    """Why `value` is not allowed at `path` (empty if it is)."""
    from jsonschema import Draft202012Validator

    trial = copy.deepcopy(config)
    trial.pop("sweep", None)
    set_path(trial, path, value)
    validator = Draft202012Validator(load_schema())
    return [e.message + _yaml11_hint(e) for e in validator.iter_errors(trial)]


# A number YAML 1.1 (PyYAML, Snakemake) reads as a string: no dot or no exponent sign.
_MISSED_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def _yaml11_hint(error) -> str:
    """Why a number reached the schema as a string, when YAML 1.1 is the likely cause."""
    text = error.instance
    if error.validator != "type" or not isinstance(text, str):
        return ""
    if not _MISSED_NUMBER.fullmatch(text.strip()):
        return ""
    mantissa, exponent = re.split("[eE]", text.strip())
    mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
    exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
    return (
        f" (write {mantissa}e{exponent} or {Decimal(text.strip()):f}: YAML 1.1 reads "
        f"{text.strip()} as a string)"
    )


def axis_name(path: str) -> str:
    """Short name of a swept setting, used as the cube dimension: its last path component.

    A ``name`` is named by its section instead (``problem.name`` -> ``problem``), so
    group labels read ``problem=darcy``, not ``name=darcy``.
    """
    *sections, last = path.split(".")
    return sections[-1] if last == "name" and sections else last


def get_path(config: dict, path: str) -> Any:
    """Value at a dotted path, e.g. ``get_path(cfg, "model.width")``."""
    node = config
    for key in path.split("."):
        node = node[key]
    return node


def set_path(config: dict, path: str, value: Any) -> None:
    """Set the value at a dotted path, creating intermediate dicts."""
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def schema_at(path: str) -> dict | None:
    """The schema of the setting at a dotted path, or None if there is no such setting."""
    head = path.split(".", 1)[0]
    if head not in SWEEPABLE_SECTIONS:
        return None
    node = load_schema()
    for key in path.split("."):
        node = node.get("properties", {}).get(key)
        if node is None:
            return None
    return node


def _suggest_path(path: str) -> str:
    known = list(_leaf_paths(load_schema()))
    close = difflib.get_close_matches(path, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; sweepable: {', '.join(p for p in known if p.startswith(SWEEPABLE_SECTIONS))}"


def _leaf_paths(schema: dict, prefix: str = ""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in sub:
            yield from _leaf_paths(sub, path + ".")
        else:
            yield path


def _describe(error) -> str:
    """One line per schema error: dotted key, what is wrong, what is allowed."""
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error.absolute_path)
    key = key.replace(".[", "[") or "<top level>"
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        hints = [_did_you_mean(u, allowed) for u in unknown]
        return f"{key}: unknown key(s) {', '.join(hints)}; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{key}: {error.instance!r} is not allowed; registered values: {allowed}"
    if error.validator == "maxLength":
        size = f"{len(error.instance)} characters, at most {error.validator_value}"
        return f"{key}: {error.instance[:20]!r}... is too long ({size})"
    return f"{key}: {error.message}{_yaml11_hint(error)}"


def _did_you_mean(word: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1)
    return f"'{word}' (did you mean '{close[0]}'?)" if close else f"'{word}'"


def _report(source: str, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"invalid study config ({source}), nothing was run:\n{lines}"


def section_defaults(section: str) -> dict:
    """The schema's defaults of one top-level section (e.g. ``fit``).

    For inputs that were never a validated study: a long-format table (``opscale fit
    TABLE``), or a cube made by an older opscale whose config lacks a newer setting.
    """
    properties = load_schema()["properties"][section]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}
