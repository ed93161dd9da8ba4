"""Registry of batched model families: name -> ``build(spec, shapes, generators, dtype)``."""

from opscale.models import deeponet, iterative, linearized, mlp, two_layer

MODELS = {
    "deeponet": deeponet.build,
    "mlp": mlp.build,
    "iterative": iterative.build,
    "two_layer": two_layer.build,
}
# boolean model keys that wrap the built model, applied in this order when true
WRAPPERS = {"linearized": linearized.wrap}


def build_model(spec: dict, shapes: dict, generators, dtype):
    """Build the batched model named by ``spec["name"]`` with one member per generator."""
    model = MODELS[spec["name"]](spec, shapes, generators, dtype)
    for key, wrap in WRAPPERS.items():
        model = wrap(model) if spec.get(key) else model
    return model
