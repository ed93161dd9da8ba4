"""The point-file schema, declared once: every variable and coordinate a training job stores.

``POINT_SCHEMA`` maps each name to a `Variable`: its dimensions, ``long_name`` and
``units``. ``opscale.cube`` builds the point file from it (``cube.point_dataset``),
attaches its attributes (``cube.describe``) and checks files against it
(``cube.read_point``); the trainer and ``opscale.evaluate`` emit exactly these names.
The study cube (``cube.collect``) holds the same variables with ``member`` replaced by the
sweep axes and ``seed``. A measure (``opscale.measures``) declares its own variables the
same way, in its module's ``VARIABLES``. ``python -m opscale.schema`` prints the table
that docs/outputs.md shows. Import-light (no numpy, torch or xarray): Snakemake and the docs
may import it.

Units are UDUNITS-2 strings, as CF asks (``tests/test_units.py`` parses every ``units``
of a real point file, cube and data file with cf-units):

- ``"1"``: dimensionless, which covers counts (steps, parameters, functions) and FLOP
  counts: UDUNITS has no FLOP unit, so FLOPs are ``"1"`` and their ``long_name`` says
  FLOP; and the operator's inputs and outputs, which every data file stores
  dimensionless, so errors and losses of s (``test_linf``, ``final_loss``) are ``"1"``
  too;
- ``"s"``: seconds (``wall_time``), never "the units of s".

``n_params`` labels a model, not a measurement: a coordinate of the point file's
``member`` and, in the cube, of the model axes. ``cube.collect`` puts it on the sweep
dims it varies along (``MODEL_COORDS``): always the ``model.*`` axes, and any other
axis (``problem.sensors`` changes the sensor layer's size) only where its values
differ along it; never ``seed`` or ``n_train`` unless they change it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One variable or coordinate of a file: its dimensions and CF attributes.

    Parameters
    ----------
    dims : tuple of str
        Dimension names, in order (``()`` for a scalar).
    long_name, units : str
        The CF attributes every variable carries (``"1"``: dimensionless).
    coord : bool
        A coordinate (labels a dimension) rather than a measured value.
    required : bool
        Whether every file of the schema holds it (False: only some do).
    """

    dims: tuple[str, ...]
    long_name: str
    units: str
    coord: bool = False
    required: bool = True

    @property
    def attrs(self) -> dict[str, str]:
        """The attributes of the stored variable."""
        return {"long_name": self.long_name, "units": self.units}


MEMBER = ("member",)  # the dims of a per-model value
# Coordinates that label a model by its architecture: in the cube each is on the model
# axes and the other axes it varies along (see the module docstring; cube.collect).
MODEL_COORDS = ("n_params",)
SPLITS = {"train": "training", "val": "validation", "test": "test"}  # split: its long name
# Errors evaluated after training, per metric: (long_name template, units, splits stored).
ERRORS = {
    "rel_l2": ("relative L2 error on the {} functions (mean over functions)", "1", tuple(SPLITS)),
    "linf": (
        "max-norm error on the {} functions (mean over functions; in the units of s)",
        "1",
        ("test",),
    ),
}


def error_name(split: str, metric: str) -> str:
    """The stored name of an error metric on a split, e.g. ``test_rel_l2``."""
    return f"{split}_{metric}"


def _errors() -> dict[str, Variable]:
    """The evaluated errors, per member: train/val/test_rel_l2, test_linf."""
    return {
        error_name(split, metric): Variable(MEMBER, long.format(SPLITS[split]), units)
        for metric, (long, units, splits) in ERRORS.items()
        for split in splits
    }


# In the order of the file (the order the trainer has always written them in).
POINT_SCHEMA: dict[str, Variable] = {
    **_errors(),
    "status": Variable(MEMBER, "training outcome", "1"),
    "best_step": Variable(
        MEMBER, "step of the best validation error (the reported state; a count)", "1"
    ),
    "final_loss": Variable(
        MEMBER, "training loss (MSE, in the units of s squared) at the last step", "1"
    ),
    "steps_trained": Variable(
        MEMBER, "optimisation steps taken before the model stopped (a count)", "1"
    ),
    "loss_curve": Variable(
        (*MEMBER, "step"), "training loss (MSE, in the units of s squared) during training", "1"
    ),
    "val_curve": Variable((*MEMBER, "eval"), "relative L2 validation error during training", "1"),
    "n_params": Variable(MEMBER, "trainable parameters per model (N)", "1", coord=True),
    "train_flops": Variable(
        MEMBER, "training FLOP count per model (forward + backward, full batch)", "1"
    ),
    "wall_time": Variable(MEMBER, "wall time of the whole group's job (all members at once)", "s"),
    "seed": Variable(MEMBER, "repetition seed (data draw and initialisation)", "1", coord=True),
    # per member only when n_train is a member axis; otherwise a sweep axis or fixed
    "n_train": Variable(MEMBER, "training functions (n)", "1", coord=True, required=False),
    # per member only when train.lr / train.weight_decay are member axes
    "lr": Variable(MEMBER, "base learning rate (AdamW)", "1", coord=True, required=False),
    "weight_decay": Variable(
        MEMBER, "decoupled weight decay (AdamW)", "1", coord=True, required=False
    ),
    # indexed by step number, so points trained with different budgets align in a cube
    "step": Variable(("step",), "optimisation step of the loss curve", "1", coord=True),
    "eval": Variable(("eval",), "optimisation step of the validation checks", "1", coord=True),
}


def table(schema: dict[str, Variable]) -> str:
    """`schema` as a Markdown table, one row per name: kind, dims, units, long_name."""
    rows = [_row(name, variable) for name, variable in schema.items()]
    return "\n".join(["| name | kind | dims | units | long_name |", "|---|---|---|---|---|", *rows])


def _row(name: str, v: Variable) -> str:
    kind = ("coordinate" if v.coord else "variable") + ("" if v.required else " (optional)")
    return f"| `{name}` | {kind} | {', '.join(v.dims) or 'scalar'} | {v.units} | {v.long_name} |"


if __name__ == "__main__":
    print(table(POINT_SCHEMA))
