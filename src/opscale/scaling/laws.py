"""The additive scaling laws ``err = [E +] sum_k A_k g(x_k)^-a_k`` in log space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

TERM_NAMES = {"log_N": ("A", "alpha"), "log_n": ("B", "beta")}
START_EXPONENTS = {  # per shape: (log x / log log x) varies slowly, so its exponents are larger
    "power": (0.1, 0.3, 0.6, 1.0, 1.6),
    "logarithmic": (0.5, 2.0, 5.0, 10.0, 20.0),
}
START_FLOORS = (0.0, 0.5, 0.9)  # times the smallest error
MAX_EXPONENT = 10.0


@dataclass(frozen=True)
class AdditiveLaw:
    """``err = [E +] sum_k A_k g(x_k)^-a_k`` over `terms`, in log space.

    ``shape`` "power": g(x) = x; "logarithmic": g(x) = log x / log log x. Parameters
    ``theta`` = ([E], log A_1, a_1, log A_2, a_2, ...), shape (p,) or (draws, p).
    """

    terms: tuple[str, ...]
    shape: str = "power"
    floor: bool = True

    @property
    def n_params(self) -> int:
        return int(self.floor) + 2 * len(self.terms)

    @property
    def names(self) -> list[str]:
        return ["E"] * self.floor + [n for t in self.terms for n in TERM_NAMES[t]]

    @property
    def formula(self) -> str:
        g = {"power": "{x}", "logarithmic": "(log {x}/log log {x})"}[self.shape]
        parts = [f"{a}·{g.format(x=t[4:])}^-{e}" for t in self.terms for a, e in [TERM_NAMES[t]]]
        return " + ".join(["E"] * self.floor + parts)

    def exponent_index(self, k: int) -> int:
        """Position in theta of the exponent of term k."""
        return int(self.floor) + 2 * k + 1

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """log g(x_k) of every model, shape (models, terms)."""
        logs = frame[list(self.terms)].to_numpy(float)
        return logs if self.shape == "power" else np.log(logs / np.log(logs))

    def split(self, theta: np.ndarray):
        """(E, log A, a) with shapes (...,), (..., terms), (..., terms)."""
        theta = np.asarray(theta, float)
        floor = theta[..., 0] if self.floor else np.zeros(theta.shape[:-1])
        rest = theta[..., int(self.floor) :]
        return floor, rest[..., 0::2], rest[..., 1::2]

    def components(self, theta, X):
        """Floor (..., 1) and term values (..., models, terms) of the law at X."""
        floor, log_amp, expo = self.split(theta)
        terms = np.exp(log_amp[..., None, :] - expo[..., None, :] * X)
        return floor[..., None], terms

    def log_predict(self, theta, X) -> np.ndarray:
        """log err predicted at X (models, terms), shape (..., models)."""
        floor, terms = self.components(theta, X)
        return np.log(floor + terms.sum(-1))

    def local_slopes(self, theta, logs: np.ndarray) -> np.ndarray:
        """-d log err / d log x_k at every model, shape (..., models, terms).

        `logs` are log x_k (models, terms). The local log-log slope of a term is its
        exponent times its share of the error (times d log g / d log x for the
        logarithmic shape): a floor or another term flattens it below the exponent.
        """
        X = logs if self.shape == "power" else np.log(logs / np.log(logs))
        floor, terms = self.components(theta, X)
        share = terms / (floor + terms.sum(-1))[..., None]
        _, _, expo = self.split(theta)
        inner = 1.0 if self.shape == "power" else (1 - 1 / np.log(logs)) / logs
        return expo[..., None, :] * share * inner

    def jacobian(self, theta, X) -> np.ndarray:
        """d log err / d theta, shape (models, p)."""
        floor, terms = self.components(theta, X)
        jac = np.empty((len(X), self.n_params))
        first = int(self.floor)
        jac[:, :first] = 1.0
        jac[:, first::2] = terms
        jac[:, first + 1 :: 2] = -X * terms
        return jac / (floor + terms.sum(-1))[:, None]

    def bounds(self, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the parameters, shape (p,) each.

        E in [0, largest error]; log A in [-50, 50]; a power exponent in [0, MAX_EXPONENT]
        (past it a term is numerically zero over any sampled range), a logarithmic one in
        [0, inf) (it needs no cap: (log x / log log x)^-a decays slowly for any a).
        """
        cap = MAX_EXPONENT if self.shape == "power" else np.inf
        low = [0.0] * self.floor + [-50.0, 0.0] * len(self.terms)
        high = [float(err.max())] * self.floor + [50.0, cap] * len(self.terms)
        return np.array(low), np.array(high)

    def starts(self, X: np.ndarray, err: np.ndarray) -> np.ndarray:
        """Grid of starts: exponents x floors, amplitudes by NNLS; shape (starts, p).

        The NNLS runs on the mean error of every distinct x (grid point), not every model.
        """
        X, where = np.unique(X, axis=0, return_inverse=True)
        err = np.bincount(where.ravel(), err) / np.bincount(where.ravel())
        floors = [f * err.min() for f in START_FLOORS] if self.floor else [0.0]
        grid = np.array(np.meshgrid(*[START_EXPONENTS[self.shape]] * len(self.terms))).reshape(
            len(self.terms), -1
        )
        starts = [self._start(X, err, floor, e) for floor in floors for e in grid.T]
        return np.clip(np.array(starts), *self.bounds(err))

    def _start(self, X, err, floor, exponents) -> list[float]:
        basis = np.exp(-X * exponents)
        amplitudes, _ = optimize.nnls(basis, np.maximum(err - floor, 0.0))
        amplitudes = np.maximum(amplitudes, 1e-6 * float(np.median(err)))
        pairs = np.column_stack([np.log(amplitudes), exponents]).ravel()
        return [floor] * self.floor + list(pairs)
