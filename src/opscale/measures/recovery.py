"""Local linear recovery: tangent-space rank at the teacher and whether training recovered it.

Zhang et al. 2024 (arXiv 2406.18035): at a parameter point theta that realises the target,
the rank of the Jacobian d f(x; theta) / d theta over the inputs bounds how many samples
local recovery needs. A two-layer tanh teacher with k neurons in d dimensions (no bias)
embedded into a student of width m >= k has rank exactly k(d+1), whatever m (of the
student's m(d+1) parameters). This measure computes, per member, in float64:

- the numerical rank of the student's parameter Jacobian on P probe points
  x ~ N(0, I_d) (``numpy_rng(seed, "recovery", "probes")``, the same for every member of
  a seed): singular values above ``rtol`` times the largest. At two embeddings of the
  seed's teacher (``EMBEDDINGS``): ``null`` (the other m - k neurons with a = 0, w = 0:
  their columns vanish) and ``split`` (the teacher's neurons copied round-robin into all
  m, each a_j divided among its copies: the paper's splitting embedding, whose copies'
  columns are parallel); at initialisation; and at the trained (reported) state;
- the test relative MSE, mean (f - f*)^2 / Var(f*) over the test inputs, and the
  recovery flag: relative MSE below ``tolerance``;
- k(d+1) and m(d+1), the theory's rank and the student's parameter count.

Only for ``model.name: two_layer`` on ``problem.name: tanh_teacher``.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from torch.func import functional_call, jacrev, vmap

from opscale import cube
from opscale.problems.teacher import teacher_of
from opscale.rng import numpy_rng
from opscale.schema import MEMBER, Variable

DTYPE = torch.float64  # ranks need the precision: float32 blurs singular values below ~1e-7


class Recovery:
    """The ``recovery`` measure (see the module docstring).

    Parameters
    ----------
    options : dict
        ``probes``, ``rtol`` and ``tolerance``: the resolved ``measure.recovery`` section
        (schema defaults filled in at validation).
    spec : dict
        The point's resolved spec (teacher ``problem.neurons``/``dim``, ``model.width``).
    members : opscale.train.Members
        Seeds of the job's members (each seed's teacher and probes).
    """

    def __init__(self, options: dict, spec: dict, members):
        _check(spec)
        self.options, self.members = options, members
        self.k, self.d = spec["problem"]["neurons"], spec["problem"]["dim"]
        self.m = spec["model"]["width"]
        self.teachers = [teacher_of(spec["problem"], int(seed)) for seed in members.seed]
        self.start_ranks: dict[str, np.ndarray] = {}

    def start(self, model, data: dict) -> None:
        """Ranks at initialisation and at the teacher's embeddings, (S,) each."""
        y = data["train"].y.to(DTYPE)
        probes = self.probes(y.device)
        self.start_ranks = {
            "init": rank(jacobian(model, _params(model), probes, y), self.options["rtol"]),
            **{
                name: rank(
                    jacobian(model, self.embedded(name, y.device), probes, y), self.options["rtol"]
                )
                for name in EMBEDDINGS
            },
        }

    def finish(self, model, data: dict) -> xr.Dataset:
        """Every variable of the measure, on ``member`` (and ``embedding``)."""
        y = data["train"].y.to(DTYPE)
        probes = self.probes(y.device)
        trained = rank(jacobian(model, _params(model), probes, y), self.options["rtol"])
        error = relative_mse(model, data["test"])
        S = len(self.members)
        return cube.dataset(
            {
                "rank_embedding": np.stack([self.start_ranks[e] for e in EMBEDDINGS], axis=1),
                "rank_init": self.start_ranks["init"],
                "rank_trained": trained,
                "test_rel_mse": error,
                "recovered": (error < self.options["tolerance"]).astype("int8"),
                "teacher_rank": np.full(S, self.k * (self.d + 1)),
                "student_params": np.full(S, self.m * (self.d + 1)),
                "embedding": list(EMBEDDINGS),
            },
            VARIABLES,
        )

    def probes(self, device="cpu") -> torch.Tensor:
        """P probe inputs of each member's seed, (S, P, d) float64."""
        P = self.options["probes"]
        x = [
            numpy_rng(int(s), "recovery", "probes").standard_normal((P, self.d))
            for s in self.members.seed
        ]
        return torch.as_tensor(np.stack(x), dtype=DTYPE, device=device)

    def embedded(self, name: str, device="cpu") -> dict[str, torch.Tensor]:
        """The student parameters {w (S, m, d), a (S, m)} of embedding `name` of each teacher."""
        pairs = [EMBEDDINGS[name](w, a, self.m) for w, a in self.teachers]
        return {
            "w": torch.as_tensor(np.stack([w for w, _ in pairs]), dtype=DTYPE, device=device),
            "a": torch.as_tensor(np.stack([a for _, a in pairs]), dtype=DTYPE, device=device),
        }


