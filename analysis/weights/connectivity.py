"""Linear mode connectivity: loss and accuracy along the straight line between two networks.

The path is θ(λ) = (1−λ)θ_A + λθ_B for λ in [0, 1] (Frankle et al. 2020; after weight
matching, θ_B is B permuted, π(θ_B), as in Ainsworth et al. 2023). The **barrier** of a curve
f(λ) is its largest rise above the straight line between its endpoints (Entezari et al. 2022;
Ainsworth et al. 2023):

    loss barrier     = max_λ  L(λ) − [(1−λ) L(0) + λ L(1)]
    accuracy barrier = max_λ  [(1−λ) A(0) + λ A(1)] − A(λ)

over the λ evaluated (0 and 1 among them), so both are ≥ 0, zero when the curve never rises
above (for accuracy: never dips below) the chord, and in the curve's units (nats, fraction of
samples). Two networks are linearly mode connected when the barrier is about zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.errors import InputError
from analysis.models.architectures import StateDict, build_from_state_dict

LAMBDAS = np.linspace(0.0, 1.0, 11)

Evaluate = Callable[[StateDict], tuple[float, float]]
"""A state dict's (loss, accuracy) on a fixed labelled data set."""


def interpolate(state_a: StateDict, state_b: StateDict, lam: float) -> dict[str, torch.Tensor]:
    """θ(λ) = (1−λ)θ_A + λθ_B, parameter by parameter, in each parameter's dtype; λ = 0 gives
    θ_A and λ = 1 gives θ_B bit for bit. Tensors that are not floating point (counters of a
    batch norm) must be equal in both and are kept."""
    if set(state_a) != set(state_b):
        raise InputError(
            "the two models have different parameters: "
            f"{', '.join(sorted(set(state_a) ^ set(state_b)))}"
        )
    out = {}
    for name, wa in state_a.items():
        wb = state_b[name]
        if wa.shape != wb.shape:
            raise InputError(
                f"parameter {name!r} has shape {tuple(wa.shape)} in A, {tuple(wb.shape)} in B"
            )
        if not wa.is_floating_point():
            if not torch.equal(wa, wb):
                raise InputError(f"{name!r} is not a floating-point tensor and differs in A and B")
            out[name] = wa
        else:
            out[name] = (1.0 - lam) * wa.detach() + lam * wb.detach().to(wa.dtype)
    return out


def barrier(lambdas: np.ndarray, values: np.ndarray, higher_is_better: bool = False) -> float:
    """The barrier of the curve ``values`` over ``lambdas`` (see the module): the largest rise of
    a loss above its chord, or, with ``higher_is_better``, the largest dip of an accuracy below
    it. ``lambdas`` must increase from 0 to 1."""
    lambdas = _check_lambdas(lambdas)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != lambdas.shape:
        raise InputError(f"{len(lambdas)} values of λ but {values.size} values of the curve")
    if not np.all(np.isfinite(values)):
        bad = lambdas[~np.isfinite(values)]
        raise InputError(f"the curve is not finite at λ = {', '.join(f'{v:g}' for v in bad)}")
    # f(λ) − chord(λ) in a form that is exactly 0 at λ = 0 and 1 and for a constant curve
    rise = (values - values[0]) - lambdas * (values[-1] - values[0])
    return float(-rise.min() if higher_is_better else rise.max())


def _check_lambdas(lambdas: np.ndarray) -> np.ndarray:
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if (
        lambdas.ndim != 1
        or len(lambdas) < 2
        or lambdas[0] != 0.0
        or lambdas[-1] != 1.0
        or np.any(np.diff(lambdas) <= 0)
    ):
        raise InputError("the values of λ must increase from 0 to 1 (both included)")
    return lambdas


@dataclass
class ConnectivityCurve:
    """Loss and accuracy at each λ of the path from A (λ = 0) to B (λ = 1)."""

    lambdas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray

    @property
    def loss_barrier(self) -> float:
        return barrier(self.lambdas, self.loss)

    @property
    def accuracy_barrier(self) -> float:
        return barrier(self.lambdas, self.accuracy, higher_is_better=True)


def linear_path(
    state_a: StateDict,
    state_b: StateDict,
    evaluate: Evaluate,
    lambdas: np.ndarray = LAMBDAS,
) -> ConnectivityCurve:
    """``evaluate`` (loss, accuracy) at θ(λ) = (1−λ)θ_A + λθ_B for each of ``lambdas`` (from 0
    to 1); the endpoints are A and B themselves (:func:`interpolate`)."""
    lambdas = _check_lambdas(lambdas)
    results = [evaluate(interpolate(state_a, state_b, float(lam))) for lam in lambdas]
    loss, accuracy = (np.array(column, dtype=np.float64) for column in zip(*results, strict=True))
    return ConnectivityCurve(lambdas, loss, accuracy)


def evaluate_classifier(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """``(mean cross-entropy in nats, accuracy)`` of ``model``'s logits (n × classes) on inputs
    ``x`` (n × …) against integer ``labels`` (n,), in eval mode; cross-entropy summed in
    float64. A tie in the logits counts the lowest class as predicted."""
    parameter = next(model.parameters())
    x = torch.as_tensor(x).to(device=parameter.device, dtype=parameter.dtype)
    y = torch.as_tensor(labels).to(device=parameter.device, dtype=torch.long)
    if x.shape[0] != y.shape[0] or y.ndim != 1 or len(y) == 0:
        raise InputError(f"{x.shape[0]} samples but labels of shape {tuple(y.shape)}")
    model.eval()
    loss = 0.0
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size])
            yb = y[start : start + batch_size]
            if logits.ndim != 2 or int(yb.min()) < 0 or int(yb.max()) >= logits.shape[1]:
                raise InputError(
                    f"the model's outputs of shape {tuple(logits.shape)} are not logits over the "
                    f"labels 0 … {int(y.max())}"
                )
            loss += float(F.cross_entropy(logits.double(), yb, reduction="sum"))
            correct += int((logits.argmax(dim=1) == yb).sum())
    return loss / len(y), correct / len(y)


def classifier_evaluator(
    architecture: str,
    x: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    batch_size: int = 1024,
) -> Evaluate:
    """An :data:`Evaluate` for state dicts of the built-in ``architecture``: the model built
    from the state dict (:func:`~analysis.models.architectures.build_from_state_dict`), scored
    by :func:`evaluate_classifier` on ``(x, labels)``."""

    def evaluate(state: StateDict) -> tuple[float, float]:
        model = build_from_state_dict(architecture, state)
        return evaluate_classifier(model, x, labels, batch_size)

    return evaluate
