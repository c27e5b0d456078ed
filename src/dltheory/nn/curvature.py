"""The loss curvature of a model: the largest eigenvalue of the Hessian of a loss with respect to the
parameters, by power iteration on Hessian-vector products (Pearlmutter 1994: ``H v`` is the gradient of
``<grad L, v>``, one double-backward pass; the Hessian is never formed).

Why it matters: gradient descent with step ``eta`` on a quadratic with curvature ``lambda`` is stable only
for ``eta lambda < 2``; with heavy-ball momentum ``beta`` the limit is ``eta lambda < 2 (1 + beta)``
(Polyak 1964). :func:`stable_learning_rate` turns the measured ``lambda_max`` into that limit, so that
networks of different depth and initialisation can be trained at the same fraction of their own limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dltheory.core.validation import check_int, check_positive


@dataclass(frozen=True)
class CurvatureEstimate:
    """Largest Hessian eigenvalue and how it was obtained.

    Attributes:
        lambda_max: largest (algebraic) eigenvalue of the Hessian of the loss.
        iterations: Hessian-vector products used (both phases of the shifted iteration included).
        converged: whether the Rayleigh quotient settled to the relative tolerance.
    """

    lambda_max: float
    iterations: int
    converged: bool


def _normalise(vectors: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = torch.sqrt(sum((v.square().sum() for v in vectors), torch.zeros(())))
    return [v / norm for v in vectors]


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b, strict=True)))


def _power_iteration(
    hvp: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    start: list[torch.Tensor],
    shift: float,
    iterations: int,
    rtol: float,
) -> tuple[float, int, bool]:
    """Power iteration on ``H - shift I``; returns the Rayleigh quotient of ``H`` at the final vector."""
    v = _normalise(start)
    previous = float("nan")
    for k in range(1, iterations + 1):
        hv = hvp(v)
        rayleigh = _dot(v, hv)
        if abs(rayleigh - previous) <= rtol * abs(rayleigh):
            return rayleigh, k, True
        previous = rayleigh
        v = _normalise([h - shift * x for h, x in zip(hv, v, strict=True)])
    return previous, iterations, False


def top_hessian_eigenvalue(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    iterations: int = 50,
    rtol: float = 1e-3,
    seed: int = 0,
) -> CurvatureEstimate:
    """Largest algebraic eigenvalue of the Hessian of ``loss_fn(model(inputs), targets)`` with respect to
    the model's trainable parameters.

    Power iteration finds the eigenvalue of largest magnitude. Away from a minimum the Hessian can have a
    negative eigenvalue of larger magnitude than the top positive one; the iteration is then repeated on
    ``H - mu I`` (``mu`` that negative eigenvalue), whose dominant eigenvalue is ``lambda_max - mu``.

    Args:
        model: the network (its parameters' ``requires_grad`` select the parameters).
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar.
        inputs: the batch the loss is evaluated on.
        targets: the batch's targets, as ``loss_fn`` takes them.
        iterations: maximum Hessian-vector products per phase, >= 1.
        rtol: stop when the Rayleigh quotient changes by less than this fraction, > 0.
        seed: seed of the random starting vector.

    Returns:
        a :class:`CurvatureEstimate`.

    Examples:
        >>> torch.manual_seed(0) is not None
        True
        >>> model = nn.Linear(3, 1, bias=False)
        >>> x = torch.eye(3) * torch.tensor([[1.0], [2.0], [3.0]])  # loss sum_i (w_i x_ii - y_i)^2 / 3
        >>> est = top_hessian_eigenvalue(model, nn.functional.mse_loss, x, torch.zeros(3, 1))
        >>> round(est.lambda_max, 3)  # 2 * 3^2 / 3
        6.0
    """
    check_int("iterations", iterations, minimum=1)
    check_positive("rtol", rtol)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad=True); nothing to differentiate")
    loss = loss_fn(model(inputs), targets)
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        out = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        return [o.detach() for o in out]

    generator = torch.Generator().manual_seed(seed)
    start = [torch.randn(p.shape, generator=generator).to(p) for p in params]
    dominant, used, converged = _power_iteration(hvp, start, 0.0, iterations, rtol)
    if dominant >= 0:
        return CurvatureEstimate(dominant, used, converged)
    top, more, converged = _power_iteration(hvp, start, dominant, iterations, rtol)
    return CurvatureEstimate(top, used + more, converged)


def stable_learning_rate(lambda_max: float, momentum: float = 0.0) -> float:
    """The largest stable step of heavy-ball gradient descent on a quadratic of curvature ``lambda_max``:
    ``eta < 2 (1 + beta) / lambda_max`` (Polyak 1964; ``beta = 0`` is plain gradient descent).

    Examples:
        >>> stable_learning_rate(4.0)
        0.5
        >>> round(stable_learning_rate(4.0, momentum=0.9), 6)
        0.95
    """
    check_positive("lambda_max", lambda_max)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum!r} must be in [0, 1)")
    return 2.0 * (1.0 + momentum) / lambda_max
