"""Explicit, named random streams: no global RNG state anywhere in opscale.

Every random draw takes a generator derived from a seed and a tuple of names, e.g.
``numpy_rng(seed, "inputs", "train")``. Streams with different names are independent;
the same names always give the same stream, in any process, on any machine.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(name: str | int) -> int:
    return name if isinstance(name, int) else zlib.crc32(name.encode())


def seed_sequence(seed: int, *names: str | int) -> np.random.SeedSequence:
    """The seed sequence of the stream `names` of repetition `seed`."""
    return np.random.SeedSequence([seed, *map(_key, names)])


def numpy_rng(seed: int, *names: str | int) -> np.random.Generator:
    """A NumPy generator for the stream `names` of repetition `seed`."""
    return np.random.default_rng(seed_sequence(seed, *names))


def torch_generator(seed: int, *names: str | int, device: str = "cpu"):
    """A torch.Generator for the stream `names` of repetition `seed`."""
    import torch

    state = int(seed_sequence(seed, *names).generate_state(1, np.uint64)[0] >> np.uint64(1))
    return torch.Generator(device=device).manual_seed(state)
