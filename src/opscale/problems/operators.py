"""Operators s = G(u), solved on the fine grid: ``solve(u, x) -> s``, shapes (n, R)."""

from __future__ import annotations

import numpy as np
from scipy.integrate import cumulative_trapezoid


def antiderivative(u: np.ndarray, x: np.ndarray, spec: dict) -> np.ndarray:
    """s(x) = integral of u from 0 to x (trapezoid rule on the fine grid, O(h^2))."""
    return cumulative_trapezoid(u, x, axis=-1, initial=0.0)


OPERATORS = {"antiderivative": antiderivative}
