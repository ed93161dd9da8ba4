"""A two-layer tanh teacher network on Gaussian inputs (``tanh_teacher``).

Local linear recovery (Zhang et al. 2024, arXiv 2406.18035): a target that a narrow
network expresses can be recovered by a wider one from about as many samples as the
tangent-space rank at the target, not the wide network's parameter count. The teacher
has k = ``problem.neurons`` neurons without bias on inputs x ~ N(0, I_d),
d = ``problem.dim``::

    f*(x) = sum_j a_j tanh(w_j . x),   w_j ~ N(0, I_d / d) * teacher_scale,  a_j ~ N(0, 1)

Seeds: repetition s draws its teacher from ``numpy_rng(s, "teacher")`` (``weights``, so
measures regenerate it from the spec alone) and its splits' x from
``numpy_rng(s, "inputs", split)``. In the data file the d coordinates of x are the
"sensors" and f*(x) is one "query" at y = 0 (aligned), like ``subspace_regression``; the
teacher's weights are stored too, as ``teacher_w(seed, neuron, coordinate)`` and
``teacher_a(seed, neuron)``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from opscale.problems.layout import SPLITS, dataset
from opscale.rng import numpy_rng


def weights(seed: int, neurons: int, dim: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The teacher of repetition `seed`: input weights w (k, d) and output weights a (k,)."""
    rng = numpy_rng(seed, "teacher")
    w = rng.standard_normal((neurons, dim)) * scale / np.sqrt(dim)
    return w, rng.standard_normal(neurons)


def teacher_of(problem: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The teacher weights (w (k, d), a (k,)) of a resolved ``problem`` section."""
    return weights(seed, problem["neurons"], problem["dim"], problem["teacher_scale"])


def forward(x: np.ndarray, w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Two-layer tanh network without bias: x (n, d) -> sum_j a_j tanh(w_j . x), (n,)."""
    return np.tanh(x @ w.T) @ a


def build(spec: dict) -> xr.Dataset:
    """The teacher's data file: u = x (seed, sample, d), s = f*(x) (seed, sample, 1)."""
    problem, sizes = spec["problem"], spec["data"]
    teachers = [teacher_of(problem, seed) for seed in spec["seeds"]]
    x = np.stack([_inputs(seed, sizes, problem["dim"]) for seed in spec["seeds"]])
    s = np.stack([forward(xs, w, a)[:, None] for xs, (w, a) in zip(x, teachers, strict=True)])
    split = np.concatenate([[name] * sizes[f"n_{name}"] for name in SPLITS])
    ds = dataset(
        x,
        s,
        np.arange(problem["dim"], dtype=float),
        np.zeros((1, 1)),
        split,
        spec["seeds"],
        sensor_name="coordinate of the input x in R^d",
    )
    return _with_teacher(ds, *(np.stack(column) for column in zip(*teachers, strict=True)))


def _inputs(seed: int, sizes: dict, dim: int) -> np.ndarray:
    """x ~ N(0, I_d) of every split of one seed, in split order, (n_train + n_val + n_test, d)."""
    return np.concatenate(
        [
            numpy_rng(seed, "inputs", split).standard_normal((sizes[f"n_{split}"], dim))
            for split in SPLITS
        ]
    )


def _with_teacher(ds: xr.Dataset, w: np.ndarray, a: np.ndarray) -> xr.Dataset:
    """Add the teacher's weights w (seed, neuron, coordinate) and a (seed, neuron)."""
    ds["teacher_w"] = (
        ("seed", "neuron", "sensor"),
        w,
        {"long_name": "teacher input weights w_j", "units": "1"},
    )
    ds["teacher_a"] = (
        ("seed", "neuron"),
        a,
        {"long_name": "teacher output weights a_j", "units": "1"},
    )
    ds = ds.assign_coords(
        neuron=("neuron", np.arange(len(a[0])), {"long_name": "teacher neuron", "units": "1"})
    )
    return ds
