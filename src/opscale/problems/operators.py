"""Operators s = G(u) and their solvers, on a grid x of [0, 1].

Contract: ``solve(u, x, problem) -> s`` with u of shape (n, R) on the grid x (R,) and s of
shape (n, R) for an output on [0, 1] (d2 = 1) or (n, R, R) indexed ``[function, x, t]``
for an output on the space-time square [0, 1] x [0, 1] (d2 = 2; the time grid equals the
space grid). Which operators exist, and the d2 of each, is said by their records in
``opscale.problems.registry`` (``PROBLEMS``), which name these solvers. Each solver's
accuracy is checked in ``tests/test_problems.py`` against a closed form or by its
convergence order under refinement (orders stated in each docstring are the measured
ones).

Constants of the equations follow the DeepONet papers (Lu et al. 2021, Nat. Mach. Intell.
3, 218-229; Lu et al. 2022, CMAME 393, 114778) and are fixed, documented below.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.interpolate import make_interp_spline
from scipy.linalg import solve_banded

PENDULUM_GRAVITY = 1.0  # k in theta'' = -k sin(theta) + u  (Lu et al. 2021)
DIFFUSIVITY = 0.01  # D in s_t = D s_xx + k s^2 + u  (Lu et al. 2021)
REACTION_RATE = 0.01  # k in the same equation


def antiderivative(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """s(x) = integral of u from 0 to x (trapezoid rule, second order)."""
    return cumulative_trapezoid(u, x, axis=-1, initial=0.0)


def abs_antiderivative(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """s(x) = integral of |u| from 0 to x: Lipschitz but nonlinear and non-smooth in u.

    Trapezoid rule on |u|; second order (the kinks of |u| cost O(h^2) each).
    """
    return cumulative_trapezoid(np.abs(u), x, axis=-1, initial=0.0)


def _rk4(rhs, state: np.ndarray, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Classical Runge-Kutta on the grid x for ``state' = rhs(state, u(x))``.

    state (n, k) at x[0]; u (n, R) at the grid, evaluated between nodes by a cubic spline
    (fourth order, like RK4 itself). Returns the states at every node, (n, R, k).
    """
    h = np.diff(x)
    u_mid = make_interp_spline(x, u.T, k=3)(x[:-1] + h / 2).T  # (n, R-1)
    states = [state]
    for i, step in enumerate(h):
        u0, um, u1 = u[:, i, None], u_mid[:, i, None], u[:, i + 1, None]
        k1 = rhs(state, u0)
        k2 = rhs(state + step / 2 * k1, um)
        k3 = rhs(state + step / 2 * k2, um)
        k4 = rhs(state + step * k3, u1)
        state = state + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        states.append(state)
    return np.stack(states, axis=1)


