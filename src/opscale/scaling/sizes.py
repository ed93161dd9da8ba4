"""Model size as the theorem counts it, and the data axis on the envelope min over N.

Counts of model size
--------------------
The headline's model axis is N, every trainable parameter (``n_params``). A DeepONet's
N includes its sensor layer, the branch's first layer that reads u at the n_x sensors:
(n_x + 1) x width weights and biases. With a depth-2 net that layer is a large, n_x-
dependent share of N, so the N exponent of a width sweep depends on n_x through the way
N grows with the width, while the theory says n_x does not enter the exponents. This
module refits the robust law (``opscale.scaling.robust``: the same law, Huber loss,
bootstrap scheme and censoring) with the model axis in two other counts, each a row of
the ``size`` table with its interval:

``N without sensor layer``
    N minus the sensor layer (``resources.sensor_layer``, counted from the study
    config, so old cubes refit without retraining).
``p (basis functions)``
    DeepONet's number of basis functions p (``model.p``; null means p = width, so a
    width sweep with p null is a p sweep too). Fitted where p varies within a group.

Which count the theorem uses: the bound of Liu, Zhang, Liao & Schaeffer (2024) is on the
number of parameters of the whole network it constructs, the branch and trunk nets on the
encoded input, and here the encoder is the point evaluation of u at the n_x sensors, so
the branch's first layer belongs to the network it counts: N, all parameters. n_x enters
the bound's constants (the input dimension of the branch net), not its rate. So the
verdict is given on N only (the headline); the row in N without the sensor layer carries
the bound's exponent for comparison but no verdict (it tests whether the sensor layer
bends the N exponent, not the bound), and the p row has no prediction (the bound states
no rate in p).

Envelope min over N
-------------------
The theory's data rate is for a model size chosen with n (its bound balances the
approximation and estimation errors), so the data axis is also fitted on the envelope:
per (group, n, seed), the smallest error over the trained N (fitted where every (n, seed)
holds 2 or more models, so not on a table of single runs), then the power law with floor
``err = E + B n^-beta`` (the robust law's machinery, one term) on those minima, bootstrapped
by whole seeds (each seed's envelope is one cluster: ``fit.bootstrap_scheme`` auto picks
it with 3 or more seeds). It is its own row, ``envelope min over N``, with the data
bound's verdict. Its assumptions: the sampled N reach the optimal size at each n (where
the largest N limits, the envelope flattens: the floor E takes it); the minimum of noisy
errors is biased low by about the replicate noise, the same at every n when every n has
the same N, so it shifts the amplitude, not the exponent.
"""

from __future__ import annotations

import pandas as pd

from opscale.rng import numpy_rng
from opscale.scaling.fitting import fit_reported_law, identifiable
from opscale.scaling.laws import AdditiveLaw
from opscale.scaling.observations import varying_terms
from opscale.scaling.report import Report
from opscale.scaling.robust import robust_rows
from opscale.tables import EXPONENTS, SIZE_CORE, SIZE_ENVELOPE, SIZE_N, SIZE_P, SIZE_TABLE

COUNTS = {SIZE_CORE: "log_N_core", SIZE_P: "log_p"}  # count -> column of the observations
WITH_THEORY = (SIZE_N, SIZE_CORE, SIZE_ENVELOPE)  # rows that carry the bound's exponent
WITH_VERDICT = (SIZE_N, SIZE_ENVELOPE)  # the counts the theorem's rates are stated in
NO_VERDICT = {
    SIZE_CORE: "not the theorem's count (it counts N, all parameters): no verdict",
    SIZE_P: "no prediction in p (the bound's rate is in N): no verdict",
}


def size_rows(frame: pd.DataFrame, group: str, settings: dict, report: Report) -> None:
    """The group's model-axis exponents in each other count and its envelope's data
    exponent, as rows of the ``size`` table (none where a count does not vary)."""
    for size, column in COUNTS.items():
        if column in frame and frame[column].nunique() >= 2:
            _count_rows(frame, column, size, group, settings, report)
    if frame["log_N"].nunique() >= 2 and frame["log_n"].nunique() >= 2:
        _envelope_rows(frame, group, settings, report)


def _count_rows(frame, column: str, size: str, group: str, settings: dict, report: Report):
    """The robust law with the model axis in `column`: its model-axis row."""
    if frame[column].isna().any():
        missing = int(frame[column].isna().sum())
        report.note(group, size, f"{missing} model(s) without this count: not fitted")
        return
    counted = frame.assign(log_N=frame[column])
    rows = _robust(counted, AdditiveLaw(varying_terms(counted)), size, group, settings, report)
    method = f"robust law with the model axis in {size}"
    report.add(SIZE_TABLE, [_row(r, size, method) for r in rows if r["term"] == "log_N"])


def envelope(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (n, seed), the model with the smallest error over N (its grid point: its n)."""
    best = frame.loc[frame.groupby(["log_n", "seed"], sort=True)["err"].idxmin()]
    return best.assign(point=best.groupby("log_n").ngroup()).reset_index(drop=True)


def _envelope_rows(frame, group: str, settings: dict, report: Report) -> None:
    fewest = int(frame.groupby(["log_n", "seed"]).size().min())
    if fewest < 2:  # e.g. a table of single runs: each run would be its own minimum
        reason = f"a (n, seed) holds {fewest} model: the envelope needs 2 or more N at each"
        report.note(group, SIZE_ENVELOPE, reason)
        return
    law = AdditiveLaw(("log_n",))
    rows = _robust(envelope(frame), law, SIZE_ENVELOPE, group, settings, report)
    method = "power law with floor E + B n^-beta on the min over N per (n, seed)"
    rows = [{**_row(r, SIZE_ENVELOPE, method), "law": "envelope"} for r in rows]
    report.add(SIZE_TABLE, rows)


def _robust(frame, law: AdditiveLaw, size: str, group: str, settings: dict, report: Report):
    """Exponent rows of `law` fitted and bootstrapped as the robust law ([] and a note
    when it cannot be fitted); its own named bootstrap stream per count."""
    reason = identifiable(frame, law)
    if reason:
        report.note(group, size, reason)
        return []
    rng = numpy_rng(settings["seed"], "fit", "bootstrap", group, size)
    return robust_rows(fit_reported_law(frame, law, settings, rng), frame, group, settings)


def _row(row: dict, size: str, method: str) -> dict:
    return {**row, "size": size, "method": f"{method}; {row['method']}"}


def add_main_rows(report: Report, group: str) -> None:
    """Put the group's robust rows of the exponent table (in N, the headline's) before its
    other rows of the size table, so that it reads on its own (nothing if it has none)."""
    table = report.tables.get(SIZE_TABLE, [])
    mine = [r for r in table if r["group"] == group]
    if not mine:
        return
    main = [
        {**r, "size": SIZE_N}
        for r in report.tables.get(EXPONENTS, [])
        if r["group"] == group and r["law"] == "robust"
    ]
    report.tables[SIZE_TABLE] = [r for r in table if r["group"] != group] + main + mine


def verdict_applies(row: dict) -> bool:
    """Whether a row's count is one the theorem's rates are stated in (module doc)."""
    return row.get("size", SIZE_N) in WITH_VERDICT


def no_verdict(row: dict) -> str:
    return NO_VERDICT[row["size"]]
