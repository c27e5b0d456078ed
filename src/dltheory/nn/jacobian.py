"""Singular values of a network's input-output Jacobian, exact or matrix-free.

``J = d model(x) / d x`` (flattened output by flattened input) at one input ``x``. Its squared singular
values are the eigenvalues of ``J^T J`` (or ``J J^T``, whichever is smaller), the quantity that dynamical
isometry (Pennington, Schoenholz & Ganguli 2017; Xiao et al. 2018) asks to concentrate near 1; the theory
they are compared with is :mod:`dltheory.signalprop.spectrum`.

- exact: the full Jacobian by ``torch.func.jacrev`` (or ``jacfwd`` when the input is the smaller side),
  then an SVD in float64. Cost: min(n_in, n_out) backward (or forward-mode) passes plus O(n^3).
- Lanczos: block Lanczos with full reorthogonalisation (Golub & Van Loan, "Matrix Computations",
  section 10.3) on the Gram operator ``v -> J^T (J v)`` applied matrix-free with reverse-mode products on
  one cached graph (``J v`` by the double-backward trick, see :class:`_GramOperator`; or
  ``v -> J (J^T v)`` when the output is smaller), a block of vectors per batched pass, stopped when the
  Ritz pairs at the wanted ends have residuals ``<= tol * theta_max``. Cost: two batched passes per step
  plus O(m^2 n) for the reorthogonalisation, no O(n^3) SVD, so it is the method for the extreme
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
    """The Jacobian ``(n_out, n_in)`` of the flattened output with respect to the flattened input at ``x``.

    Reverse mode (``torch.func.jacrev``) when ``n_out <= n_in``, forward mode (``jacfwd``) otherwise.

    Args:
        model: an ``nn.Module`` or a function of one tensor.
        x: one input (e.g. ``x[:1]``); a batch gives the block-diagonal Jacobian of the batch.

    Returns:
        The Jacobian, detached, in the model's dtype.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from dltheory.nn import full_jacobian
        >>> full_jacobian(nn.Linear(5, 3), torch.zeros(1, 5)).shape
        torch.Size([3, 5])
    """
    flat = _check_input(x)
    f = _flat_function(model, x)
    with torch.no_grad():
        n_out = f(flat).numel()
    transform = torch.func.jacrev if n_out <= flat.numel() else torch.func.jacfwd
    return transform(f)(flat).detach()


class _GramOperator:
    """``V -> V J^T J`` (``side="input"``) or ``V -> V J J^T`` (``side="output"``) on a block of row
    vectors ``V (b, size)``, matrix-free.

    One forward pass builds the graph of ``out``; ``U -> U J`` is a backward pass through it, and
    ``V -> V J^T`` the backward pass of the (linear in u) graph of ``J^T u`` with respect to u (the
    "double-backward trick"); blocks go through one batched backward (``is_grads_batched``, vmap). In torch
    2.13 on CPU a single product costs about one backward pass, where ``torch.func.jvp`` (forward mode,
    re-running the forward) measured about 5x more, and a block of 16 vectors costs about 3 single ones.
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
        self.products = 0

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        """Rows ``J v`` for the rows v of ``v (b, n_in)``."""
        self.products += v.shape[0]
        return torch.autograd.grad(
            self.transposed, self.cotangent, v, retain_graph=True, is_grads_batched=True
        )[0]

    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        """Rows ``J^T u`` for the rows u of ``u (b, n_out)``."""
        self.products += u.shape[0]
        return torch.autograd.grad(self.out, self.x, u, retain_graph=True, is_grads_batched=True)[0]

    def apply(self, block: torch.Tensor) -> torch.Tensor:
        """The Gram operator on the rows of ``block (b, size)`` (float64 in, float64 out)."""
        v = block.to(dtype=self.x.dtype, device=self.x.device)
        w = self.vjp(self.jvp(v)) if self.side == "input" else self.jvp(self.vjp(v))
        return w.detach().to(torch.float64).cpu()


