"""The problem registry: one record per ``problem.name`` says what that problem is.

A record (``Problem``) names the builder of the problem's data file, its intrinsic input
dimension, its output dimension and the files its data are read from; ``PROBLEMS`` holds
one per name of the schema's ``problem.name`` enum (``tests/test_problems.py`` checks
that they agree). To add a problem to the package, add its record here and its keys to
the schema. A user's package adds an operator without editing this one: its solver
``(u, x, problem) -> s`` and a record ``operator("mypkg.solvers:heat", d2=1)``, named by
an entry point of the group ``opscale.problems`` (``opscale.plugins``), which
``PROBLEMS`` reads the first time it is read; the schema's ``problem.name`` enum takes the
entry points' names. Such an operator takes the operators' settings (inputs, sensors,
queries, query_points, ...).

This module imports nothing heavy (no numpy, scipy or xarray): Snakemake imports it at
parse time for the files a data job reads (``problem_files``). Builders and solvers are
therefore named as ``"module:function"`` and imported when called (``load``).

Every function here takes a *resolved* ``problem`` section (the study config validated
once, with the schema's defaults filled in; cubes and data files store that config).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from opscale.plugins import GROUPS, Registry


def load(ref: str) -> Callable:
    """The function a ``"module:function"`` reference names (importing its module)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _lazy(ref: str) -> Callable:
    """A function that calls `ref` (see ``load``), importing its module on first call."""

    def call(*args):
        return load(ref)(*args)

    call.__doc__ = f"Calls ``{ref}`` (imported when called)."
    return call


def _no_files(problem: dict) -> list[str]:
    return []  # generated problems read no files


def _dataset_files(problem: dict) -> list[str]:
    return [str(path) for path in load("opscale.problems.datasets:files")(problem).values()]


@dataclass(frozen=True)
class Problem:
    """What one problem is.

    Attributes
    ----------
    build : str
        ``"module:function"`` of its data builder, ``(spec) -> xarray.Dataset`` with
        every split of every seed (see ``opscale.problems``).
    intrinsic_dim : callable
        ``(problem) -> int | None``: the intrinsic dimension of its inputs (b of a finite
        series, d of a regression domain); None when infinite or unknown.
    output_dim : callable
        ``(problem) -> int``: the dimension d2 of its output domain (of the query points
        y); 0 for a scalar output.
    files : callable
        ``(problem) -> list[str]``: the files its data are read from (none if generated).
    solve : str or None
        ``"module:function"`` of an operator's solver, ``(u, x, problem) -> s`` (see
        ``opscale.problems.operators``); None for problems that are not operators.
    inputs_known : bool
        Whether the inputs' dimension is known (False for data read from files: None
        from ``intrinsic_dim`` then means unknown, not infinite, and no bound applies).
    """

    build: str
    intrinsic_dim: Callable[[dict], int | None]
    output_dim: Callable[[dict], int]
    files: Callable[[dict], list[str]] = _no_files
    solve: str | None = None
    inputs_known: bool = True


# Intrinsic dimension of each input family's functions (``inputs.FAMILIES``): a finite
# series spans exactly its `modes` = b dimensions; a GRF infinitely many (None).
FAMILY_DIMS = {
    "grf": lambda inputs: None,
    **{name: (lambda inputs: inputs["modes"]) for name in ("sine", "legendre", "chebyshev")},
}


def _family_dim(problem: dict) -> int | None:
    return FAMILY_DIMS[problem["inputs"]["family"]](problem["inputs"])


def _constant(value: int) -> Callable[[dict], int]:
    return lambda problem: value


def operator(solver: str, d2: int) -> Problem:
    """An operator: inputs from an input family, solved by `solver`.

    Parameters
    ----------
    solver : str
        ``"module:function"`` of its solver ``(u, x, problem) -> s`` (see
        ``opscale.problems.operators``), imported when data are built.
    d2 : int
        Dimension of its output domain (1: outputs on [0, 1]; 2: on (x, t)).
    """
    return Problem(
        build="opscale.problems.operator_data:build",
        intrinsic_dim=_family_dim,
        output_dim=_constant(d2),
        solve=solver,
    )


