"""From a study config to grid points with stable, content-addressed ids.

A *point* is one Snakemake training job: one value of every swept axis, trained as a
group whose members are the study's seeds. Axes listed under ``members``
(``data.n_train``, ``train.lr``, ``train.weight_decay``) are not split into jobs: each of
their values becomes more members of the same job (its spec holds the list), so one job
trains a whole column of the grid.
Its id is readable and content-addressed::

    width40-n_train1000-3f2a9c1b0e

a label of its swept values plus a hash of its fully resolved parameters (problem, data,
model, train, measure, seeds). Changing any fixed parameter changes every id, so a stale result is
never reused; adding a value to an axis only adds new ids. Names stay short enough for any
file system: a label part longer than ``LABEL_PART_CHARS`` (a long path or string value)
becomes its axis name and a hash of its value (``path_5d1e0c2a9b``), and the whole label is
cut at ``LABEL_CHARS`` (the spec hash keeps ids distinct). Keys under ``runtime`` say how
to run, not what to compute, and are left out of the hash.

Data files are addressed the same way by the parameters that decide the data (problem,
data sizes, seeds), so points that differ only in the model share one data file.
Imports nothing heavy: Snakemake calls this at parse time.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field

from opscale.config import axis_name, set_path

HASH_CHARS = 10
LABEL_PART_CHARS = 40  # a longer part of the label (axis name + value) is hashed
LABEL_CHARS = 100  # ids stay far below the usual 255-byte file-name limit
# Sections of the config that decide what a model computes (the content of a point).
SPEC_SECTIONS = ("problem", "data", "model", "train", "measure", "seeds")


@dataclass(frozen=True)
class Axis:
    """One swept setting: its dotted path, its cube dimension name and its values."""

    path: str
    name: str
    values: tuple


@dataclass(frozen=True)
class Point:
    """One training job: its id, its value on each axis (by dotted path), spec, data file."""

    id: str
    coords: dict = field(hash=False)
    spec: dict = field(hash=False)
    data_id: str


def axes(config: dict) -> list[Axis]:
    """The swept axes of a study, in the order they are declared."""
    return [Axis(p, axis_name(p), tuple(v)) for p, v in config.get("sweep", {}).items()]


def job_axes(config: dict) -> list[Axis]:
    """The swept axes that split the study into jobs (all but the member axes)."""
    return [a for a in axes(config) if a.path not in config.get("members", [])]


def points(config: dict) -> list[Point]:
    """Every training job of a study (the Cartesian product of its job axes)."""
    study_axes = job_axes(config)
    grid = itertools.product(*(a.values for a in study_axes))
    return [_point(config, study_axes, values) for values in grid]


def _point(config: dict, study_axes: list[Axis], values: tuple) -> Point:
    spec = {key: copy.deepcopy(config[key]) for key in SPEC_SECTIONS}
    for axis in axes(config):
        if axis not in study_axes:  # a member axis: the job trains every value
            set_path(spec, axis.path, list(axis.values))
    for axis, value in zip(study_axes, values, strict=True):
        set_path(spec, axis.path, value)
    spec = hashed(spec)  # as the id hashes it, and as the rules' params see it
    coords = {a.path: v for a, v in zip(study_axes, values, strict=True)}
    label = "-".join(_label_part(axis_name(p), v) for p, v in coords.items()) or "point"
    return Point(f"{label[:LABEL_CHARS]}-{digest(spec)}", coords, spec, data_id(spec))


def _label_part(name: str, value) -> str:
    """``width40``; a part longer than ``LABEL_PART_CHARS`` is ``name_<hash of value>``."""
    part = _safe(f"{name}{value}")
    return part if len(part) <= LABEL_PART_CHARS else f"{_safe(name)}_{digest(value)}"


def data_spec(spec: dict) -> dict:
    """What decides a point's data: problem, data sizes, seeds.

    A job whose members train on several n_train reads the data of the largest: the
    smaller training sets are its prefixes.
    """
    n_train = spec["data"]["n_train"]
    data = {**spec["data"], "n_train": max(n_train) if isinstance(n_train, list) else n_train}
    return {"problem": spec["problem"], "data": data, "seeds": spec["seeds"]}


def data_id(spec: dict) -> str:
    """Id of the data file a point reads: problem name plus a hash of what decides the data."""
    return f"{spec['problem']['name']}-{digest(hashed(data_spec(spec)))}"


def data_specs(config: dict) -> dict[str, dict]:
    """The distinct data files a study needs, by id."""
    return {p.data_id: data_spec(p.spec) for p in points(config)}


# Settings added after results existed: a point's spec holds them only when they are set
# away from their default (readers take the default when absent), so that adding them
# left every earlier point id, data id and the rules' params (Snakemake's rerun trigger)
# as they were.
HASHED_WHEN_SET = {("problem", "noise"): 0.0, ("problem", "on_blowup"): "fail"}


def hashed(spec: dict) -> dict:
    """`spec` without the settings of ``HASHED_WHEN_SET`` that hold their default."""
    spec = copy.deepcopy(spec)
    for (section, key), default in HASHED_WHEN_SET.items():
        if spec.get(section, {}).get(key, default) == default:
            spec.get(section, {}).pop(key, None)
    return spec


def digest(obj) -> str:
    """Short stable hash of a JSON-serialisable object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)
