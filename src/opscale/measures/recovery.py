"""Local linear recovery: tangent-space ranks at the teacher and whether training identified it.

Zhang et al. 2024 (arXiv 2406.18035): at a parameter point theta* that realises the target,
the target is *locally linearly* recoverable from n samples when the n x M Jacobian
d f(x_i; theta*) / d theta on the n training inputs has the rank of the model's tangent
space at theta*, r* (then the training data pin down every direction in which the function
can move). For a two-layer tanh teacher with k neurons in d dimensions (no bias) embedded
into a student of width m >= k, r* = k(d+1) whatever m (of the student's m(d+1)
parameters), so recovery needs n >= k(d+1): the optimistic sample size. This measure
computes, per member, in float64:

- ``rank_train_embedding``: the numerical rank of the Jacobian on the member's own n
  training inputs at the teacher's embeddings (``EMBEDDINGS``: ``null``, the other m - k
  neurons a = 0, w = 0, their columns vanish; ``split``, the teacher's neurons copied
  round-robin into all m with a_j divided among the copies, whose columns are parallel).
  Theory: min(n, k(d+1)) for generic inputs; it equals k(d+1) iff n >= k(d+1). This is
  the paper's condition;
- ``rank_embedding``: the same rank on P probe inputs x ~ N(0, I_d)
  (``numpy_rng(seed, "recovery", "probes")``), P >> k(d+1): the model's tangent rank r*
  itself. It is k(d+1) by construction (an identity of the embeddings, a check of the
  Jacobian code, not evidence for the theory);
- ``rank_init``, ``rank_trained``: the probe rank at initialisation and at the trained
  (reported) state (a generic point: up to m(d+1));
- ``test_rel_mse``: mean (f - f*)^2 / Var(f*) over the test inputs at the trained state;
- the *polished* state: ``polish`` Levenberg-Marquardt iterations on the member's
  training MSE (its n training inputs only, float64) from its trained state. Adam stops
  at an approximate minimum (relative error ~1e-5 after thousands of steps); Gauss-Newton
  steps from there converge to the nearby exact one, so a tolerance of 1e-8 can tell
  identification from approximation. The polish cannot identify a teacher the data do
  not determine: with n < k(d+1) it interpolates the n points with the interpolant
  nearest the trained state, which in general is not the teacher. The student itself is
  left as trained; ``train_rel_mse_polished`` and ``test_rel_mse_polished`` are the
  polished state's errors (both relative to Var(f*) on the test inputs);
- ``recovered``: 1 when ``test_rel_mse_polished`` < ``tolerance`` (with ``polish: 0``:
  the trained state's error);
- k(d+1) and m(d+1), the theory's rank and the student's parameter count.

Only for ``model.name: two_layer`` on ``problem.name: tanh_teacher``.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from opscale import cube
from opscale.models.two_layer import jacobian, outputs
from opscale.problems.teacher import teacher_of
from opscale.rng import numpy_rng
from opscale.schema import MEMBER, Variable

DTYPE = torch.float64  # ranks and exact recovery need it: float32 blurs values below ~1e-7


class Recovery:
    """The ``recovery`` measure (see the module docstring).

    Parameters
    ----------
    options : dict
        ``probes``, ``rtol``, ``tolerance`` and ``polish``: the resolved
        ``measure.recovery`` section (schema defaults filled in at validation).
    spec : dict
        The point's resolved spec (teacher ``problem.neurons``/``dim``, ``model.width``).
    members : opscale.train.Members
        Seeds (each seed's teacher and probes) and training-set sizes of the job's members.
    """

    def __init__(self, options: dict, spec: dict, members):
        _check(spec)
        self.options, self.members = options, members
        self.k, self.d = spec["problem"]["neurons"], spec["problem"]["dim"]
        self.m = spec["model"]["width"]
        self.teachers = [teacher_of(spec["problem"], int(seed)) for seed in members.seed]
        self.start_ranks: dict[str, np.ndarray] = {}

    def start(self, model, data: dict) -> None:
        """Ranks at initialisation and at the teacher's embeddings (probes, training inputs)."""
        probes = self.probes(data["train"].u.device)
        x, mask = self.training_inputs(data["train"])
        rtol = self.options["rtol"]
        embedded = {name: self.embedded(name, x.device) for name in EMBEDDINGS}
        self.start_ranks = {
            "init": rank(jacobian(_params(model), probes), rtol),
            "probes": np.stack(
                [rank(jacobian(p, probes), rtol) for p in embedded.values()], axis=1
            ),
            "train": np.stack(
                [rank(jacobian(p, x) * mask[..., None], rtol) for p in embedded.values()],
                axis=1,
            ),
        }

    def finish(self, model, data: dict) -> xr.Dataset:
        """Every variable of the measure, on ``member`` (and ``embedding``)."""
        trained = _params(model)
        x, mask = self.training_inputs(data["train"])
        target = data["train"].s[..., 0].to(DTYPE) * mask
        polished = polish(trained, x, target, mask, self.options["polish"])
        test = data["test"]
        scale = _variance(test)
        residual = (outputs(polished, x) - target) * mask
        train_error = residual.square().sum(1) / mask.sum(1) / scale
        error = relative_mse(polished, test)
        S = len(self.members)
        return cube.dataset(
            {
                "rank_train_embedding": self.start_ranks["train"],
                "rank_embedding": self.start_ranks["probes"],
                "rank_init": self.start_ranks["init"],
                "rank_trained": rank(
                    jacobian(trained, self.probes(x.device)), self.options["rtol"]
                ),
                "test_rel_mse": relative_mse(trained, test),
                "train_rel_mse_polished": train_error.cpu().numpy(),
                "test_rel_mse_polished": error,
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

    def training_inputs(self, split) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's training inputs (S, N, d) and its mask (S, N): 1 on its first n_i.

        The split holds the first N = max n_i of the seed's training inputs; member i
        trains on its first n_i, so the rows beyond are masked out (a zero row changes
        neither a rank nor a sum of squares).
        """
        x = split.u.to(DTYPE)
        n = torch.as_tensor(self.members.n_train, device=x.device)
        mask = (torch.arange(x.shape[1], device=x.device) < n[:, None]).to(DTYPE)
        return x, mask

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


# ---------------------------------------------------------------------------- tangents
def rank(jac: torch.Tensor, rtol: float) -> np.ndarray:
    """Numerical rank of each member's matrix (S, P, N): singular values > rtol * largest."""
    values = torch.linalg.svdvals(jac)  # (S, min(P, N)), descending
    return (values > rtol * values[:, :1]).sum(dim=1).cpu().numpy()


def polish(params: dict, x, target, mask, iterations: int) -> dict[str, torch.Tensor]:
    """Levenberg-Marquardt on each member's sum of squared residuals on its inputs.

    Residuals r = mask * (f(x; theta) - target), (S, N). Each iteration takes the damped
    Gauss-Newton step (J^T J + mu I)^-1 J^T r, computed as J^T (J J^T + mu I)^-1 r (the
    same vector; an N x N system, N <= the largest n, instead of M x M), with
    mu = lambda_i ||J||_F^2, and keeps it only where it lowers that member's loss
    (lambda_i / 10, else lambda_i * 4, within [1e-15, 1e8]). The damping keeps the
    rank-deficient systems solvable (the student's flat directions at the teacher, and
    the masked rows). Returns the polished parameters.
    """
    theta, shapes = _flat(params), {name: p.shape[1:] for name, p in params.items()}

    def residuals(flat):
        return (outputs(_unflat(flat, shapes), x) - target) * mask

    r = residuals(theta)
    loss = r.square().sum(1)
    damping = torch.full_like(loss, 1e-3)
    eye = torch.eye(x.shape[1], dtype=theta.dtype, device=theta.device)
    for _ in range(iterations):
        jac = jacobian(_unflat(theta, shapes), x) * mask[..., None]  # (S, N, M)
        gram = jac @ jac.transpose(1, 2)  # (S, N, N)
        mu = damping * gram.diagonal(dim1=1, dim2=2).sum(1).clamp_min(1e-300)
        factor, info = torch.linalg.cholesky_ex(gram + mu[:, None, None] * eye)
        step = -(jac.transpose(1, 2) @ torch.cholesky_solve(r.unsqueeze(-1), factor))[..., 0]
        trial = theta + step
        trial_r = residuals(trial)
        trial_loss = trial_r.square().sum(1)
        better = (info == 0) & torch.isfinite(trial_loss) & (trial_loss < loss)
        theta = torch.where(better[:, None], trial, theta)
        r = torch.where(better[:, None], trial_r, r)
        loss = torch.where(better, trial_loss, loss)
        damping = torch.where(better, damping / 10, damping * 4).clamp(1e-15, 1e8)
    return _unflat(theta, shapes)


def _flat(params: dict) -> torch.Tensor:
    """Parameters name -> (S, ...) as one (S, M) matrix, in the order of `params`."""
    return torch.cat([p.flatten(start_dim=1) for p in params.values()], dim=1)


def _unflat(flat: torch.Tensor, shapes: dict) -> dict[str, torch.Tensor]:
    """The inverse of ``_flat``: (S, M) -> name -> (S, *shape)."""
    sizes = [int(np.prod(shape)) for shape in shapes.values()]
    parts = torch.split(flat, sizes, dim=1)
    return {
        name: part.reshape(-1, *shape)
        for (name, shape), part in zip(shapes.items(), parts, strict=True)
    }


@torch.no_grad()
def relative_mse(params: dict, split) -> np.ndarray:
    """Mean squared error over the split at `params` / the variance of its targets, (S,)."""
    error = (outputs(params, split.u.to(DTYPE)) - split.s[..., 0].to(DTYPE)).square()
    return (error.mean(dim=1) / _variance(split)).cpu().numpy()


def _variance(split) -> torch.Tensor:
    """Var(f*) of each member, estimated on the split's targets (S,)."""
    return split.s[..., 0].to(DTYPE).var(dim=1, unbiased=False)


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
    "rank_train_embedding": Variable(
        (*MEMBER, "embedding"),
        "numerical rank of the parameter Jacobian on the training inputs at the teacher's "
        "embedding",
        "1",
    ),
    "rank_embedding": Variable(
        (*MEMBER, "embedding"),
        "numerical rank of the parameter Jacobian on the probes at the teacher's embedding "
        "(the model's tangent rank)",
        "1",
    ),
    "rank_init": Variable(
        MEMBER, "numerical rank of the parameter Jacobian on the probes at initialisation", "1"
    ),
    "rank_trained": Variable(
        MEMBER, "numerical rank of the parameter Jacobian on the probes at the trained state", "1"
    ),
    "test_rel_mse": Variable(
        MEMBER, "test mean squared error / variance of the target, trained state", "1"
    ),
    "train_rel_mse_polished": Variable(
        MEMBER, "training mean squared error / variance of the target, polished state", "1"
    ),
    "test_rel_mse_polished": Variable(
        MEMBER, "test mean squared error / variance of the target, polished state", "1"
    ),
    "recovered": Variable(
        MEMBER, "1 if the polished test relative MSE is below measure.recovery.tolerance", "1"
    ),
    "teacher_rank": Variable(MEMBER, "k(d+1): the theory's tangent rank at the teacher", "1"),
    "student_params": Variable(MEMBER, "m(d+1): parameters of the student", "1"),
    "embedding": Variable(
        ("embedding",), "embedding of the teacher into the student (null or split)", "1", coord=True
    ),
}
