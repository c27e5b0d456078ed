"""Mean-field theory of residual networks, with and without LayerNorm / RMSNorm (numpy, float64).

A residual stack updates a stream ``h_l`` (width N -> infinity) by ``h_{l+1} = h_l + alpha B_l(h_l)``; the
branch ``B_l`` is a short chain of fresh random layers. The blocks (Yang & Schoenholz 2017, "Mean Field
Residual Networks: On the Edge of Chaos", NeurIPS; their reduced and full residual networks, and the MLP
block of pre-LN Transformers):

- ``"reduced"``: ``B(h) = W phi(h) + b``;
- ``"two_layer"``: ``B(h) = V phi(W phi(h) + b) + a``;
- ``"mlp"``: ``B(h) = V phi(W h + b) + a``;

with every weight ``N(0, sigma_w2 / fan_in)`` and bias ``N(0, sigma_b2)``. A normaliser (``"layer"``:
LayerNorm, ``"rms"``: RMSNorm, unit gain, no bias) sits either before the branch (``"pre"``:
``h + alpha B(N(h))``) or after the addition (``"post"``: ``N(h + alpha B(h))``).

Forward. For two inputs of equal length with stream second moment ``q_l`` and covariance ``lambda_l``
(correlation ``c_l = lambda_l / q_l``) the branch adds independent noise (its last layer has fresh zero-mean
weights), so second moments add:

    q_{l+1} = q_l + alpha^2 Q_B(q_in),   lambda_{l+1} = lambda_l + alpha^2 Lambda_B(q_in, c_in),

where ``Q_B``, ``Lambda_B`` push (q, lambda) through the branch: a dense layer maps them to
``sigma_w2 (q, lambda) + sigma_b2``, an activation to ``(E[phi(u)^2], E[phi(u_1) phi(u_2)])`` with u
Gaussian of variance q (correlation lambda / q). For the reduced block this is the recursion
``q_{l+1} = q_l + alpha^2 (sigma_w2 E[phi(sqrt(q_l) z)^2] + sigma_b2)``: there is no fixed point, q grows
for ever. Pre-norm feeds the branch ``q_in = 1``, ``c_in = c_l`` (a zero-mean stream: LayerNorm and RMSNorm
agree in the mean field); post-norm resets ``q_{l+1} = 1`` and keeps ``c_{l+1} = lambda / q`` of the sum.

Backward (the usual gradient-independence assumption: the weights of the backward pass are treated as
independent of the forward ones). With ``g_l = dL/dh_l``, the skip path and the branch contribute
uncorrelated terms, so

    |g_l|^2 = |g_{l+1}|^2 chi_l,   chi_l = 1 + alpha^2 X_B(q_in),

where ``X_B`` multiplies ``sigma_w2`` for every dense layer and ``E[phi'(u)^2]`` for every activation of
the branch (reduced block: ``chi_l = 1 + alpha^2 sigma_w2 E[phi'(sqrt(q_l) z)^2]``). A normaliser's
Jacobian divides squared gradients by the variance it removes and projects out k directions (k = 2 for
LayerNorm: the mean and the input direction; 1 for RMSNorm): pre-norm multiplies ``X_B`` by
``nu / q_l``, post-norm multiplies ``chi_l`` by ``nu / q_sum`` with ``nu = 1 - k / N`` (1 at infinite
width, ``width=None``). ``grad_growth[l] = |g_l|^2 / |g_L|^2 = prod_{j >= l} chi_j``: how much larger the
squared gradient is at block l than at the output of the stack.

Asymptotics (:func:`residual_asymptotics`; derived in docs/residual/index.md):

- bounded activations (tanh): q grows linearly, ``q_l ~ alpha^2 Q_inf l``; ``E[phi'(sqrt(q) z)^2] ~
  kappa / sqrt(q)`` with ``kappa = int phi'(x)^2 dx / sqrt(2 pi)``, so ``log G(L) ~ gamma sqrt(L)``: the
  gradient grows stretched-exponentially; c approaches its limit c* polynomially, ``|c_l - c*| ~
  l^(-(1 - g'(c*)))`` where g is the large-q correlation map of one block;
- ReLU family: everything is homogeneous in q, so q and the gradient grow exponentially at the same rate
  ``log(1 + alpha^2 X_B)``; ``1 - c_l`` decays like ``l^-2``;
- pre-norm: q grows linearly for every activation and ``chi_l = 1 + X / q_l``, so ``G(L) ~ (1 + Q L /
  q_0)^p`` with ``p = X / Q`` independent of alpha: a power law;
- post-norm: ``chi_l`` tends to a constant: exponential growth or decay.

The growth is tamed by shrinking the branch: alpha ~ 1 / sqrt(L) keeps ``log G`` bounded as L grows (then
``alpha^2 L`` is fixed), see :func:`branch_scale`, which solves for the alpha that gives a chosen growth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.integrate import quad
from scipy.optimize import brentq

from dltheory.core.activations import Activation, get_activation
from dltheory.core.validation import check_choice, check_in_range, check_int, check_positive
from dltheory.signalprop.kernels import DualKernel, dual_kernel
from dltheory.signalprop.layerwise import ACCURATE_NODES, GaussianMaps, split_cross, split_moments

BLOCKS: dict[str, tuple[str, ...]] = {
    "reduced": ("act", "dense"),
    "two_layer": ("act", "dense", "act", "dense"),
    "mlp": ("dense", "act", "dense"),
}
NORMS = (None, "layer", "rms")
NORM_POSITIONS = ("pre", "post")
#: directions a normaliser's Jacobian projects out (LayerNorm: the mean and the input; RMSNorm: the input)
NORM_RANK = {"layer": 2, "rms": 1}
#: smooth activations use the fast 2-D trapezoid rule below this variance and :func:`split_cross` above
_SPLIT_Q = 16.0


# ------------------------------------------------------------------------------------ branch maps


def _cross(kernel: DualKernel, q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """E[phi(u_1) phi(u_2)] at equal variances q and correlation c (accurate to ~1e-9 at any q)."""
    if kernel.closed_form or kernel.activation.kinks:
        return np.asarray(kernel.cross(q, q, c)[0])
    q, c = np.broadcast_arrays(q, c)
    out = np.empty(q.shape)
    small = q <= _SPLIT_Q
    if np.any(small):
        out[small] = kernel.cross(q[small], q[small], c[small])[0]
    if np.any(~small):
        out[~small] = split_cross(kernel.activation, q[~small], q[~small], c[~small], nodes=ACCURATE_NODES)
    return out


def _moments(kernel: DualKernel, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E[phi^2], E[phi'^2]) at variance q (accurate to ~1e-12 at any q)."""
    if kernel.closed_form or kernel.activation.kinks:
        m, _, d = kernel.moments(q)
        return np.asarray(m), np.asarray(d)
    m, d = np.empty(q.shape), np.empty(q.shape)
    small = q <= _SPLIT_Q
    if np.any(small):
        m_small, _, d_small = kernel.moments(q[small])
        m[small], d[small] = m_small, d_small
    if np.any(~small):
        m[~small], d[~small] = split_moments(kernel.activation, q[~small], nodes=2 * ACCURATE_NODES)
    return m, d


