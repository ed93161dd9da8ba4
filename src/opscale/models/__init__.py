"""Registry of batched model families: name -> ``build(spec, shapes, generators, dtype)``."""

from opscale.models import deeponet, mlp

MODELS = {"deeponet": deeponet.build, "mlp": mlp.build}


def build_model(spec: dict, shapes: dict, generators, dtype):
    """Build the batched model named by ``spec["name"]`` with one member per generator."""
    return MODELS[spec["name"]](spec, shapes, generators, dtype)
