"""Registries that the user's own packages extend, through entry points.

A package registers models and problems (operators) by naming them in its metadata, in
the entry-point groups ``opscale.models`` and ``opscale.problems`` (``GROUPS``); in its
``pyproject.toml``::

    [project.entry-points."opscale.models"]
    small_net = "mypkg.nets:small_net"        # a model builder (opscale.models.module)

    [project.entry-points."opscale.problems"]
    heat = "mypkg.opscale_problems:HEAT"      # a Problem record (opscale.problems.registry)

The entry point's name is the value of ``model.name`` / ``problem.name`` in a study.
A ``Registry`` is a dict of the built-in entries that adds its group's entry points the
first time it is read (importing the modules they name, once); the config schema's enums
take the names alone (``names``), without importing anything, so validating a study at
Snakemake's parse time stays cheap. An entry point that fails to load, names the wrong
kind of object or reuses a registered name raises ``PluginError`` naming it.

Imports nothing heavy (``importlib.metadata`` only): Snakemake imports it at parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

# registry -> its entry-point group
GROUPS = {"models": "opscale.models", "problems": "opscale.problems"}


class PluginError(RuntimeError):
    """An entry point that cannot be registered; the message names it and its package."""


def _describe(point: EntryPoint) -> str:
    dist = getattr(point.dist, "name", None) or "an unknown distribution"
    return f"entry point {point.name!r} = {point.value!r} (group {point.group!r}, from {dist})"


def discovered(group: str) -> list[EntryPoint]:
    """The installed entry points of `group`, sorted by name (not loaded)."""
    return sorted(entry_points(group=group), key=lambda point: point.name)


def names(group: str) -> list[str]:
    """The names registered in `group` by installed packages (nothing is imported)."""
    return [point.name for point in discovered(group)]


class Registry(dict):
    """A dict of built-in entries plus the entry points of `group`, added when first read.

    Parameters
    ----------
    group : str
        The entry-point group (``GROUPS``).
    builtins : dict
        The package's own entries, name -> value.
    check : callable
        ``(value) -> str | None``: why a loaded value cannot be an entry (None: it can).
    """

    def __init__(self, group: str, builtins: dict, check: Callable[[object], str | None]):
        super().__init__(builtins)
        self.group, self.check = group, check
        self.builtin_names = tuple(builtins)
        self.loaded = False

    def load(self) -> Registry:
        """Add every entry point of the group (once); raises ``PluginError`` naming a bad one.

        All or nothing: after a failure nothing is added, and the next read tries again
        (and fails again, naming the entry point), rather than going on without it.
        """
        if self.loaded:
            return self
        found = {}
        for point in discovered(self.group):
            if point.name in found or dict.__contains__(self, point.name):
                raise PluginError(f"{_describe(point)}: the name {point.name!r} is taken")
            found[point.name] = self._value(point)
        dict.update(self, found)
        self.loaded = True
        return self

    def _value(self, point: EntryPoint):
        try:
            value = point.load()
        except Exception as error:  # any import-time error of the user's module
            raise PluginError(
                f"{_describe(point)} failed to load: {type(error).__name__}: {error}"
            ) from error
        reason = self.check(value)
        if reason:
            raise PluginError(f"{_describe(point)}: {reason}")
        return value

    def reload(self) -> Registry:
        """Forget the entry points; the next read reads them again (after an install)."""
        for name in [n for n in dict.keys(self) if n not in self.builtin_names]:
            super().__delitem__(name)
        self.loaded = False
        return self

    # every read goes through load() (a flag check, once loaded)
    def __getitem__(self, name):
        return super(Registry, self.load()).__getitem__(name)

    def __contains__(self, name) -> bool:
        return super(Registry, self.load()).__contains__(name)

    def __iter__(self):
        return super(Registry, self.load()).__iter__()

    def __len__(self) -> int:
        return super(Registry, self.load()).__len__()

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def keys(self):
        return super(Registry, self.load()).keys()

    def values(self):
        return super(Registry, self.load()).values()

    def items(self):
        return super(Registry, self.load()).items()
