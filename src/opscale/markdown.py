"""fit.md: the Markdown report of a fit, rendered from fit.nc alone.

Sections: the headline (measured vs theory), every estimate, the robust law's
parameters, the alternatives by AIC/BIC, the extrapolation backtest, the compute-optimal
allocation, the notes; then each analysis' own section. Every interval header names the
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
from opscale.tables import confidence_label, headline, interval_cell, markdown_table, table


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
        _theory_table(fits, config),
        _slope_table(fits),
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
            r.law,
        ]
        for r in headline(rows).sort_index().itertuples()  # groups in sweep order
    ]
    header = [
        "study",
        "axis",
        f"measured [{confidence_label(fits)} CI]",
        "theory",
        "verdict",
        "law",
    ]
    return "## Measured vs theory\n\n" + _headline_line(rows) + markdown_table(header, body)


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


def _slope_table(fits) -> str:
    level = confidence_label(fits)
    header = ["group", "axis", f"asymptotic exponent [{level} CI]"]
    header += [f"local slope, robust law [{level} CI]", f"local slope, joint OLS [{level} CI]"]
    header += ["local slope across laws [min, max]"]
    text = _section(fits, "slope", "Exponent and local slope", header, _slope_cells)
    return text


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
        f"[{r.spread_low:.3f}, {r.spread_high:.3f}] over {r.spread_laws} laws",
    ]


def _theory_cell(r) -> str:
    if not r.theory:
        return "no prediction"
    return f"{r.theory_exponent:.3f} ({r.theory_formula}; {r.theory})"


def _section(fits, name: str, title: str, header: list[str], cells) -> str:
    """A Markdown section: table `name` of fit.nc, one row ``cells(record)`` per record."""
    rows = table(fits, name)
    if rows.empty:
        return ""
    return f"## {title}\n\n" + markdown_table(header, [cells(r) for r in rows.itertuples()])


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
        f"{r.r_squared:.3f}",
        r.method,
    ]


def _parameters_table(fits) -> str:
    header = ["group", "law", "parameter", f"estimate [{confidence_label(fits)} CI]"]
    return _section(fits, "parameter", "Parameters", header, _parameter_cells)


def _parameter_cells(r) -> list:
    return [r.group, r.law, r.name, interval_cell(r, "estimate", fmt=".4g")]


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
        f"{r.measured:.4g}",
        f"{r.predicted:.4g} [{r.pi_low:.4g}, {r.pi_high:.4g}]",
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
        f"{r.budget:.3g}",
        f"{r.N_opt:,.0f} [{r.N_low:,.0f}, {r.N_high:,.0f}]",
        f"{r.n_opt:,.0f} [{r.n_low:,.0f}, {r.n_high:,.0f}]",
        f"{r.err_opt:.4g} [{r.err_low:.4g}, {r.err_high:.4g}]",
        r.extrapolated + ("" if r.identified == "yes" else "; law not identified"),
        _measured_cell(r),
    ]


def _measured_cell(r) -> str:
    if math.isnan(r.best_measured_err):
        return "none affordable"
    return f"{r.best_measured_N:,.0f}, {r.best_measured_n:,.0f}, {r.best_measured_err:.4g}"


def _notes(fits) -> str:
    notes, excluded = table(fits, "note"), table(fits, "excluded")
    lines = [f"- {r.group}, {r.step}: {r.reason}" for r in notes.itertuples()]
    counts = excluded.groupby(["fits", "reason"]).size() if not excluded.empty else []
    lines += [
        f"- excluded from {fits_}: {n} model(s), {reason}"
        for (fits_, reason), n in getattr(counts, "items", lambda: [])()
    ]
    return "## Notes\n\n" + "\n".join(lines) + "\n" if lines else ""
