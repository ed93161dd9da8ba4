"""Any plain ``torch.nn.Module`` as a batched ensemble, by ``torch.func.vmap``.

    factory(spec, shapes) -> module,    module(u (n, m), y) -> (n, q)

A user writes one ordinary model (no member dimension) and a factory that builds it from
the study's ``model`` section and the data's shapes (``sensors``, ``y_dim``,
``queries``); ``vmapped(factory)`` turns the factory into a model builder that the
registry takes like the hand-batched ones (``opscale.models.MODELS``, or an entry point
of the group ``opscale.models``, see ``opscale.plugins``). The module's forward takes
u (n, m) and y, the query points: (q, d) for aligned data (shared by every function) or
(n, q, d) for unaligned data, and returns the outputs (n, q).

The S members are built one by one, member i with the global RNG seeded from its own
generator (inside ``torch.random.fork_rng``, so the caller's RNG state is untouched):
member i is the module the factory builds after ``torch.manual_seed(member_seed(g_i))``.
Their parameters and buffers are stacked (``torch.func.stack_module_state``) into
tensors of shape (S, ...), which are this module's own parameters: the training engine
slices, steps and checkpoints them like any batched model's. The forward is
``vmap(functional_call(template, member_state, (u_i, y)))`` over members, the template
being one member's structure on the meta device (it holds no data).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one member's forward
(on the meta device: shapes only, nothing computed). It counts matrix products,
convolutions and attention at 2 FLOPs per multiply-add; bias adds and activations are
not counted (the hand-batched models count a bias add as 1 FLOP per output, so a dense
net counts ``n * sum(fan_out)`` fewer FLOPs here than as ``model.name: mlp``).

Limits: randomness inside the forward (dropout) is refused by ``vmap``; buffers are
read, not updated (batch norm's running statistics stay at their initial values: use it
in eval mode or not at all); tensors kept as plain attributes of the module (neither
parameters nor buffers) stay on the meta device and fail.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

Factory = Callable[[dict, dict], nn.Module]


def member_seed(generator: torch.Generator) -> int:
    """The global-RNG seed of one member, drawn from its initialisation stream."""
    return int(torch.randint(2**62, (1,), generator=generator))


def build_member(factory: Factory, spec: dict, shapes: dict, generator, dtype) -> nn.Module:
    """One plain member, initialised from `generator` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(member_seed(generator))
        return factory(spec, shapes).to(dtype)


class VmappedModule(nn.Module):
    """S copies of one plain module, batched by ``vmap``; u (S, n, m) -> (S, n, q).

    Parameters
    ----------
    members : list of nn.Module
        S modules of the same structure (their parameters and buffers are copied).
    shapes : dict
        The data's ``sensors`` and ``y_dim`` (for the FLOP count).
    """

    def __init__(self, members: list[nn.Module], shapes: dict):
        super().__init__()
        params, buffers = stack_module_state(members)  # name -> (S, ...)
        self.names = tuple(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach()) for n in self.names)
        # buffers under flat names (a buffer's name cannot hold dots); (S, ...) each
        self.buffer_names = tuple(buffers)
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"member_buffer_{i}", buffers[name].detach().clone())
        # one member's structure, without data; a tuple so that it is no submodule
        self._template = (copy.deepcopy(members[0]).to("meta"),)
        self.shapes = dict(shapes)
        self._flops: dict[tuple, int] = {}

    @property
    def template(self) -> nn.Module:
        return self._template[0]

    def state(self) -> dict[str, torch.Tensor]:
        """Every member's parameters and buffers by the plain module's names, (S, ...)."""
        params = dict(zip(self.names, self.stacked, strict=True))
        buffers = {
            name: getattr(self, f"member_buffer_{i}") for i, name in enumerate(self.buffer_names)
        }
        return params | buffers

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """u (S, n, m) and y (q, d) shared or (S, n, q, d) per function -> (S, n, q)."""

        def one(state, u_i, y_i):  # one member: u_i (n, m) -> (n, q)
            return functional_call(self.template, state, (u_i, y_i))

        y_dim = None if y.dim() == 2 else 0
        return vmap(one, in_dims=(0, 0, y_dim))(self.state(), u, y)

    def member(self, i: int) -> nn.Module:
        """Member i as a plain module (a copy of its weights, on their device)."""
        device = self.stacked[0].device
        module = copy.deepcopy(self.template).to_empty(device=device)
        module.load_state_dict({n: t[i].detach().clone() for n, t in self.state().items()})
        return module

    def flops(self, n: int, q: int, aligned: bool = True) -> int:
        """Forward FLOPs of one member on n functions at q query points each.

        Counted once per shape by ``FlopCounterMode`` on the meta device (see the module
        docstring for what it counts).
        """
        key = (n, q, aligned)
        if key not in self._flops:
            dtype = self.stacked[0].dtype
            u = torch.zeros(n, self.shapes["sensors"], dtype=dtype, device="meta")
            y_shape = (q, self.shapes["y_dim"]) if aligned else (n, q, self.shapes["y_dim"])
            y = torch.zeros(y_shape, dtype=dtype, device="meta")
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                self.template(u, y)
            self._flops[key] = int(counter.get_total_flops())
        return self._flops[key]


def vmapped(factory: Factory) -> Callable:
    """The model builder ``(spec, shapes, generators, dtype) -> VmappedModule`` of a factory.

    Parameters
    ----------
    factory : callable
        ``(spec, shapes) -> nn.Module``: one plain model from the study's ``model``
        section and the data's shapes (``sensors``, ``y_dim``, ``queries``), whose
        forward maps u (n, sensors) and y ((q, y_dim) or (n, q, y_dim)) to (n, q).

    Returns
    -------
    callable
        A builder to register as a model (``opscale.models.MODELS`` or an entry point of
        the group ``opscale.models``).
    """

    def build(spec: dict, shapes: dict, generators, dtype) -> VmappedModule:
        members = [build_member(factory, spec, shapes, g, dtype) for g in generators]
        return VmappedModule(members, shapes)

    build.factory = factory
    build.__name__ = getattr(factory, "__name__", "build")
    build.__doc__ = f"``vmapped`` builder of ``{build.__name__}``: {factory.__doc__ or ''}"
    return build
