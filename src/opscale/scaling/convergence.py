"""Convergence diagnostics of a group: were its models still improving when training ended?

A model whose best validation step lies in the last 5% of the steps it ran, and whose best
validation error fell by at least 2% (``LEVELLED``) over the last quarter of its steps, was
still improving when its budget ended: its error measures the training budget as much as the
data. When more than half of a group's models are so, the group is *budget-limited*: its
data-axis exponent is not a data exponent, and its verdict says so instead of comparing
it with a theory. The median ratio of test to training error says how much of the error
is generalisation (near 1: the models did not fit their training data better than new
data, as under-training does). How much they were still improving is measured too
(``late_gain``): the relative fall of each model's best validation error over the last
quarter of the steps it ran, (best up to 75% - best) / best, from its validation curve;
the median over the models still improving is printed beside their count, so
"budget-limited" says by how much. Without the 2% floor every model of a cosine (annealed)
schedule would count, since its best step is its last even once it has levelled off.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

AT_BUDGET = 0.95  # best step at or past this share of the steps run: still improving
LIMITED_SHARE = 0.5  # more of a group's models than this at their budget: budget-limited
LATE = 0.75  # the last quarter of the steps run: its fall in validation error is late_gain
# a model at its budget's end whose best validation error fell by less than this over its
# last quarter has levelled off (an annealed schedule ends on its best step): not counted
LEVELLED = 0.02


def late_gain(cube: xr.Dataset) -> xr.DataArray | None:
    """Per model, the relative fall of its best validation error over its last quarter.

    0 for a model whose best state came before 75% of the steps it ran; None when the cube
    has no validation curves.
    """
    if not {"val_curve", "steps_trained"} <= set(cube.data_vars):
        return None
    curve = cube["val_curve"]
    steps = curve[curve.dims[-1]]  # the optimisation step of each check
    best = curve.min(curve.dims[-1])
    early = curve.where(steps <= LATE * cube["steps_trained"]).min(curve.dims[-1])
    return ((early - best) / best).where(np.isfinite(best)).rename("late_gain")


def diagnostics(frame: pd.DataFrame) -> dict:
    """Share of models at their budget's end and the median test/train error ratio."""
    unknown = {"at_budget_share": math.nan, "models_at_budget": "", "test_train_ratio": math.nan}
    if not {"best_step", "steps_trained"} <= set(frame):  # a table of runs: not known
        return {**unknown, "late_gain": math.nan}
    at_budget = frame["best_step"] >= AT_BUDGET * frame["steps_trained"]
    if "late_gain" in frame:  # known from the curves: levelled-off models are not improving
        at_budget &= ~(frame["late_gain"] < LEVELLED)
    train = frame.get("train_rel_l2", math.nan)
    gain = frame.loc[at_budget, "late_gain"].median() if "late_gain" in frame else math.nan
    return {
        "at_budget_share": float(at_budget.mean()),
        "models_at_budget": f"{int(at_budget.sum())}/{len(frame)}",
        "test_train_ratio": float((frame["err"] / train).median()),
        "late_gain": float(gain),
    }


def still_improving(diagnosis: dict) -> str:
    """The count of models at their budget's end, with their median late gain if known."""
    gain = diagnosis.get("late_gain", math.nan)
    by = (
        "" if math.isnan(gain) else f" (validation error -{gain:.0%} over the last quarter, median)"
    )
    return f"{diagnosis['models_at_budget']} models still improving at the end{by}"


def budget_limited(diagnosis: dict) -> bool:
    """Whether more than half of the group's models were still improving at the end."""
    return diagnosis["at_budget_share"] > LIMITED_SHARE