@dataclass(frozen=True)
class BranchOp:
    """One operation of a residual branch (or the normaliser after the addition) for :func:`propagate_stack`.

    ``kind``: ``"act"`` (``activation``), ``"dense"`` (``sigma_w2``, ``sigma_b2``), ``"scale"`` (multiply by
    ``scale``) or ``"norm"`` (LayerNorm / RMSNorm of a zero-mean signal: divide by sqrt(q + ``eps``), multiply
    by a gain of mean square ``gamma2``; ``nu`` = 1 - k / N is its backward projection factor). Numeric
    fields may be arrays that broadcast with the stack's grid. ``fast`` evaluates an activation's
    moments with the spline tables of :class:`~dltheory.signalprop.layerwise.GaussianMaps` (relative error
    ~1e-8 instead of ~1e-12; for long extrapolations).
    """

    kind: str
    activation: DualKernel | None = None
    fast: bool = False
    sigma_w2: Any = 1.0
    sigma_b2: Any = 0.0
    scale: Any = 1.0
    gamma2: Any = 1.0
    eps: float = 0.0
    nu: float = 1.0

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, ["act", "dense", "scale", "norm"])
        if self.kind == "act" and self.activation is None:
            raise ValueError("an 'act' BranchOp needs an activation (a DualKernel)")