def nonlinear_ode(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """Nonlinear ODE s' = -s^2 + u, s(0) = 0 (RK4, fourth order)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a blow-up is reported by the caller
        return _rk4(lambda s, f: -(s**2) + f, np.zeros((len(u), 1)), x, u)[..., 0]


def _pendulum_rhs(state: np.ndarray, force: np.ndarray) -> np.ndarray:
    theta, omega = state[:, :1], state[:, 1:]
    return np.concatenate([omega, -PENDULUM_GRAVITY * np.sin(theta) + force], axis=1)


def pendulum(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """Gravity pendulum driven by u: theta'' = -k sin(theta) + u, theta(0) = theta'(0) = 0.

    s = theta, with k = ``PENDULUM_GRAVITY``; RK4 on the first-order system, fourth order.
    """
    return _rk4(_pendulum_rhs, np.zeros((len(u), 2)), x, u)[..., 0]


def _implicit_bands(m: int, h: float, diagonal: float, coefficient: float) -> np.ndarray:
    """Bands of ``diagonal * I - coefficient * d2/dx2`` on m interior nodes, (3, m).

    Zero Dirichlet boundaries; the layout of ``scipy.linalg.solve_banded((1, 1), ...)``.
    """
    off_diagonal = np.full(m, -coefficient / h**2)
    return np.stack([off_diagonal, np.full(m, diagonal + 2 * coefficient / h**2), off_diagonal])


def diffusion_reaction(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """s_t = D s_xx + k s^2 + u(x) on [0,1] x [0,1], s = 0 at t = 0 and at x = 0, 1.

    Finite differences on the grid x in space and in time (dt = dx): the second-order
    IMEX backward-differentiation scheme (SBDF2: diffusion implicit, reaction
    extrapolated), started by one IMEX Euler step. SBDF2 is L-stable, so the corner
    singularity where u(0) != 0 meets s(0, t) = 0 does not ring as under Crank-Nicolson.
    Measured second order in dx = dt. D = ``DIFFUSIVITY``, k = ``REACTION_RATE``.
    Returns s[function, x, t], shape (n, R, R).
    """
    h = x[1] - x[0]
    source = u[:, 1:-1].T  # (m, n): one column per function
    m = source.shape[0]
    field = np.zeros((len(x), len(x), len(u)))  # [x, t, function]
    previous = np.zeros_like(source)
    current = solve_banded((1, 1), _implicit_bands(m, h, 1.0, h * DIFFUSIVITY), h * source)
    field[1:-1, 1] = current
    bdf2 = _implicit_bands(m, h, 1.5, h * DIFFUSIVITY)
    for step in range(2, len(x)):
        reaction = REACTION_RATE * (2 * current**2 - previous**2)
        rhs = 2 * current - 0.5 * previous + h * (reaction + source)
        previous, current = current, solve_banded((1, 1), bdf2, rhs)
        field[1:-1, step] = current
    return np.moveaxis(field, -1, 0)


def advection(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """s_t + v(x) s_x = 0 with velocity v = u - min(u) + 1 > 0, on [0,1] x [0,1].

    s(x, 0) = sin(pi x), s(0, t) = sin(pi t / 2) (Lu et al. 2022). Solved along the
    characteristics: with the travel time tau(x) = integral_0^x 1/v (trapezoid), the point
    (x, t) comes from the inflow boundary at time t - tau(x) if t >= tau(x), else from the
    initial line at xi = tau^-1(tau(x) - t). Second order. Returns s[function, x, t].
    """
    velocity = u - u.min(axis=1, keepdims=True) + 1.0
    tau = cumulative_trapezoid(1.0 / velocity, x, axis=1, initial=0.0)  # (n, R)
    back = tau[:, :, None] - x[None, None, :]  # (n, x, t): tau at the characteristic's foot
    origin = np.stack([np.interp(b, t, x) for b, t in zip(back, tau, strict=True)])
    return np.where(back >= 0, np.sin(np.pi * origin), np.sin(-np.pi * back / 2))


def darcy(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """1D Darcy flow -(a s')' = 1 with permeability a = exp(u), s(0) = s(1) = 0.

    Integrated exactly: a s' = C - x, so s(x) = integral_0^x (C - t) / a(t) dt with C
    chosen so that s(1) = 0; the integrals by the trapezoid rule, second order.
    """
    inverse = np.exp(-u)
    flux_free = cumulative_trapezoid(inverse, x, axis=1, initial=0.0)
    weighted = cumulative_trapezoid(x * inverse, x, axis=1, initial=0.0)
    constant = weighted[:, -1:] / flux_free[:, -1:]
    return constant * flux_free - weighted


NEWTON_TOLERANCE = 1e-12  # max-norm Newton update at which the cubic elliptic solve stops
NEWTON_STEPS = 50  # most Newton steps of the cubic elliptic solve


def _tridiagonal_solve(lower, diagonal, upper, rhs):
    """Thomas algorithm on many tridiagonal systems at once.

    lower, upper (n, m-1), diagonal and rhs (n, m): one system per row. Stable without
    pivoting for the diagonally dominant Jacobians of ``cubic_elliptic``.
    """
    m = diagonal.shape[1]
    c, d = np.empty_like(upper), np.empty_like(rhs)
    d[:, 0] = rhs[:, 0] / diagonal[:, 0]
    c[:, 0] = upper[:, 0] / diagonal[:, 0]
    for i in range(1, m):
        pivot = diagonal[:, i] - lower[:, i - 1] * c[:, i - 1]
        if i < m - 1:
            c[:, i] = upper[:, i] / pivot
        d[:, i] = (rhs[:, i] - lower[:, i - 1] * d[:, i - 1]) / pivot
    for i in range(m - 2, -1, -1):
        d[:, i] -= c[:, i] * d[:, i + 1]
    return d


def cubic_elliptic(u: np.ndarray, x: np.ndarray, problem: dict) -> np.ndarray:
    """Nonlinear elliptic problem -s'' + s^3 = u on [0, 1], s(0) = s(1) = 0.

    Second-order finite differences on the grid x, solved by Newton's method from s = 0
    (the operator is monotone, so the solution is unique and Newton converges); stops
    when the update is below ``NEWTON_TOLERANCE`` in max norm. Measured second order.
    Its solution is the fixed point of s = (-d2/dx2)^-1 (u - s^3), the structure the
    iterated-operator models (``opscale.models.iterative``) are meant to learn.
    """
    h, interior = x[1] - x[0], u[:, 1:-1]
    s = np.zeros_like(interior)
    off = np.full((len(u), interior.shape[1] - 1), -1.0 / h**2)
    for _ in range(NEWTON_STEPS):
        residual = _second_difference(s, h) + s**3 - interior
        step = _tridiagonal_solve(off, 2.0 / h**2 + 3 * s**2, off, residual)
        s -= step
        if np.abs(step).max() < NEWTON_TOLERANCE:
            return np.pad(s, ((0, 0), (1, 1)))
    raise ValueError(
        f"problem.name = {problem.get('name', 'cubic_elliptic')!r}: Newton did not converge "
        f"in {NEWTON_STEPS} steps; draw smaller inputs (problem.inputs.variance)"
    )


def _second_difference(s: np.ndarray, h: float) -> np.ndarray:
    """-s'' by central differences on the interior nodes, zero Dirichlet boundaries, (n, m)."""
    padded = np.pad(s, ((0, 0), (1, 1)))
    return (2 * padded[:, 1:-1] - padded[:, :-2] - padded[:, 2:]) / h**2
