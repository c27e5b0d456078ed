"""Singular values of a network's input-output Jacobian, exact or matrix-free.

``J = d model(x) / d x`` (flattened output by flattened input) at one input ``x``. Its squared singular
values are the eigenvalues of ``J^T J`` (or ``J J^T``, whichever is smaller), the quantity that dynamical
isometry (Pennington, Schoenholz & Ganguli 2017; Xiao et al. 2018) asks to concentrate near 1; the theory
they are compared with is :mod:`dltheory.signalprop.spectrum`.

- exact: the full Jacobian by ``torch.func.jacrev`` (or ``jacfwd`` when the input is the smaller side),
  then an SVD in float64. Cost: min(n_in, n_out) backward (or forward-mode) passes plus O(n^3).
- Lanczos: the Lanczos iteration with full reorthogonalisation (Golub & Van Loan, "Matrix Computations",
  section 10.1) on the Gram operator ``v -> J^T (J v)`` applied matrix-free with reverse-mode products on
  one cached graph (``J v`` by the double-backward trick, see :class:`_GramOperator`; or
  ``v -> J (J^T v)`` when the output is smaller), stopped when the Ritz
  values of both ends have residual bounds ``beta_m |s_mi| <= tol * theta_max``. Cost: two passes per
  step plus O(m n) for the reorthogonalisation, no O(n^3) SVD, so it is the method for the extreme
  singular values of wide or very deep networks. Accuracy is absolute, relative to the largest squared
  singular value (and limited by the model's dtype): small singular values of an ill-conditioned
  Jacobian come out as ~0, not to relative precision.
- Hutchinson: the bulk moments ``mean(s^2)`` and ``mean(s^4)`` from random probes
  ``E|J v|^2 = tr(J^T J)``, ``E|J^T J v|^2 = tr((J^T J)^2)`` (:func:`jacobian_moments`).

The exact method needs ``torch.func`` transforms (vmap), the matrix-free ones double backward; every
built-in layer supports both.
Pass one example (e.g. ``x[:1]``): a batch gives the block-diagonal Jacobian of the batch.
The model is called as it is (put it in ``eval()`` mode if it has dropout or batch statistics).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import nn

from dltheory.core.validation import check_choice, check_int, check_positive

METHODS = ("auto", "exact", "lanczos")
WHICH = ("both", "largest", "smallest")
#: ``method="auto"`` computes the full Jacobian when its smaller side is at most this size
EXACT_MAX_SIZE = 1024

Flat = Callable[[torch.Tensor], torch.Tensor]


def _flat_function(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Flat:
    shape = x.shape

    def f(v: torch.Tensor) -> torch.Tensor:
        return model(v.reshape(shape)).reshape(-1)

    return f


def _check_input(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (one input of the model), got {type(x).__name__}")
    if x.numel() == 0 or not x.is_floating_point():
        raise ValueError(
            f"x must be a non-empty floating-point tensor, got shape {tuple(x.shape)} dtype {x.dtype}"
        )
    return x.detach().reshape(-1)


def full_jacobian(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian ``(n_out, n_in)`` of the flattened output with respect to the flattened input at
    ``x``, by reverse mode (``torch.func.jacrev``) when ``n_out <= n_in`` and forward mode otherwise."""
    flat = _check_input(x)
    f = _flat_function(model, x)
    with torch.no_grad():
        n_out = f(flat).numel()
    transform = torch.func.jacrev if n_out <= flat.numel() else torch.func.jacfwd
    return transform(f)(flat).detach()


class _GramOperator:
    """``v -> J^T J v`` (``side="input"``) or ``v -> J J^T v`` (``side="output"``), matrix-free.

    One forward pass builds the graph of ``out``; ``u -> J^T u`` is a backward pass through it, and
    ``v -> J v`` the backward pass of the (linear in u) graph of ``J^T u`` with respect to u (the
    "double-backward trick"). In torch 2.13 on CPU this costs about one backward pass per product, where
    ``torch.func.jvp`` (forward mode, re-running the forward) measured about 5x more.
    """

    def __init__(self, f: Flat, x: torch.Tensor):
        self.x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            self.out = f(self.x)
            self.cotangent = torch.zeros_like(self.out, requires_grad=True)
            (self.transposed,) = torch.autograd.grad(self.out, self.x, self.cotangent, create_graph=True)
        self.n_in, self.n_out = self.x.numel(), self.out.numel()
        self.side = "input" if self.n_in <= self.n_out else "output"
        self.size = min(self.n_in, self.n_out)
        self.passes = 0

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return torch.autograd.grad(self.transposed, self.cotangent, v, retain_graph=True)[0]

    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return torch.autograd.grad(self.out, self.x, u, retain_graph=True)[0]

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        if self.side == "input":
            return self.vjp(self.jvp(v))
        return self.jvp(self.vjp(v))


