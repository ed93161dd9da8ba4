"""Per-member measurements beyond the errors, turned on by a study's ``measure:`` section.

``MEASURES`` maps each name of the ``measure:`` section to a class built as
``Measure(options, spec, members)`` (its options, the point's resolved spec, the job's
``opscale.train.Members``). The options are the measure's section of the resolved spec:
the study config is validated once, with the schema's defaults filled in
(``opscale.config.validate_study``), so a measure keeps no defaults of its own. A
training job calls, for every enabled measure:

- ``start(model, data)`` on the freshly built model, at initialisation: before any
  checkpoint is restored and before training (so a resumed job measures the same state);
- ``finish(model, data) -> xarray.Dataset`` after training, with the model holding each
  member's reported (best) state.

``data`` maps ``train``/``val``/``test`` to ``Split(u, y, s)`` with one row per member
(member i trains on its first ``members.n_train[i]`` training functions). A measure
declares its variables and coordinates in its module's ``VARIABLES`` (name ->
``opscale.schema.Variable``: dims, ``member`` first; long_name; units) and builds the
Dataset with ``opscale.cube.dataset(values, VARIABLES)``; it is merged into the point
file and collected into the cube like every other variable. The section is part of a point's
spec, so turning a measure on gives new point ids (the files hold different content).
"""

from __future__ import annotations

import xarray as xr

from opscale.measures import calibration, iteration, ntk, recovery

MEASURES: dict[str, type] = {
    "ntk": ntk.NTK,
    "iteration": iteration.IterationMeasure,
    "recovery": recovery.Recovery,
    "calibration": calibration.Calibration,
}


class Measures:
    """The enabled measures of one job, started and finished together."""

    def __init__(self, spec: dict, members):
        options = spec.get("measure", {})
        unknown = sorted(set(options) - set(MEASURES))
        if unknown:
            raise ValueError(
                f"measure: unknown measure(s) {', '.join(unknown)}; "
                f"registered: {', '.join(sorted(MEASURES)) or 'none'}"
            )
        self.measures = [MEASURES[name](opts, spec, members) for name, opts in options.items()]

    def start(self, model, data: dict) -> None:
        for measure in self.measures:
            measure.start(model, data)

    def finish(self, model, data: dict) -> xr.Dataset:
        """Every measure's variables, merged (an empty Dataset when none is enabled)."""
        return xr.merge([m.finish(model, data) for m in self.measures], compat="no_conflicts")
