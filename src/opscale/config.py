"""Study configuration: schema validation with readable errors, and dotted paths.

A study config is a nested dict validated against ``workflow/schemas/config.schema.yaml``
(JSON Schema, draft 2020-12). Validation fills in the schema's defaults and, on failure,
lists *every* problem with the dotted key it concerns, the allowed values and a
did-you-mean for misspelt keys. This module imports nothing heavy (no torch, no xarray):
Snakemake imports it at parse time, in every DAG build and every cluster job.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config" / "config.yaml"
# Top-level sections whose leaves may be swept: the rest describes the run, not a model.
SWEEPABLE_SECTIONS = ("problem", "data", "model", "train")


class ConfigError(ValueError):
    """A study config that fails validation; the message lists every problem by key."""


@functools.cache
def load_schema() -> dict:
    """The study schema as a dict (cached)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load(path: str | Path) -> dict:
    """Read a study YAML file and return it validated, with defaults filled in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    config = yaml.safe_load(path.read_text()) or {}
    return validate_study(config, source=str(path))


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
        validate(config, str(SCHEMA_PATH), set_default=True)
    except WorkflowError:
        raise ConfigError(_report(source, schema_errors(config))) from None
    problems = sweep_errors(config)
    if problems:
        raise ConfigError(_report(source, problems))
    return config


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
            for m in _value_errors(config, path, v)
        ]
    problems += [
        f"members: {path} is not a swept axis; sweep it or drop it from members"
        for path in config.get("members", [])
        if path not in config.get("sweep", {})
    ]
    return problems


def _value_errors(config: dict, path: str, value: Any) -> list[str]:
    """Why `value` is not allowed at `path` (empty if it is)."""
    from jsonschema import Draft202012Validator

    trial = copy.deepcopy(config)
    trial.pop("sweep", None)
    set_path(trial, path, value)
    validator = Draft202012Validator(load_schema())
    return [e.message for e in validator.iter_errors(trial)]


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
    return f"{key}: {error.message}"


def _did_you_mean(word: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1)
    return f"'{word}' (did you mean '{close[0]}'?)" if close else f"'{word}'"


def _report(source: str, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"invalid study config ({source}), nothing was run:\n{lines}"