def null_embedding(w: np.ndarray, a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Teacher (w (k, d), a (k,)) in a width-m student: the other neurons a = 0, w = 0."""
    k, d = w.shape
    return np.concatenate([w, np.zeros((m - k, d))]), np.concatenate([a, np.zeros(m - k)])


def split_embedding(w: np.ndarray, a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Student neuron i copies teacher neuron i mod k, with a_j shared among its copies."""
    k = len(a)
    source = np.arange(m) % k
    copies = np.bincount(source, minlength=k)
    return w[source], a[source] / copies[source]


EMBEDDINGS = {"null": null_embedding, "split": split_embedding}


def jacobian(model, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's Jacobian of its outputs on its inputs x (S, P, d): (S, P, parameters).

    `params` maps the model's parameter names to (S, ...) tensors; the model is called
    functionally on one member at a time (vmapped), so any batched model works.
    """

    def one(member_params, member_x):
        batched = {name: p.unsqueeze(0) for name, p in member_params.items()}
        return functional_call(model, batched, (member_x.unsqueeze(0), y))[0, :, 0]  # (P,)

    columns = vmap(jacrev(one))(params, x)  # name -> (S, P, *shape)
    return torch.cat([c.flatten(start_dim=2) for c in columns.values()], dim=2)


def rank(jac: torch.Tensor, rtol: float) -> np.ndarray:
    """Numerical rank of each member's matrix (S, P, N): singular values > rtol * largest."""
    values = torch.linalg.svdvals(jac)  # (S, min(P, N)), descending
    return (values > rtol * values[:, :1]).sum(dim=1).cpu().numpy()


@torch.no_grad()
def relative_mse(model, split) -> np.ndarray:
    """Mean squared error over the split divided by the variance of its targets, (S,)."""
    u, y, s = split
    error = (model(u, y) - s).square().mean(dim=(1, 2))
    return (error / s.var(dim=(1, 2), unbiased=False)).double().cpu().numpy()


def _params(model) -> dict[str, torch.Tensor]:
    """The model's parameters (S, ...) as float64 tensors, detached."""
    return {name: p.detach().to(DTYPE) for name, p in model.named_parameters()}


def _check(spec: dict) -> None:
    """Refuse settings the measure cannot handle, naming the config key."""
    if spec["model"]["name"] != "two_layer" or spec["problem"]["name"] != "tanh_teacher":
        raise ValueError(
            "measure.recovery needs model.name two_layer and problem.name tanh_teacher, got "
            f"{spec['model']['name']!r} and {spec['problem']['name']!r}"
        )
    k, m = spec["problem"]["neurons"], spec["model"]["width"]
    if m < k:
        raise ValueError(f"measure.recovery: model.width = {m} < problem.neurons = {k}")


VARIABLES = {
    "rank_embedding": Variable(
        (*MEMBER, "embedding"),
        "numerical rank of the parameter Jacobian at the teacher's embedding",
        "1",
    ),
    "rank_init": Variable(
        MEMBER, "numerical rank of the parameter Jacobian at initialisation", "1"
    ),
    "rank_trained": Variable(
        MEMBER, "numerical rank of the parameter Jacobian at the trained state", "1"
    ),
    "test_rel_mse": Variable(MEMBER, "test mean squared error / variance of the target", "1"),
    "recovered": Variable(
        MEMBER, "1 if the test relative MSE is below measure.recovery.tolerance", "1"
    ),
    "teacher_rank": Variable(MEMBER, "k(d+1): the theory's tangent rank at the teacher", "1"),
    "student_params": Variable(MEMBER, "m(d+1): parameters of the student", "1"),
    "embedding": Variable(
        ("embedding",), "embedding of the teacher into the student (null or split)", "1", coord=True
    ),
}