def jacobian_singular_values(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    k: int | None = None,
    *,
    which: str = "both",
    method: str = "auto",
    tol: float = 1e-8,
    max_iter: int | None = None,
    block: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Singular values (float64, descending) of the input-output Jacobian of ``model`` at ``x``.

    ``k=None``: all ``min(n_in, n_out)`` singular values (exact). ``k`` given: the ``k`` largest
    (``which="largest"``), the ``k`` smallest (``"smallest"``) or both ends (``"both"``, ``2k`` values).
    ``method``: ``"exact"`` (full Jacobian + SVD), ``"lanczos"`` (:func:`jacobian_lanczos`, block size
    ``block``; squared values accurate to ``tol`` times the largest, at most ``max_iter`` block steps; a
    warning if not converged) or
    ``"auto"`` (exact when ``k`` is None, when the smaller side is <= :data:`EXACT_MAX_SIZE`, or when the
    wanted values cover it; Lanczos otherwise). ``generator`` seeds the Lanczos start vector.

    Args:
        model: an ``nn.Module`` or a function of one tensor.
        x: one input (e.g. ``x[:1]``); a batch gives the block-diagonal Jacobian of the batch.
        k: number of extreme values wanted; ``None`` for all.
        which: ``"largest"``, ``"smallest"`` or ``"both"`` (``2k`` values).
        method: ``"auto"``, ``"exact"`` or ``"lanczos"``.
        tol: Lanczos tolerance on the squared values, relative to the largest.
        max_iter: maximum number of Lanczos block steps.
        block: Lanczos block size.
        generator: seeds the Lanczos start vectors.

    Returns:
        Float64 tensor of singular values, descending.

    Raises:
        ValueError: for ``method="lanczos"`` without ``k``, or bad arguments.

    References:
        Pennington, Schoenholz & Ganguli (2017); Xiao et al. (2018), section 2.3.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from dltheory.nn import jacobian_singular_values
        >>> layer = nn.Linear(5, 3, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.diag(torch.tensor([2.0, 1.0, 0.5])) @ torch.eye(3, 5))
        >>> jacobian_singular_values(layer, torch.zeros(1, 5)).tolist()
        [2.0, 1.0, 0.5]
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
    result = jacobian_lanczos(
        model, x, k, which=which, tol=tol, block=block, max_iter=max_iter, generator=generator
    )
    if not result.converged:
        warnings.warn(
            f"block Lanczos did not converge in {result.steps} steps (Krylov dimension {result.dimension}, "
            f"largest residual {result.residual:.3g} times the largest squared singular value, tol {tol:g}); "
            "raise max_iter or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    return result.values


@dataclass(frozen=True)
class LanczosResult:
    """Extreme singular values from :func:`jacobian_lanczos`, with how they were obtained.

    Attributes:
        values: the singular values (float64, descending).
        steps: number of block steps.
        dimension: Krylov dimension reached.
        products: Jacobian-vector products used (``J v`` and ``J^T u`` each count one).
        converged: whether every wanted value met the tolerance.
        residual: largest residual norm of the wanted Ritz pairs relative to the largest squared singular
            value.
    """

    values: torch.Tensor
    steps: int
    dimension: int
    products: int
    converged: bool
    residual: float


def jacobian_lanczos(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    k: int,
    *,
    which: str = "both",
    tol: float = 1e-8,
    block: int = 16,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
) -> LanczosResult:
    """The ``k`` extreme singular values at one or both ends (``which``) by matrix-free block Lanczos.

    Block Lanczos with full reorthogonalisation (a block Krylov space of the Gram operator ``J^T J`` or
    ``J J^T``, the smaller, with Rayleigh-Ritz; Golub & Van Loan, "Matrix Computations", section 10.3),
    started from ``block`` Gaussian vectors drawn with ``generator``. It stops when the wanted Ritz pairs
    have residuals ``|G y - theta y| <= tol * theta_max`` (``tol`` is raised to 100 machine epsilons of the
    model's dtype), when the space is invariant, or after ``max_iter`` block steps (default: until the
    Krylov dimension reaches ``min(size, max(600, 20 k))``). Each Ritz value is then within ``tol *
    theta_max`` of an eigenvalue (Weyl's bound for symmetric operators), typically within
    ``residual^2 / gap``. A block Krylov space of dimension m has polynomial degree m / block, so a
    clustered end needs a larger dimension than single-vector Lanczos, but far fewer passes: each step
    applies the operator to a block in one batched pass, which costs far less than ``block`` single
    passes. Memory: two ``size x dimension`` float64 arrays.

    Args:
        model: an ``nn.Module`` or a function of one tensor.
        x: one input (e.g. ``x[:1]``); a batch gives the block-diagonal Jacobian of the batch.
        k: number of extreme values at each wanted end.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.
        tol: tolerance on the squared values, relative to the largest.
        block: block size (vectors per batched pass).
        max_iter: maximum number of block steps.
        generator: seeds the start vectors.

    Returns:
        A :class:`LanczosResult`.

    References:
        Golub & Van Loan, Matrix Computations, section 10.3.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0) and None
        >>> model = nn.Sequential(nn.Linear(64, 64, bias=False), nn.Tanh(), nn.Linear(64, 64, bias=False))
        >>> for layer in (model[0], model[2]):
        ...     _ = nn.init.orthogonal_(layer.weight)
        >>> x = torch.zeros(1, 64)     # tanh'(0) = 1: the Jacobian is a product of orthogonal matrices
        >>> from dltheory.nn import jacobian_lanczos
        >>> generator = torch.Generator().manual_seed(0)
        >>> result = jacobian_lanczos(model, x, 2, which="largest", generator=generator)
        >>> result.values.round(decimals=6).tolist(), result.converged
        ([1.0, 1.0], True)
    """
    check_choice("which", which, WHICH)
    k = check_int("k", k, minimum=1)
    block = check_int("block", block, minimum=1)
    tol = float(check_positive("tol", tol))
    flat = _check_input(x)
    op = _GramOperator(_flat_function(model, x), flat)
    tol = max(tol, 100.0 * torch.finfo(flat.dtype).eps)
    block = min(block, op.size)
    limit = min(op.size, max(600, 20 * k))
    steps = math.ceil(limit / block) if max_iter is None else check_int("max_iter", max_iter, minimum=1)
    start = torch.randn(block, op.size, generator=generator, dtype=torch.float64)
    theta, taken, dimension, residual = _block_lanczos(op, start, k=k, which=which, steps=steps, tol=tol)
    values = _select(_sorted(torch.sqrt(torch.clamp(theta, min=0.0))), k, which)
    return LanczosResult(values, taken, dimension, op.products, residual <= tol, residual)


def _block_lanczos(
    op: _GramOperator, start: torch.Tensor, *, k: int, which: str, steps: int, tol: float
) -> tuple[torch.Tensor, int, int, float]:
    """Ritz values, block steps taken, Krylov dimension and the largest relative residual of the wanted
    Ritz pairs. Basis rows ``Q (m, size)``, images ``GQ (m, size)``; Ritz values from ``Q G Q^T``."""
    basis = torch.zeros(0, op.size, dtype=torch.float64)
    images = torch.zeros(0, op.size, dtype=torch.float64)
    new = _orthonormal_rows(start, basis)
    theta, worst, taken = torch.zeros(0, dtype=torch.float64), math.inf, 0
    while taken < steps:
        taken += 1
        basis = torch.cat([basis, new])
        images = torch.cat([images, op.apply(new)])
        projected = basis @ images.T
        theta, vectors = torch.linalg.eigh(0.5 * (projected + projected.T))
        count = theta.numel()
        low = list(range(min(k, count))) if which != "largest" else []
        high = list(range(max(0, count - k), count)) if which != "smallest" else []
        wanted = sorted(set(low + high))
        ritz = vectors[:, wanted]
        residual = ritz.T @ images - theta[wanted, None] * (ritz.T @ basis)
        scale = max(float(theta.abs().max()), torch.finfo(torch.float64).tiny)
        worst = float(torch.linalg.vector_norm(residual, dim=1).max()) / scale
        if count >= op.size or (count >= min(2 * k, op.size) and worst <= tol):
            break
        new = _orthonormal_rows(images[-new.shape[0] :], basis)
        if new.shape[0] == 0:
            worst = 0.0  # invariant subspace: the Ritz values are exact
            break
    return theta, taken, basis.shape[0], worst


def _orthonormal_rows(block: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning ``block`` minus its projection on the rows of ``basis`` (twice, for
    numerical orthogonality); rows that vanish relative to the block's norm are dropped (deflation)."""
    norm = float(torch.linalg.matrix_norm(block)) or 1.0
    for _ in range(2):
        block = block - (block @ basis.T) @ basis
    q, r = torch.linalg.qr(block.T)
    keep = torch.diagonal(r).abs() > 1e-10 * norm
    return q.T[keep]


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
    """Hutchinson estimates of the moments of the squared singular values, from :func:`jacobian_moments`.

    Attributes:
        mean: estimate of ``mean(s^2)`` over the ``size`` singular values.
        second_moment: estimate of ``mean(s^4)``.
        mean_stderr: standard error of ``mean``.
        second_moment_stderr: standard error of ``second_moment``.
        size: ``min(n_in, n_out)``.
    """

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

    Args:
        model: an ``nn.Module`` or a function of one tensor.
        x: one input (e.g. ``x[:1]``); a batch gives the block-diagonal Jacobian of the batch.
        probes: number of Rademacher probes (>= 2).
        generator: seeds the probes.

    Returns:
        A :class:`JacobianMoments`; its ``variance`` is ``mean(s^4) - mean(s^2)^2``.

    References:
        Hutchinson (1990), A stochastic estimator of the trace of the influence matrix.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0) and None
        >>> model = nn.Sequential(nn.Linear(64, 64, bias=False), nn.Tanh(), nn.Linear(64, 64, bias=False))
        >>> for layer in (model[0], model[2]):
        ...     _ = nn.init.orthogonal_(layer.weight)
        >>> x = torch.zeros(1, 64)     # tanh'(0) = 1: the Jacobian is a product of orthogonal matrices
        >>> from dltheory.nn import jacobian_moments
        >>> m = jacobian_moments(model, x, probes=8, generator=torch.Generator().manual_seed(0))
        >>> round(m.mean, 4), round(m.variance, 4)
        (1.0, 0.0)
    """
    check_int("probes", probes, minimum=2)
    flat = _check_input(x)
    op = _GramOperator(_flat_function(model, x), flat)
    signs = torch.randint(0, 2, (probes, op.size), generator=generator).to(torch.float64).mul_(2).sub_(1)
    images = op.apply(signs)
    first = (signs * images).sum(dim=1).numpy() / op.size
    second = images.pow(2).sum(dim=1).numpy() / op.size
    a, b = first, second
    return JacobianMoments(
        mean=float(a.mean()),
        second_moment=float(b.mean()),
        mean_stderr=float(a.std(ddof=1) / np.sqrt(probes)),
        second_moment_stderr=float(b.std(ddof=1) / np.sqrt(probes)),
        size=op.size,
    )
