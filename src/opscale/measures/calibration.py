"""Calibration against least squares: the excess risk of each member and of least squares.

For a linear operator of inputs spanned by b functions with Gaussian coefficients, and
labels with Gaussian noise of sd sigma, least squares has a known expected squared excess
risk (``opscale.analyses.calibration.least_squares_risk``). With ``problem.noise`` =
sigma / RMS(clean test outputs) the relative excess risk, test MSE over the mean square of
the (clean) test outputs, is noise^2 times a function of b and n. Per member this measure
stores

- ``test_rel_mse``: the member's relative excess risk (test labels are clean);
- ``ls_test_rel_mse``: the same for least squares *with an intercept* (the networks'
  output biases make them affine estimators, so affine least squares is their reference)
  fitted to the member's own noisy training functions (sensor values and a constant ->
  outputs, minimum-norm ``lstsq`` in float64, singular values below 10 x the training
  dtype's epsilon dropped: the sensor values span the inputs' b dimensions, up to
  rounding), the empirical reference of its draw.

``opscale.analyses.calibration`` compares both with the closed form. Aligned data only.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from opscale import cube
from opscale.schema import MEMBER, Variable

VARIABLES = {
    "test_rel_mse": Variable(
        MEMBER, "test MSE over the mean square of the clean test outputs (excess risk)", "1"
    ),
    "ls_test_rel_mse": Variable(
        MEMBER, "the same for least squares on the member's training functions", "1"
    ),
}


class Calibration:
    """The ``calibration`` measure (see the module docstring)."""

    def __init__(self, options: dict, spec: dict, members):
        if spec["problem"].get("query_points", "grid") != "grid":
            raise ValueError("measure calibration: needs aligned data (problem.query_points grid)")
        self.members = members

    def start(self, model, data: dict) -> None:
        """Nothing to measure at initialisation."""

    @torch.no_grad()
    def finish(self, model, data: dict) -> xr.Dataset:
        test = data["test"]
        error = (model(test.u, test.y) - test.s).square().mean(dim=(-2, -1))
        trained = (error / test.s.square().mean(dim=(-2, -1))).cpu().numpy()
        ls = [self.least_squares(data, i) for i in range(len(trained))]
        values = {"test_rel_mse": trained, "ls_test_rel_mse": np.array(ls)}
        return cube.dataset(values, VARIABLES)

    def least_squares(self, data: dict, i: int) -> float:
        """Relative test MSE of least squares fitted to member i's training functions."""
        n, dtype = int(self.members.n_train[i]), data["train"].u.dtype
        x, y = _affine(data["train"].u[i, :n]), data["train"].s[i, :n].double().cpu()
        # directions below the training dtype's rounding are not directions of the inputs:
        # kept, they let least squares fit the noise along (sensors - b) more directions
        rcond = 10 * torch.finfo(dtype).eps
        weights = torch.linalg.lstsq(x, y, rcond=rcond, driver="gelsd").solution
        x_test, y_test = _affine(data["test"].u[i]), data["test"].s[i].double().cpu()
        return float((x_test @ weights - y_test).square().mean() / y_test.square().mean())


def _affine(u: torch.Tensor) -> torch.Tensor:
    """Sensor values (rows) with a constant column appended: the design of affine LS."""
    u = u.double().cpu()
    return torch.cat([u, torch.ones(len(u), 1, dtype=u.dtype)], dim=1)