def jacobian_singular_values(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    k: int | None = None,
    *,
    which: str = "both",
    method: str = "auto",
    tol: float = 1e-10,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Singular values (float64, descending) of the input-output Jacobian of ``model`` at ``x``.

    ``k=None``: all ``min(n_in, n_out)`` singular values (exact). ``k`` given: the ``k`` largest
    (``which="largest"``), the ``k`` smallest (``"smallest"``) or both ends (``"both"``, ``2k`` values).
    ``method``: ``"exact"`` (full Jacobian + SVD), ``"lanczos"`` (:func:`jacobian_lanczos`; squared values
    accurate to ``tol`` times the largest, at most ``max_iter`` steps; a warning if not converged) or
    ``"auto"`` (exact when ``k`` is None, when the smaller side is <= :data:`EXACT_MAX_SIZE`, or when the
    wanted values cover it; Lanczos otherwise). ``generator`` seeds the Lanczos start vector.
    """
    check_choice("method", method, METHODS)
    check_choice("which", which, WHICH)
    flat = _check_input(x)
    if k is None:
        if method == "lanczos":
            raise ValueError("method='lanczos' needs k (the number of extreme singular values); got k=None")
        return _sorted(torch.linalg.svdvals(full_jacobian(model, x).to(torch.float64)))
    k = check_int("k", k, minimum=1)
    with torch.no_grad():
        size = min(flat.numel(), _flat_function(model, x)(flat).numel())
    wanted = 2 * k if which == "both" else k
    if method == "exact" or wanted >= size or (method == "auto" and size <= EXACT_MAX_SIZE):
        values = _sorted(torch.linalg.svdvals(full_jacobian(model, x).to(torch.float64)))
        return _select(values, k, which)
    result = jacobian_lanczos(model, x, k, which=which, tol=tol, max_iter=max_iter, generator=generator)
    if not result.converged:
        warnings.warn(
            f"Lanczos did not converge in {result.steps} steps (largest residual {result.residual:.3g} times "
            f"the largest squared singular value, tol {tol:g}); raise max_iter or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    return result.values


@dataclass(frozen=True)
class LanczosResult:
    """Extreme singular values (float64, descending) from :func:`jacobian_lanczos`, with the number of
    Lanczos steps, of Jacobian-vector products (``passes``), whether every wanted value met the
    tolerance, and the largest residual bound relative to the largest squared singular value."""

    values: torch.Tensor
    steps: int
    passes: int
    converged: bool
    residual: float


def jacobian_lanczos(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    k: int,
    *,
    which: str = "both",
    tol: float = 1e-10,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
) -> LanczosResult:
    """The ``k`` extreme singular values at one or both ends (``which``) by matrix-free Lanczos.

    Lanczos with full reorthogonalisation on the Gram operator (``J^T J`` or ``J J^T``, the smaller),
    started from a Gaussian vector drawn with ``generator``; it stops when the wanted Ritz values have
    residual bounds ``beta_m |s_mi| <= tol * theta_max`` (``tol`` is raised to 100 machine epsilons of the
    model's dtype), at an invariant subspace, or after ``max_iter`` steps (default ``max(300, 8 k)``).
    Memory: ``steps x size`` float64 numbers for the basis.
    """
    check_choice("which", which, WHICH)
    k = check_int("k", k, minimum=1)
    tol = float(check_positive("tol", tol))
    flat = _check_input(x)
    op = _GramOperator(_flat_function(model, x), flat)
    tol = max(tol, 100.0 * torch.finfo(flat.dtype).eps)
    steps = op.size if max_iter is None else check_int("max_iter", max_iter, minimum=1)
    steps = min(op.size, steps if max_iter is not None else max(300, 8 * k))
    start = torch.randn(op.size, generator=generator, dtype=torch.float64)
    theta, taken, residual = _lanczos(op, start, k=k, which=which, steps=steps, tol=tol)
    values = _select(_sorted(torch.sqrt(torch.clamp(theta, min=0.0))), k, which)
    return LanczosResult(values, taken, op.passes, residual <= tol, residual)


def _lanczos(
    op: _GramOperator, start: torch.Tensor, *, k: int, which: str, steps: int, tol: float
) -> tuple[torch.Tensor, int, float]:
    """Ritz values, steps taken and the largest relative residual bound of the wanted Ritz values."""
    dtype, device = op.x.dtype, op.x.device
    basis = torch.zeros(steps + 1, op.size, dtype=torch.float64)
    basis[0] = start / torch.linalg.vector_norm(start)
    alpha, beta = np.zeros(steps), np.zeros(steps)
    theta, worst, j = np.zeros(0), math.inf, 0
    for j in range(steps):
        w = op.apply(basis[j].to(dtype=dtype, device=device)).detach().to(torch.float64).cpu()
        alpha[j] = float(basis[j] @ w)
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta[j] = float(torch.linalg.vector_norm(w))
        theta, vectors = eigh_tridiagonal(alpha[: j + 1], beta[:j])
        scale = max(float(np.max(np.abs(theta))), np.finfo(np.float64).tiny)
        residual = beta[j] * np.abs(vectors[-1]) / scale
        count = j + 1
        low = np.arange(min(k, count)) if which != "largest" else np.arange(0)
        high = np.arange(max(0, count - k), count) if which != "smallest" else np.arange(0)
        worst = float(np.max(residual[np.union1d(low, high)]))
        if beta[j] <= np.finfo(np.float64).eps * scale:
            worst = 0.0  # invariant subspace: the Ritz values are exact
            break
        if count >= min(k, op.size) and worst <= tol:
            break
        basis[j + 1] = w / beta[j]
    return torch.from_numpy(theta), j + 1, worst


def _sorted(values: torch.Tensor) -> torch.Tensor:
    return torch.sort(values.to(torch.float64), descending=True).values


def _select(values: torch.Tensor, k: int, which: str) -> torch.Tensor:
    if which == "largest":
        return values[:k]
    if which == "smallest":
        return values[-k:]
    if 2 * k >= values.numel():
        return values
    return torch.cat([values[:k], values[-k:]])


@dataclass(frozen=True)
class JacobianMoments:
    """Hutchinson estimates of ``mean(s^2)`` and ``mean(s^4)`` over the ``size = min(n_in, n_out)``
    singular values s, with their standard errors, and ``variance = mean(s^4) - mean(s^2)^2``."""

    mean: float
    second_moment: float
    mean_stderr: float
    second_moment_stderr: float
    size: int

    @property
    def variance(self) -> float:
        return self.second_moment - self.mean**2


def jacobian_moments(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    probes: int = 16,
    *,
    generator: torch.Generator | None = None,
) -> JacobianMoments:
    """Matrix-free estimates of the first two moments of the squared singular values (Hutchinson 1990).

    With Rademacher probes v on the smaller side and ``G`` the Gram operator (``J^T J`` or ``J J^T``):
    ``mean(s^2) = E[v^T G v] / n``, ``mean(s^4) = E[|G v|^2] / n``. Each probe costs one jvp and one vjp;
    the standard errors are those of the probe averages.
    """
    check_int("probes", probes, minimum=2)
    flat = _check_input(x)
    op = _GramOperator(_flat_function(model, x), flat)
    first, second = [], []
    for _ in range(probes):
        v = (
            torch.randint(0, 2, (op.size,), generator=generator)
            .to(flat.dtype)
            .mul_(2)
            .sub_(1)
            .to(flat.device)
        )
        gv = op.apply(v).detach().to(torch.float64)
        first.append(float(v.to(torch.float64) @ gv) / op.size)
        second.append(float(gv @ gv) / op.size)
    a, b = np.array(first), np.array(second)
    return JacobianMoments(
        mean=float(a.mean()),
        second_moment=float(b.mean()),
        mean_stderr=float(a.std(ddof=1) / np.sqrt(probes)),
        second_moment_stderr=float(b.std(ddof=1) / np.sqrt(probes)),
        size=op.size,
    )