def _operator(solver: str, d2: int) -> Problem:
    """One of the package's operators, solved by ``operators.<solver>``."""
    return operator(f"opscale.problems.operators:{solver}", d2)


def _scalar_task(module: str) -> Problem:
    """A regression task on a ``dim``-dimensional domain; its output is a number (d2 = 0)."""
    return Problem(f"opscale.problems.{module}:build", lambda p: p["dim"], _constant(0))


BUILTIN = {
    "antiderivative": _operator("antiderivative", d2=1),
    "abs_antiderivative": _operator("abs_antiderivative", d2=1),
    "nonlinear_ode": _operator("nonlinear_ode", d2=1),
    "pendulum": _operator("pendulum", d2=1),
    "diffusion_reaction": _operator("diffusion_reaction", d2=2),  # output on (x, t)
    "advection": _operator("advection", d2=2),  # output on (x, t)
    "darcy": _operator("darcy", d2=1),
    "cubic_elliptic": _operator("cubic_elliptic", d2=1),
    "dataset": Problem(
        build="opscale.problems.datasets:build",
        intrinsic_dim=lambda problem: None,  # not known from the files
        output_dim=_lazy("opscale.problems.datasets:output_dim"),  # reads the train file
        files=_dataset_files,
        inputs_known=False,
    ),
    "subspace_regression": _scalar_task("regression"),
    "tanh_teacher": _scalar_task("teacher"),
}


def _check(value) -> str | None:
    if not isinstance(value, Problem):
        return (
            f"names a {type(value).__name__}, not a Problem record "
            "(write opscale.problems.registry.operator('module:solver', d2=...))"
        )
    return None


# Every problem: the package's own, then those of entry points (added when first read).
PROBLEMS = Registry(GROUPS["problems"], BUILTIN, _check)
# Names of the package's own problems that are operators (those with a solver).
OPERATORS = tuple(name for name, problem in BUILTIN.items() if problem.solve)


def generate(spec: dict):
    """Build the data of a data spec (every split of every seed).

    Parameters
    ----------
    spec : dict
        ``{"problem": ..., "data": ..., "seeds": [...]}`` as resolved by ``opscale.grid``.

    Returns
    -------
    xarray.Dataset
        ``u(seed, sample, sensor)``, ``s(seed, sample, query)``, the sensor positions
        ``x_sensor(sensor)``, the query points ``y`` and ``split(sample)``; with
        ``problem.noise`` the training and validation labels carry label noise
        (``opscale.problems.noise``).
    """
    clean = load(PROBLEMS[spec["problem"]["name"]].build)(spec)
    return load("opscale.problems.noise:add_label_noise")(clean, spec["problem"])


def intrinsic_dim(problem: dict) -> int | None:
    """Intrinsic dimension of a resolved problem's inputs.

    b (``inputs.modes``) for a finite series; d (``dim``) for the deep ReLU subspace task
    and the tanh teacher; None for a Gaussian random field (infinitely many directions)
    and for datasets (not known from the file).
    """
    return PROBLEMS[problem["name"]].intrinsic_dim(problem)


def inputs_known(problem: dict) -> bool:
    """Whether a problem's input dimension is known (see ``Problem.inputs_known``)."""
    return PROBLEMS[problem["name"]].inputs_known


def output_dim(problem: dict) -> int:
    """Dimension d2 of a resolved problem's output domain (of the query points y).

    1 for outputs on [0, 1], 2 for space-time outputs, the number of grid dimensions of a
    dataset's output variable, and 0 for the regression tasks (their output is a number,
    not a function: with d2 = 0 the operator rates reduce to the deep ReLU rates).
    """
    return PROBLEMS[problem["name"]].output_dim(problem)


def problem_files(problem: dict) -> list[str]:
    """The files a resolved problem's data are read from (editing one rebuilds the data).

    Absolute paths of a dataset's train and test files; an empty list for the problems
    whose data are generated.
    """
    return PROBLEMS[problem["name"]].files(problem)
