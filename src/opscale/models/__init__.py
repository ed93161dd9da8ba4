"""Registry of batched model families: name -> ``build(spec, shapes, generators, dtype)``.

The built-in families are hand-batched (``opscale.ensemble``); a plain ``nn.Module`` joins
through ``module.vmapped``. Packages add families through entry points of the group
``opscale.models`` (``opscale.plugins``), read the first time the registry is.
"""

from opscale.models import deeponet, iterative, linearized, mlp, two_layer
from opscale.plugins import GROUPS, Registry


def _check(value) -> str | None:
    if not callable(value):
        return (
            f"names a {type(value).__name__}, not a model builder "
            "(spec, shapes, generators, dtype) -> module (see opscale.models.module.vmapped)"
        )
    return None


MODELS = Registry(
    GROUPS["models"],
    {
        "deeponet": deeponet.build,
        "mlp": mlp.build,
        "iterative": iterative.build,
        "two_layer": two_layer.build,
    },
    _check,
)
# boolean model keys that wrap the built model, applied in this order when true
WRAPPERS = {"linearized": linearized.wrap}


def build_model(spec: dict, shapes: dict, generators, dtype):
    """Build the batched model named by ``spec["name"]`` with one member per generator."""
    model = MODELS[spec["name"]](spec, shapes, generators, dtype)
    for key, wrap in WRAPPERS.items():
        model = wrap(model) if spec.get(key) else model
    return model
