"""Convergence diagnostics of a group: were its models still improving when training ended?

A model whose best validation step lies in the last 5% of the steps it ran was still
improving when its budget ended: its error measures the training budget as much as the
data. When more than half of a group's models are so, the group is *budget-limited*: its
data-axis exponent is not a data exponent, and its verdict says so instead of comparing
it with a theory. The median ratio of test to training error says how much of the error
is generalisation (near 1: the models did not fit their training data better than new
data, as under-training does).
"""

from __future__ import annotations

import math

import pandas as pd

AT_BUDGET = 0.95  # best step at or past this share of the steps run: still improving
LIMITED_SHARE = 0.5  # more of a group's models than this at their budget: budget-limited


def diagnostics(frame: pd.DataFrame) -> dict:
    """Share of models at their budget's end and the median test/train error ratio."""
    if not {"best_step", "steps_trained"} <= set(frame):  # a table of runs: not known
        return {"at_budget_share": math.nan, "models_at_budget": "", "test_train_ratio": math.nan}
    at_budget = frame["best_step"] >= AT_BUDGET * frame["steps_trained"]
    train = frame.get("train_rel_l2", math.nan)
    return {
        "at_budget_share": float(at_budget.mean()),
        "models_at_budget": f"{int(at_budget.sum())}/{len(frame)}",
        "test_train_ratio": float((frame["err"] / train).median()),
    }


def budget_limited(diagnosis: dict) -> bool:
    """Whether more than half of the group's models were still improving at the end."""
    return diagnosis["at_budget_share"] > LIMITED_SHARE
