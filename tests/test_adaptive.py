"""Known answers of the adaptive design engine (opscale.adaptive)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opscale import adaptive
from opscale.scaling.fitting import least_squares
from opscale.scaling.observations import observations
from tests.helpers import synthetic_cube

SETTINGS = {
    "refine": 4,
    "bootstrap": 0,
    "bootstrap_scheme": "auto",
    "confidence": 0.95,
    "huber_delta": None,
    "seed": 0,
}
# the planted law of synthetic_cube with a floor: err = E + 3 N^-alpha + 2 n^-beta
THETA = np.array([0.02, np.log(3.0), 0.5, np.log(2.0), 0.8])


def recorded(**kwargs) -> pd.DataFrame:
    """A planted dense grid as the engine reads it (N, n, seed, flops, err)."""
    obs, _ = observations(synthetic_cube(floor=0.02, **kwargs))
    columns = {"n_params": "N", "train_flops": "flops"}
    return obs.rename(columns=columns)[list(adaptive.COLUMNS) + ["err"]].reset_index(drop=True)


def test_variance_matches_refits_of_simulated_noise():
    """diag(G M^-1 G^T) is the variance of least-squares refits under Gaussian noise."""
    grid, sigma, law = recorded(), 0.02, adaptive.LAW
    X = np.log(grid[["N", "n"]].to_numpy(float))
    rng = np.random.default_rng(1)
    truth = law.log_predict(THETA, X)
    bounds = law.bounds(np.exp(truth) * 10)
    refits = np.array(
        [
            least_squares(law, X, truth + rng.normal(0, sigma, len(X)), THETA, None, bounds).x
            for _ in range(300)
        ]
    )
    for name, k in (("alpha", 2), ("beta", 4)):
        predicted = adaptive.target_variance(law, THETA, grid, sigma, adaptive.Target(name))
        # 300 refits: the sample variance is within ~25% of the truth (sd sqrt(2/299))
        assert refits[:, k].var(ddof=1) == pytest.approx(predicted[0], rel=0.25)


def test_error_target_is_the_delta_method_of_the_prediction():
    """The error target's variance is that of log err predicted at (N, n) (refits)."""
    grid, sigma, law = recorded(), 0.02, adaptive.LAW
    X = np.log(grid[["N", "n"]].to_numpy(float))
    rng = np.random.default_rng(2)
    truth, at = law.log_predict(THETA, X), (1e5, 1000.0)
    bounds = law.bounds(np.exp(truth) * 10)
    far = np.log([at])
    predictions = [
        law.log_predict(
            least_squares(law, X, truth + rng.normal(0, sigma, len(X)), THETA, None, bounds).x,
            far,
        )[0]
        for _ in range(300)
    ]
    predicted = adaptive.target_variance(law, THETA, grid, sigma, adaptive.Target("error", at))
    assert np.var(predictions, ddof=1) == pytest.approx(predicted[0], rel=0.25)


def test_reductions_match_the_recomputed_variance():
    """The Sherman-Morrison fall equals the variance recomputed with the cell added."""
    grid, sigma, law, target = recorded(), 0.05, adaptive.LAW, adaptive.Target("both")
    runs, cells = grid.iloc[::7], grid.iloc[[3, 50, 99]]
    G = target.rows(law, THETA)
    inverse = np.linalg.inv(adaptive.information(law, THETA, runs, sigma))
    fall = adaptive.reductions(
        G, inverse, law.jacobian(THETA, np.log(cells[["N", "n"]].to_numpy(float))), sigma
    )
    before = adaptive.target_variance(law, THETA, runs, sigma, target).sum()
    for i in range(len(cells)):
        after = adaptive.target_variance(
            law, THETA, pd.concat([runs, cells.iloc[[i]]]), sigma, target
        ).sum()
        # equal but for the ridge, which scales with the (new) mean diagonal
        assert fall[i] == pytest.approx(before - after, rel=1e-4)