_FAST_MAPS: dict[tuple[str, tuple[tuple[str, float], ...]], GaussianMaps] = {}


def _fast_maps(activation: Activation) -> GaussianMaps:
    key = (activation.name, tuple(sorted(activation.params.items())))
    if key not in _FAST_MAPS:
        _FAST_MAPS[key] = GaussianMaps(activation)
    return _FAST_MAPS[key]


def _act_op(
    kernel: DualKernel, q: np.ndarray, lam: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    m, d = _moments(kernel, q)
    if lam is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(q > 0, np.clip(lam / np.where(q > 0, q, 1.0), -1.0, 1.0), 1.0)
        lam = _cross(kernel, q, c)
    return m, lam, d


def apply_op(
    op: BranchOp, q: np.ndarray, lam: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Push (q, lambda) of a zero-mean Gaussian (or, after ``act``, its image) through one operation;
    returns the new (q, lambda) and the factor it multiplies squared gradients by (module docstring)."""
    if op.kind == "act":
        assert op.activation is not None
        if op.fast and lam is None:
            m, d = _fast_maps(op.activation.activation).moments(q)
            return m, None, d
        return _act_op(op.activation, q, lam)
    if op.kind == "dense":
        lam = op.sigma_w2 * lam + op.sigma_b2 if lam is not None else None
        return (
            op.sigma_w2 * q + op.sigma_b2,
            lam,
            np.broadcast_to(np.asarray(op.sigma_w2, dtype=np.float64), q.shape),
        )
    if op.kind == "scale":
        s2 = np.asarray(op.scale, dtype=np.float64) ** 2
        return s2 * q, s2 * lam if lam is not None else None, np.broadcast_to(s2, q.shape)
    denominator = q + op.eps
    lam = op.gamma2 * lam / denominator if lam is not None else None
    return op.gamma2 * q / denominator, lam, op.gamma2 * op.nu / denominator


def propagate_stack(
    branch: tuple[BranchOp, ...] | list[tuple[BranchOp, ...]],
    depth: int,
    q0: np.ndarray,
    lam0: np.ndarray | None,
    post: BranchOp | None | list[BranchOp | None] = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Iterate ``h <- post(h + branch(h))`` for ``depth`` blocks in the mean field.

    Args:
        branch: the branch operations (the same for every block) or one tuple per block.
        depth: number of blocks.
        q0: second moment of the stream entering the first block (an array that broadcasts with the
            operations' parameters).
        lam0: covariance of two inputs' streams entering the first block (same broadcasting; None skips
            correlations).
        post: the normaliser after the addition (None for none), or one per block.

    Returns:
        ``(q, lam, chi)``: stacked over blocks, shapes ``(depth + 1, *grid)``, same (or None) and
        ``(depth, *grid)``.
    """
    branches = branch if isinstance(branch, list) else [branch] * depth
    posts = post if isinstance(post, list) else [post] * depth
    if len(branches) != depth or len(posts) != depth:
        raise ValueError(
            f"need one branch and one post-normaliser per block ({depth}), got {len(branches)}, {len(posts)}"
        )
    q, lam = np.asarray(q0, dtype=np.float64), None if lam0 is None else np.asarray(lam0, dtype=np.float64)
    qs, lams, chis = [q], [lam], []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for ops, post_op in zip(branches, posts, strict=True):
            bq, blam, factor = q, lam, np.ones(np.shape(q))
            for op in ops:
                bq, blam, x = apply_op(op, bq, blam)
                factor = factor * x
            q, lam = q + bq, lam + blam if lam is not None and blam is not None else None
            chi = 1.0 + factor
            if post_op is not None:
                q, lam, x = apply_op(post_op, q, lam)
                chi = chi * x
            shape = np.broadcast_shapes(np.shape(q), np.shape(chi))
            q, chi = np.broadcast_to(q, shape), np.broadcast_to(chi, shape)
            qs.append(q)
            lams.append(lam)
            chis.append(chi)
    shape = np.broadcast_shapes(*(np.shape(v) for v in qs))
    q_arr = np.stack([np.broadcast_to(v, shape) for v in qs])
    lam_arr = None if lam0 is None else np.stack([np.broadcast_to(np.asarray(v), shape) for v in lams])
    return q_arr, lam_arr, np.stack([np.broadcast_to(v, shape) for v in chis])


@dataclass(frozen=True)
class ResidualPropagation:
    """Layer-by-layer mean-field statistics of a residual stack (arrays of shape ``(depth + 1, *grid)`` or
    ``(depth, *grid)``, ``grid`` the broadcast shape of the parameters).

    Attributes:
        q: second moment of the stream ``h_l`` (``q[0] = q0``).
        c: correlation of two inputs in the stream (NaN when correlations were not tracked).
        chi: squared-gradient growth of each block, ``|g_l|^2 / |g_{l+1}|^2``.
        growth: ``growth[L] = prod_{l < L} chi_l``, the end-to-end growth of a stack of the first L blocks.
        grad_growth: ``|g_l|^2 / |g_depth|^2`` (``grad_growth[depth] = 1``, ``grad_growth[0]`` end to end).
    """

    activation: str
    block: str
    norm: str | None
    norm_position: str
    q: np.ndarray
    c: np.ndarray
    chi: np.ndarray
    growth: np.ndarray
    grad_growth: np.ndarray

    @property
    def depth(self) -> int:
        return int(self.chi.shape[0])

    @property
    def end_to_end(self) -> np.ndarray:
        """``|g_0|^2 / |g_depth|^2``: squared-gradient growth across the whole stack."""
        return self.grad_growth[0]

    def depth_exceeding(self, factor: float) -> np.ndarray:
        """The smallest number of blocks L with ``growth[L] >= factor``, or -1 where ``depth`` blocks stay
        below it (integer array of the grid shape).

        Examples:
            >>> prop = residual_propagation("relu", 2.0, 0.0, 10, 1.0)  # chi = 2 per block exactly
            >>> int(prop.depth_exceeding(100.0))  # 2^7 = 128 >= 100
            7
        """
        reached = self.growth >= factor
        first = np.argmax(reached, axis=0)
        return np.where(np.any(reached, axis=0), first, -1)


def _check_common(
    activation: Any, block: str, norm: str | None, norm_position: str, width: int | None
) -> tuple[DualKernel, tuple[str, ...], float]:
    kernel = dual_kernel(get_activation(activation))
    ops = BLOCKS[check_choice("block", block, list(BLOCKS))]
    check_choice("norm", norm, list(NORMS))
    check_choice("norm_position", norm_position, list(NORM_POSITIONS))
    nu = 1.0
    if width is not None:
        width = check_int("width", width, minimum=3)
        if norm is not None:
            nu = 1.0 - NORM_RANK[norm] / width
    return kernel, ops, nu


def residual_propagation(
    activation: str | Activation,
    sigma_w2: object,
    sigma_b2: object,
    depth: int,
    q0: object,
    c0: object = 0.5,
    *,
    alpha: object = 1.0,
    block: str = "reduced",
    norm: str | None = None,
    norm_position: str = "pre",
    width: int | None = None,
    correlations: bool = True,
) -> ResidualPropagation:
    """Iterate the mean-field length, correlation and gradient recursions of a residual stack.

    Equations (see the module docstring): ``q_{l+1} = q_l + alpha^2 Q_B(q_in)``, ``lambda_{l+1} = lambda_l
    + alpha^2 Lambda_B(q_in, c_in)``, ``|g_l|^2 = |g_{l+1}|^2 (1 + alpha^2 X_B(q_in))``; for the reduced
    block ``Q_B = sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2`` and ``X_B = sigma_w2 E[phi'(sqrt(q) z)^2]``.

    Args:
        activation: name or Activation of the branch nonlinearity.
        sigma_w2: weight variance of every branch layer (broadcast).
        sigma_b2: bias variance of every branch layer (broadcast).
        depth: number of residual blocks L >= 1.
        q0: second moment of the stream entering the first block (> 0, broadcast).
        c0: correlation of the two tracked inputs entering the first block, in [-1, 1] (broadcast).
        alpha: branch multiplier (>= 0, broadcast), e.g. ``1 / sqrt(depth)``.
        block: ``"reduced"``, ``"two_layer"`` or ``"mlp"`` (module docstring).
        norm: None, ``"layer"`` or ``"rms"``.
        norm_position: ``"pre"`` (before the branch) or ``"post"`` (after the addition).
        width: finite width N for the normaliser's backward projection ``1 - k / N``; None: infinite.
        correlations: False skips the correlation recursion (c is NaN; several times faster).

    Returns:
        :class:`ResidualPropagation`.

    References:
        Yang & Schoenholz 2017 (NeurIPS), sections 3-4 (forward and backward dynamics of reduced and full
        residual networks); the normaliser rules are derived in docs/residual/index.md.

    Examples:
        ReLU reduced blocks at sigma_w2 = 2: each block doubles q and the squared gradient.

        >>> prop = residual_propagation("relu", 2.0, 0.0, depth=3, q0=1.0)
        >>> prop.q.tolist(), prop.grad_growth.tolist()
        ([1.0, 2.0, 4.0, 8.0], [8.0, 4.0, 2.0, 1.0])

        tanh: q grows by a little less than sigma_w2 per block, the squared gradient stretched-exponentially
        (``log G ~ 1.06 sqrt(L)``).

        >>> prop = residual_propagation("tanh", 1.0, 0.0, depth=100, q0=1.0)
        >>> round(float(prop.q[-1]), 2), round(float(prop.end_to_end))
        (84.45, 38008)
    """
    kernel, ops, nu = _check_common(activation, block, norm, norm_position, width)
    depth = check_int("depth", depth, minimum=1)
    sw2 = check_positive("sigma_w2", sigma_w2)
    sb2 = check_positive("sigma_b2", sigma_b2, allow_zero=True)
    q = check_positive("q0", q0)
    c = check_in_range("c0", c0, -1.0, 1.0)
    a = check_positive("alpha", alpha, allow_zero=True)
    sw2, sb2, q, c, a = np.broadcast_arrays(sw2, sb2, q, c, a)
    branch, post = _stack_ops(kernel, ops, sw2, sb2, a, norm, norm_position, nu)
    qs, lams, chi = propagate_stack(branch, depth, q, q * c if correlations else None, post)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        cs = lams / qs if lams is not None else np.full(qs.shape, np.nan)
        growth = np.concatenate([np.ones((1,) + qs.shape[1:]), np.cumprod(chi, axis=0)])
        grad_growth = growth[-1] / growth
    return ResidualPropagation(
        kernel.activation.name, block, norm, norm_position, qs, cs, chi, growth, grad_growth
    )


def _stack_ops(
    kernel: DualKernel,
    ops: tuple[str, ...],
    sw2: Any,
    sb2: Any,
    alpha: Any,
    norm: str | None,
    norm_position: str,
    nu: float,
) -> tuple[tuple[BranchOp, ...], BranchOp | None]:
    branch = [
        BranchOp("act", kernel) if op == "act" else BranchOp("dense", sigma_w2=sw2, sigma_b2=sb2)
        for op in ops
    ]
    branch.append(BranchOp("scale", scale=alpha))
    normaliser = BranchOp("norm", nu=nu) if norm is not None else None
    if normaliser is not None and norm_position == "pre":
        return (normaliser, *branch), None
    return tuple(branch), normaliser


# ------------------------------------------------------------------------------------ branch scale


def branch_scale(
    activation: str | Activation,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    q0: float,
    *,
    growth: float = 2.0,
    block: str = "reduced",
    norm: str | None = None,
    norm_position: str = "pre",
    width: int | None = None,
) -> float:
    """The branch multiplier alpha at which the end-to-end squared-gradient growth of ``depth`` blocks
    equals ``growth``: the largest alpha that keeps gradients within that factor.

    Solves ``prod_l (1 + alpha^2 X_B(q_l(alpha))) = growth`` (the growth increases with alpha for plain
    and pre-norm stacks) by Brent's method in log alpha. For large depth the answer behaves like
    ``a / sqrt(depth)``: ReLU blocks need ``alpha^2 X_B depth ~ log(growth)``.

    Args:
        activation: as in :func:`residual_propagation` (a scalar).
        sigma_w2: as in :func:`residual_propagation` (a scalar).
        sigma_b2: as in :func:`residual_propagation` (a scalar).
        depth: as in :func:`residual_propagation` (a scalar).
        q0: as in :func:`residual_propagation` (a scalar).
        block: as in :func:`residual_propagation` (a scalar).
        norm: as in :func:`residual_propagation` (a scalar).
        norm_position: as in :func:`residual_propagation` (a scalar).
        width: as in :func:`residual_propagation` (a scalar).
        growth: target end-to-end growth of the squared gradient, > 1.

    Returns:
        alpha > 0.

    Raises:
        ValueError: for post-norm stacks (the growth need not be monotone in alpha) and when no alpha in
            [1e-6, 1e3] reaches the target.

    Examples:
        >>> alpha = branch_scale("relu", 2.0, 0.0, depth=100, q0=1.0, growth=2.0)
        >>> abs(alpha - math.sqrt(2.0 ** (1 / 100) - 1)) < 1e-9  # (1 + alpha^2)^100 = 2 exactly
        True
    """
    target = float(check_positive("growth", growth))
    if target <= 1.0:
        raise ValueError(f"growth must be > 1 (the growth at alpha = 0 is 1), got {growth!r}")
    if norm is not None and norm_position == "post":
        raise ValueError(
            "branch_scale solves plain and pre-norm stacks; with norm_position='post' the growth is not "
            "monotone in alpha: scan residual_propagation(..., alpha=grid) instead"
        )

    def excess(log_alpha: float) -> float:
        prop = residual_propagation(
            activation,
            sigma_w2,
            sigma_b2,
            depth,
            q0,
            alpha=math.exp(log_alpha),
            block=block,
            norm=norm,
            norm_position=norm_position,
            width=width,
            correlations=False,
        )
        return float(np.log(prop.end_to_end)) - math.log(target)

    lo, hi = math.log(1e-6), math.log(1e3)
    if excess(hi) < 0 or excess(lo) > 0:
        raise ValueError(
            f"no branch multiplier alpha in [1e-6, 1e3] gives growth {target:g} for {activation!r}, "
            f"sigma_w2={sigma_w2}, sigma_b2={sigma_b2}, depth={depth}"
        )
    return math.exp(brentq(excess, lo, hi, xtol=1e-10))


# ------------------------------------------------------------------------------------ asymptotics


@dataclass(frozen=True)
class ResidualAsymptotics:
    """Leading-order depth laws of a residual stack (module docstring).

    Attributes:
        q_law: ``"linear"`` (``q_L ~ q0 + q_rate L``), ``"exponential"`` (``log q_L ~ q_rate L``) or
            ``"constant"`` (post-norm: ``q = 1``).
        grad_law: ``"stretched_exponential"`` (``log G(L) ~ grad_rate sqrt(L)``), ``"exponential"``
            (``log G(L) ~ grad_rate L``) or ``"power"`` (``G(L) ~ (1 + q_rate L / q0)^grad_rate``).
        c_star: limit of the correlation of two inputs.
        c_law: ``"power"`` (``|c_L - c*| ~ L^-c_rate``), ``"logarithmic"`` (``1 - c_L ~ (log L)^-c_rate``)
            or ``"exponential"`` (``~ exp(-c_rate L)``).
        q0: the initial second moment the power law refers to.
    """

    q_law: str
    q_rate: float
    grad_law: str
    grad_rate: float
    c_law: str
    c_star: float
    c_rate: float
    q0: float

    def log_growth(self, depth: object) -> np.ndarray:
        """Leading-order ``log G(L)`` of the squared-gradient growth over L blocks."""
        L = np.asarray(depth, dtype=np.float64)
        if self.grad_law == "stretched_exponential":
            return self.grad_rate * np.sqrt(L)
        if self.grad_law == "exponential":
            return self.grad_rate * L
        return self.grad_rate * np.log1p(self.q_rate * L / self.q0)


def _limits(activation: Activation) -> tuple[float, float] | None:
    """phi(-inf), phi(+inf) for a bounded monotone activation, else None."""
    if activation.bound is None:
        return None
    lo, hi = (float(v) for v in activation.fn(np.array([-1e4, 1e4])))
    return lo, hi


def _fixed_point(g: Any) -> tuple[float, float]:
    """Attracting fixed point c* of a correlation map g on [-1, 1] reached from c = 0.5, and g'(c*)."""
    if g(1.0 - 1e-12) >= 1.0 - 1e-12 and g(0.999) > 0.999:  # c = 1 attracts from below
        return 1.0, 1.0
    c_star = brentq(lambda c: g(c) - c, -1.0 + 1e-12, 1.0 - 1e-9)
    h = 1e-6
    return c_star, (g(c_star + h) - g(c_star - h)) / (2 * h)


def residual_asymptotics(
    activation: str | Activation,
    sigma_w2: float,
    sigma_b2: float,
    *,
    alpha: float = 1.0,
    block: str = "reduced",
    norm: str | None = None,
    norm_position: str = "pre",
    q0: float = 1.0,
) -> ResidualAsymptotics:
    """Leading-order depth laws of q, c and the gradient growth (module docstring; derivations in
    docs/residual/index.md).

    Covered: bounded activations (tanh, erf, sigmoid, hard tanh) and the ReLU family without a
    normaliser; every activation with pre-norm; post-norm.

    Args:
        activation: as in :func:`residual_propagation` (a scalar).
        sigma_w2: as in :func:`residual_propagation` (a scalar).
        sigma_b2: as in :func:`residual_propagation` (a scalar).
        alpha: as in :func:`residual_propagation` (a scalar).
        block: as in :func:`residual_propagation` (a scalar).
        norm: as in :func:`residual_propagation` (a scalar).
        norm_position: as in :func:`residual_propagation` (a scalar).
        q0: initial second moment (enters the power law of pre-norm stacks).

    Returns:
        :class:`ResidualAsymptotics`.

    Raises:
        ValueError: for an unnormalised stack whose activation is neither bounded nor positively
            homogeneous (e.g. GELU), where no law is implemented.

    Examples:
        >>> law = residual_asymptotics("tanh", 1.0, 0.0)
        >>> law.grad_law, round(law.grad_rate, 4)  # log G(L) ~ (8/3) / sqrt(2 pi) sqrt(L)
        ('stretched_exponential', 1.0638)
        >>> law.c_law, round(law.c_star, 6), round(law.c_rate, 4)  # |c_L| ~ L^-(1 - 2/pi)
        ('power', 0.0, 0.3634)
    """
    kernel, ops, _ = _check_common(activation, block, norm, norm_position, None)
    act = kernel.activation
    sw2, sb2 = (
        float(check_positive("sigma_w2", sigma_w2)),
        float(check_positive("sigma_b2", sigma_b2, allow_zero=True)),
    )
    a2 = float(check_positive("alpha", alpha)) ** 2
    q0 = float(check_positive("q0", q0))
    one = np.ones(1)

    def branch_at(q_in: float, c_in: float) -> tuple[float, float, float]:
        branch, _ = _stack_ops(kernel, ops, sw2, sb2, 1.0, None, "pre", 1.0)
        q, lam, factor = q_in * one, q_in * c_in * one, one
        for op in branch:
            q, lam_next, x = apply_op(op, q, lam)
            assert lam_next is not None
            lam, factor = lam_next, factor * x
        return a2 * float(q[0]), a2 * float(lam[0]), a2 * float(factor[0])

    if norm is not None and norm_position == "pre":
        dq, _, x = branch_at(1.0, 1.0)
        c_star, slope = _fixed_point(lambda c: branch_at(1.0, c)[1] / dq)
        if c_star >= 1.0:  # 1 - c ~ (log L)^-2 (the kernel's e^(3/2) correction, weighted by 1 / l)
            return ResidualAsymptotics("linear", dq, "power", x / dq, "logarithmic", 1.0, 2.0, q0)
        return ResidualAsymptotics("linear", dq, "power", x / dq, "power", c_star, 1.0 - slope, q0)
    if norm is not None:
        dq, _, x = branch_at(1.0, 1.0)
        c_star, slope = _fixed_point(lambda c: (c + branch_at(1.0, c)[1]) / (1.0 + dq))
        rate = -math.log(slope) if 0 < slope < 1 else 0.0
        return ResidualAsymptotics(
            "constant", 0.0, "exponential", math.log((1 + x) / (1 + dq)), "exponential", c_star, rate, q0
        )
    gain = kernel.homogeneous_gain
    if gain is not None:
        # everything scales with q: Q_B = G q + O(sigma_b2), X_B = G (the same branch gain)
        # everything scales with q: X_B is the branch's gain, Q_B = X_B q + O(sigma_b2); the kernel's
        # e^(3/2) correction at a constant weight per block gives 1 - c ~ L^-2
        rate = math.log1p(branch_at(1.0, 1.0)[2])
        return ResidualAsymptotics("exponential", rate, "exponential", rate, "power", 1.0, 2.0, q0)
    limits = _limits(act)
    if limits is None:
        raise ValueError(
            f"no asymptotic law for activation {act.name!r} without a normaliser: residual_asymptotics "
            "covers bounded activations and the ReLU family (or any activation with norm='layer'/'rms')"
        )
    return _bounded_laws(kernel, ops, limits, sw2, sb2, a2, q0)


def _bounded_laws(
    kernel: DualKernel,
    ops: tuple[str, ...],
    limits: tuple[float, float],
    sw2: float,
    sb2: float,
    a2: float,
    q0: float,
) -> ResidualAsymptotics:
    """Bounded phi without a normaliser: the stream variance q -> infinity, so the first activation of the
    branch sees phi ~ its step limit m + h sign(u) and E[phi'^2] ~ kappa / sqrt(q)."""
    lo, hi = limits
    m, h = (hi + lo) / 2, (hi - lo) / 2
    act = kernel.activation
    kinks = [k for k in act.kinks if -60.0 < k < 60.0]
    integral = quad(
        lambda x: float(act.deriv(np.array([x]))[0]) ** 2, -60.0, 60.0, points=kinks or None, limit=400
    )
    kappa = integral[0] / math.sqrt(2 * math.pi)

    def branch_inf(c: float) -> tuple[float, float, float]:
        """(Q, Lambda, coefficient of 1 / sqrt(q)) of the branch as the stream variance q -> infinity."""
        q, lam, coeff, stream_scale = math.inf, c, 1.0, 1.0  # lam holds c while q is infinite
        for op in ops:
            if op == "act":
                if math.isinf(q):
                    q, lam = (
                        m * m + h * h,
                        m * m + h * h * (2 / math.pi) * math.asin(max(-1.0, min(1.0, lam))),
                    )
                    coeff *= kappa / math.sqrt(stream_scale)
                else:
                    mm, d = _moments(kernel, np.array([q]))
                    cc = max(-1.0, min(1.0, lam / q))
                    lam = float(_cross(kernel, np.array([q]), np.array([cc]))[0])
                    q, coeff = float(mm[0]), coeff * float(d[0])
            else:
                coeff *= sw2
                if math.isinf(q):
                    stream_scale *= sw2
                else:
                    q, lam = sw2 * q + sb2, sw2 * lam + sb2
        return a2 * q, a2 * lam, a2 * coeff

    dq, _, coeff = branch_inf(1.0)
    c_star, slope = _fixed_point(lambda c: branch_inf(c)[1] / dq)
    return ResidualAsymptotics(
        "linear", dq, "stretched_exponential", 2.0 * coeff / math.sqrt(dq), "power", c_star, 1.0 - slope, q0
    )
