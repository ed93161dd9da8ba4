"""fit.md: the Markdown report of a fit, rendered from fit.nc alone.

Sections: the headline (measured vs theory), the exponent and local slope, the model
axis in each count of model size with the envelope's data exponent, the shape claims
(across b; across D and n_x), every estimate, the robust law's parameters, the
alternatives by AIC/BIC, the extrapolation backtest, the compute-optimal allocation, the
notes; then each analysis' own section. Every interval header names the
fit's confidence level (``fit.confidence``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from opscale import analyses, tables
from opscale import cube as cubes
from opscale.scaling.observations import TERM_AXIS
from opscale.tables import (
    SIZE_N,
    SIZE_TABLE,
    confidence_label,
    headline,
    interval_cell,
    markdown_table,
    number,
    table,
)

# readable names of the theory registry's entries (fit.nc keeps the key, column `theory`)
THEORY_TITLES = {
    "deeponet_finite_inputs": "DeepONet bound, b-dimensional inputs",
    "deeponet_lipschitz": "DeepONet bound, Lipschitz operator",
    "deeponet_effective_dim": "DeepONet bound at the GRF's effective dimension (a heuristic)",
    "deep_relu": "deep ReLU bound, d-dimensional domain",
}
THEORY_CITATION = "Liu et al. 2024, arXiv 2410.00357"
# parameter names as fit.md shows them (fit.nc keeps the stored name)
PARAMETER_TITLES = {"log k (FLOPs)": "ln k (FLOPs = k N^a n^b, natural log)"}
# what a robust-law parameter is, in the takeaway's words
PARAMETER_WORDS = {
    "E": "floor E",
    "A": "N coefficient",
    "alpha": "N exponent",
    "B": "n coefficient",
    "beta": "n exponent",
}


def markdown(fits: xr.Dataset) -> str:
    """fit.md: headline theory table, every estimate, comparison, backtest, allocation."""
    config = cubes.study_config(fits)
    settings = tables.settings(fits)
    scaling = _scaling_sections(fits, config) if settings.get("scaling", True) else []
    studies = [analyses.load(name).markdown(fits) for name in settings.get("analyses", [])]
    if not scaling:
        scaling = [f"# Analyses: {config.get('study', '?')}\n", _notes(fits)]
    return "\n".join(s for s in [*scaling, *studies] if s)


def _scaling_sections(fits: xr.Dataset, config: dict) -> list[str]:
    """The scaling-law sections of fit.md."""
    return [
        f"# Scaling-law fit: {config.get('study', '?')}\n\n"
        f"Response: {fits.attrs.get('response', '')}. Exponents: err ~ x^-exponent; the "
        "data-axis bounds of the squared error are halved for it (see opscale.theory).\n",
        _takeaway(fits, config),
        _theory_table(fits, config),
        _slope_table(fits),
        _size_table(fits),
        _shape_table(fits),
        _invariance_table(fits),
        _estimates_table(fits),
        _parameters_table(fits),
        _comparison_table(fits),
        _backtest_table(fits),
        _allocation_table(fits),
        _notes(fits),
    ]


def _theory_table(fits, config) -> str:
    rows = table(fits, "row")
    if rows.empty:
        return "## Theory\n\nNo exponent could be fitted (see the notes).\n"
    body = [
        [
            config.get("study", "?") + ("" if r.group == "all" else f" ({r.group})"),
            TERM_AXIS[r.term],
            interval_cell(r),
            _theory_cell(r),
            r.verdict,
            _convergence_cell(r),
            getattr(r, "assumptions", "") or "none stated",
            r.law,
        ]
        for r in headline(rows).sort_index().itertuples()  # groups in sweep order
    ]
    level = confidence_label(fits)
    header = ["study", "axis", f"measured [{level} CI]", "theory", "verdict"]
    header += [
        "models at their budget's end; test/train error; validation gain",
        "the bound assumes",
        "law",
    ]
    return "## Measured vs theory\n\n" + _headline_line(rows) + markdown_table(header, body)


def _convergence_cell(r) -> str:
    """How many models were still improving when training ended, and the test/train ratio."""
    if not getattr(r, "models_at_budget", ""):
        return "not known"
    gain = getattr(r, "late_gain", math.nan)
    late = "" if pd.isna(gain) else f"; -{gain:.0%} in the last quarter"
    return f"{r.models_at_budget}; {r.test_train_ratio:.2f}{late}"


def _headline_line(rows) -> str:
    """One line: which quantity the headline shows, and why."""
    if "robust" in set(rows["law"]):
        return (
            "Shown: the asymptotic exponent of the robust additive law err = E + A N^-alpha "
            "+ B n^-beta (Huber fit, bootstrap intervals), since the theory's rates are "
            "asymptotic; a log-log plot of the data shows the local slope instead, flattened "
            "by the floor and the other term (next section). An interval that reaches a "
            "parameter's bound is censored and gets no verdict.\n\n"
        )
    return (
        "Shown: log-log OLS slopes (the robust law could not be fitted; see the notes): "
        "local slopes over the sampled range, not asymptotic exponents.\n\n"
    )


def _power(axis: str, exponent: float) -> str:
    """``N^-0.479`` for err ~ N^-0.479; ``n^+0.088`` for an error that grows with n."""
    return f"{axis}^-{number(exponent)}" if exponent >= 0 else f"{axis}^+{number(-exponent)}"


def _slope_table(fits) -> str:
    level = confidence_label(fits)
    header = ["group", "axis", f"asymptotic exponent [{level} CI]"]
    header += [f"local slope, robust law [{level} CI]", f"local slope, joint OLS [{level} CI]"]
    header += ["local slope across laws [min, max]"]
    text = _section(fits, "slope", "Exponent and local slope", header, _slope_cells)
    return text


def _shape_table(fits) -> str:
    level = confidence_label(fits)
    header = ["claim", "axis", f"fitted slope on b [{level} CI]", "claimed", "groups (b)"]
    header.append("verdict")
    title = "Shape across the intrinsic dimension b (falsifiable claims)"
    return _section(fits, "shape", title, header, _shape_cells)


def _size_table(fits) -> str:
    level = confidence_label(fits)
    header = ["group", "axis", "counted in", f"exponent [{level} CI]", "theory", "verdict"]
    title = "Model size as the theorem counts it, and the envelope min over N"
    intro = (
        "The robust law refitted with the model axis in each count (N: every parameter, "
        "the count the bound is stated in and the headline's; N without the branch's sensor "
        "layer; p basis functions), and the data axis on the smallest error over N per "
        "(n, seed). Verdicts only on the counts the theorem uses (opscale.scaling.sizes)."
    )
    return _section(fits, SIZE_TABLE, title, header, _size_cells, intro)


def _size_cells(r) -> list:
    axis = "model size" if r.term == "log_N" else TERM_AXIS[r.term]
    counted = r.size
    if r.term == "log_n":  # the data axis: the law in N and n, or the envelope
        counted = "the law in N and n" if r.size == SIZE_N else r.size
    return [r.group, axis, counted, interval_cell(r), _theory_cell(r), r.verdict]


def _invariance_table(fits) -> str:
    level = confidence_label(fits)
    header = ["claim", "axis", "law", "groups with", "exponents [CI]", "values compared"]
    header += [f"difference, largest - smallest [{level} CI]", "relative", "verdict"]
    title = "Shape across D and n_x (falsifiable claims: the exponent does not depend on them)"
    return _section(fits, "invariance", title, header, _invariance_cells)


def _invariance_cells(r) -> list:
    difference = interval_cell(r, "difference", "difference_low", "difference_high")
    relative = f"{100 * r.relative:+.0f}%" if np.isfinite(r.relative) else "n/a"
    values = r.compared or "n/a"
    law = "robust (exponent)" if r.law == "robust" else f"{r.law} OLS (local slope)"
    cells = [r.statement, r.axis, law, r.within, r.exponents, values, difference, relative]
    return [*cells, r.verdict]


def _shape_cells(r) -> list:
    slope = f"{r.slope:.3g} [{r.slope_low:.3g}, {r.slope_high:.3g}]"
    return [r.statement, r.axis, slope, r.claimed, f"{r.groups} ({r.dimensions})", r.verdict]


def _slope_cells(r) -> list:
    exponent = interval_cell(r, "exponent", "exponent_low", "exponent_high")
    if r.identified == "no" and np.isfinite(r.exponent):
        exponent += " (not identified)"
    return [
        r.group,
        TERM_AXIS[r.term],
        exponent,
        interval_cell(r, "local_slope", "local_low", "local_high"),
        interval_cell(r, "ols_slope", "ols_low", "ols_high"),
        f"[{number(r.spread_low)}, {number(r.spread_high)}] over {r.spread_laws} laws",
    ]


def _theory_cell(r) -> str:
    if not r.theory:
        return "no prediction"
    return f"{number(r.theory_exponent)} ({r.theory_formula}; {theory_title(r.theory)})"


def theory_title(key: str) -> str:
    """A theory registry key as a reader reads it: its name and citation."""
    return f"{THEORY_TITLES.get(key, key.replace('_', ' '))}, {THEORY_CITATION}"


def _takeaway(fits, config) -> str:
    """One line per group: the robust law with its numbers, and what is not identified."""
    rows, parameters = table(fits, "row"), table(fits, "parameter")
    if rows.empty:
        return ""
    groups = list(dict.fromkeys(rows["group"]))
    study = config.get("study", "?")
    lines = [
        f"- **{study if group == 'all' else f'{study} ({group})'}**: "
        + takeaway(parameters, rows, group, confidence_label(fits))
        for group in groups
    ]
    return "## Takeaway\n\n" + "\n".join(lines) + "\n"


def takeaway(parameters: pd.DataFrame, rows: pd.DataFrame, group: str, level: str) -> str:
    """The one-line law of a group, e.g. ``err ≈ 0.008 + 3.9 N^-0.54 + 4.9 n^-1.07 (...)``.

    From the robust law's parameters (``parameter`` table) when it was fitted, else the
    joint OLS slopes of the exponent table (``row``), said to be local slopes.
    """
    robust = parameters.query("group == @group and law == 'robust'") if len(parameters) else []
    if len(robust) == 0:
        joint = rows.query("group == @group and law == 'joint'").set_index("term")
        if joint.empty:
            return "no law could be fitted (see the notes)"
        slopes = " ".join(
            _power(axis, joint.exponent[term])
            for term, axis in (("log_N", "N"), ("log_n", "n"))
            if term in joint.index
        )
        return f"err ∝ {slopes} (joint log-log OLS, local slopes; the robust law was not fitted)"
    p = robust.set_index("name")
    floor_at_zero = p.censored.get("E", "") in ("lower", "both") and p.bound_low.get("E") == 0
    terms = [] if floor_at_zero or "E" not in p.index else [number(p.estimate["E"])]
    for coefficient, exponent, axis in (("A", "alpha", "N"), ("B", "beta", "n")):
        if coefficient in p.index:
            terms.append(f"{number(p.estimate[coefficient])} {_power(axis, p.estimate[exponent])}")
    law = " + ".join(terms).replace("+ -", "- ")
    intervals = [
        f"{name} {interval_cell(p.loc[name], 'estimate')}"
        for name in ("alpha", "beta")
        if name in p.index and p.identified[name] == "yes"
    ]
    unidentified = [
        PARAMETER_WORDS.get(n, n)
        for n in p.index
        if p.identified[n] == "no" and not (n == "E" and floor_at_zero)
    ]
    notes = [f"robust law; {level} CI " + ", ".join(intervals) if intervals else "robust law"]
    if floor_at_zero:
        estimate = number(p.estimate["E"])
        notes.append(
            f"floor E not identified: its interval reaches 0 (estimate {estimate}, left out)"
        )
    if unidentified:
        notes.append(", ".join(unidentified) + " not identified")
    return f"err ≈ {law} ({'; '.join(notes)})"


def _section(fits, name: str, title: str, header: list[str], cells, intro: str = "") -> str:
    """A Markdown section: table `name` of fit.nc, one row ``cells(record)`` per record,
    after the paragraph `intro` if one is given."""
    rows = table(fits, name)
    if rows.empty:
        return ""
    intro = f"{intro}\n\n" if intro else ""
    body = markdown_table(header, [cells(r) for r in rows.itertuples()])
    return f"## {title}\n\n{intro}{body}"


def _estimates_table(fits) -> str:
    header = [
        "group",
        "law",
        "axis",
        f"exponent [{confidence_label(fits)} CI]",
        "models",
        "seeds",
        "R²",
    ]
    header.append("method")
    return _section(fits, "row", "Every estimate", header, _estimate_cells)


def _estimate_cells(r) -> list:
    return [
        r.group,
        r.law,
        TERM_AXIS[r.term],
        interval_cell(r),
        r.n_obs,
        r.n_clusters,
        number(r.r_squared),
        r.method,
    ]


def _parameters_table(fits) -> str:
    header = ["group", "law", "parameter", f"estimate [{confidence_label(fits)} CI]"]
    return _section(fits, "parameter", "Parameters", header, _parameter_cells)


def _parameter_cells(r) -> list:
    return [r.group, r.law, PARAMETER_TITLES.get(r.name, r.name), interval_cell(r, "estimate")]


def _comparison_table(fits) -> str:
    header = ["group", "law", "formula", "params", "AIC", "ΔAIC", "BIC", "ΔBIC", "evidence"]
    header.append("at a bound")
    title = (
        "Alternatives (AIC/BIC, lower is better; every law fitted by least squares, "
        "not the headline's Huber loss; |ΔAIC| < 2: indistinguishable)"
    )
    return _section(fits, "comparison", title, header, _comparison_cells)


def _comparison_cells(r) -> list:
    information = (r.aic, r.delta_aic, r.bic, r.delta_bic)
    cells = [r.group, r.law, r.formula, r.params, *(f"{v:.1f}" for v in information)]
    return [*cells, r.evidence, r.at_bound or "none"]


def _backtest_table(fits) -> str:
    header = ["group", "held out (largest)", "method", "N", "n", "measured (median)"]
    header += [f"predicted [{confidence_label(fits)} PI]", "error", "models in PI"]
    text = _section(fits, "backtest", "Extrapolation backtest", header, _backtest_cells)
    return text + _backtest_summary(table(fits, "backtest"), confidence_label(fits)) if text else ""


def _backtest_cells(r) -> list:
    return [
        r.group,
        r.held_out,
        r.method + ("" if r.identified == "yes" else " (law not identified)"),
        f"{r.N:,}",
        f"{r.n:,}",
        number(r.measured),
        f"{number(r.predicted)} [{number(r.pi_low)}, {number(r.pi_high)}]",
        f"{100 * r.rel_error:+.1f}%",
        f"{r.inside}/{r.models}",
    ]


def _backtest_summary(rows: pd.DataFrame, level: str) -> str:
    summary = rows.groupby(["group", "held_out", "method"], sort=False).agg(
        median_abs_error=("rel_error", lambda e: float(np.median(np.abs(e)))),
        inside=("inside", "sum"),
        models=("models", "sum"),
    )
    body = [
        [
            *key,
            f"{100 * r.median_abs_error:.1f}%",
            f"{r.inside}/{r.models} ({100 * r.inside / r.models:.0f}%)",
        ]
        for key, r in zip(summary.index, summary.itertuples(), strict=True)
    ]
    header = ["group", "held out", "method", "median abs. error", f"models in {level} PI"]
    return "\n" + markdown_table(header, body)


ALLOCATION_HEADER = [
    "group",
    "FLOPs",
    "N*",
    "n*",
    "predicted err",
    "extrapolated",
    "best trained (N, n, err)",
]


def _allocation_table(fits) -> str:
    title = "Compute-optimal allocation"
    return _section(fits, "allocation", title, ALLOCATION_HEADER, _allocation_cells)


def _allocation_cells(r) -> list:
    return [
        r.group,
        number(r.budget),
        f"{r.N_opt:,.0f} [{r.N_low:,.0f}, {r.N_high:,.0f}]",
        f"{r.n_opt:,.0f} [{r.n_low:,.0f}, {r.n_high:,.0f}]",
        f"{number(r.err_opt)} [{number(r.err_low)}, {number(r.err_high)}]",
        r.extrapolated + ("" if r.identified == "yes" else "; law not identified"),
        _measured_cell(r),
    ]


def _measured_cell(r) -> str:
    if math.isnan(r.best_measured_err):
        return "none affordable"
    return f"{r.best_measured_N:,.0f}, {r.best_measured_n:,.0f}, {number(r.best_measured_err)}"


def _notes(fits) -> str:
    notes, excluded = table(fits, "note"), table(fits, "excluded")
    lines = [f"- {r.group}, {r.step}: {r.reason}" for r in notes.itertuples()]
    counts = excluded.groupby(["fits", "reason"]).size() if not excluded.empty else []
    lines += [
        f"- excluded from {fits_}: {n} model(s), {reason}"
        for (fits_, reason), n in getattr(counts, "items", lambda: [])()
    ]
    return "## Notes\n\n" + "\n".join(lines) + "\n" if lines else ""