def test_greedy_prefers_the_cheap_informative_cell():
    """Per FLOP, not per cell: a cheap cell of middling information beats the most
    informative cell (which beats its own dearer copy) and the cheapest, uninformative
    cell; within the budget only what fits is taken; over it, nothing."""
    grid = recorded(rng_seed=3)
    runs = adaptive.initial_design(grid, seed=0)
    fitted = adaptive.fit_runs(runs, SETTINGS)
    rows = fitted.law.jacobian(fitted.theta, np.log(grid[["N", "n"]].to_numpy(float)))
    G = adaptive.Target("beta").rows(fitted.law, fitted.theta)
    sigma = adaptive.noise(fitted)
    inverse = np.linalg.inv(adaptive.information(fitted.law, fitted.theta, runs, sigma))
    fall = adaptive.reductions(G, inverse, rows, sigma)
    order = np.argsort(fall)
    top, middle, bottom = (grid.iloc[[int(order[k])]] for k in (-1, len(order) // 2, 0))
    most, mid, least = fall[order[-1]], fall[order[len(order) // 2]], fall[order[0]]
    assert least / 1.5 < mid / 2 < most  # the constructed case: distinct informations
    candidates = pd.concat(
        [
            top.assign(flops=1.0, seed=1),  # most informative: `most` per FLOP
            top.assign(flops=10.0, seed=2),  # the same cell, dearer
            middle.assign(flops=mid / (2 * most), seed=3),  # cheap: 2 `most` per FLOP
            bottom.assign(flops=least / (1.5 * most), seed=4),  # cheapest: 1.5 `most`
        ],
        ignore_index=True,
    )
    beta, rng = adaptive.Target("beta"), np.random.default_rng(0)
    chosen = adaptive.propose(runs, candidates, beta, 1, SETTINGS, rng)
    assert chosen["seed"].tolist() == [3]
    assert chosen["score"].iloc[0] == pytest.approx(2 * most, rel=1e-3)
    batch = adaptive.propose(runs, candidates, beta, 3, SETTINGS, rng)
    added = pd.concat([runs, batch])  # the greedy update is the recomputed variance
    after = adaptive.target_variance(fitted.law, fitted.theta, added, sigma, beta)
    assert batch["variance"].iloc[-1] == pytest.approx(after.sum(), rel=1e-4)
    cheapest = candidates["flops"].min()
    tight = adaptive.propose(runs, candidates, beta, 3, SETTINGS, rng, 1.01 * cheapest)
    assert tight["seed"].tolist() == [4]  # the only cell that fits
    assert adaptive.propose(runs, candidates, beta, 3, SETTINGS, rng, cheapest / 2).empty


def test_proposals_are_deterministic_given_the_seed():
    grid = recorded(rng_seed=4)
    stop = adaptive.Stop(budget=0.3 * grid["flops"].sum())
    first = adaptive.replay(grid, adaptive.Target("beta"), stop, 3, SETTINGS, seed=5)
    again = adaptive.replay(grid, adaptive.Target("beta"), stop, 3, SETTINGS, seed=5)
    pd.testing.assert_frame_equal(first[0], again[0])
    assert first[1] == again[1]
    other = adaptive.replay(grid, adaptive.Target("beta"), stop, 3, SETTINGS, seed=6)
    assert list(other[0].index) != list(first[0].index)  # the seed picks the replicates


def test_budget_stops_and_is_never_exceeded():
    grid = recorded(rng_seed=5)
    budget = 0.2 * grid["flops"].sum()
    runs, rounds = adaptive.replay(
        grid, adaptive.Target("alpha"), adaptive.Stop(budget=budget), 4, SETTINGS, 0
    )
    assert runs["flops"].sum() <= budget
    assert "stopped" in rounds[-1] and len(rounds) > 1
    assert budget - runs["flops"].sum() < grid.drop(index=runs.index)["flops"].min()


def test_width_rule_stops_once_the_interval_is_narrow_enough():
    grid = recorded(rng_seed=6)
    wide = adaptive.Stop(width=np.inf)
    runs, rounds = adaptive.replay(grid, adaptive.Target("beta"), wide, 3, SETTINGS, 0)
    assert len(rounds) == 1 and rounds[0]["stopped"].startswith("width")
    assert (runs["round"] == 0).all()
    target = rounds[0]["width"] / 2
    runs, rounds = adaptive.replay(
        grid, adaptive.Target("beta"), adaptive.Stop(width=target), 3, SETTINGS, 0
    )
    assert rounds[-1]["width"] <= target < min(r["width"] for r in rounds[:-1])


def test_initial_design_is_the_cross_and_centre():
    grid = recorded()
    design = adaptive.initial_design(grid, seed=0, seeds=2)
    Ns, ns = sorted(grid["N"].unique()), sorted(grid["n"].unique())
    cells = set(zip(design["N"], design["n"], strict=True))
    cross = {(N, ns[0]) for N in Ns} | {(Ns[0], n) for n in ns}
    assert cross < cells and len(cells) == len(cross) + 1
    assert (design.groupby(["N", "n"]).size() == 2).all()
