"""Orthogonal initializers for convolutions and deep stacks, and the exact spectrum of a circular convolution.

Follows ``torch.nn.init``: the initializers work in place, end in ``_``, run under ``no_grad``, accept
``generator=``, expect the weight layout ``(out, in, *kernel)`` and return the tensor; ``gain`` multiplies
the orthogonal factor directly, so ``gain = sigma_w = sqrt(sigma_w2)`` in mean-field notation (TensorFlow
<= 1.12 multiplied by ``sqrt(gain)``; JAX's ``scale`` multiplies directly, as here).

Constructions (Xiao, Bahri, Sohl-Dickstein, Schoenholz, Pennington, ICML 2018, section 3 and algorithms
1-2; docs/xiao/theory.md):

- Haar orthogonal factors: QR of a Gaussian matrix with the signs of ``diag(R)`` made positive (Mezzadri
  2007, "How to generate random matrices from the classical compact groups", section 5). For ``in <= out``
  the first ``in`` columns of a Haar ``out x out`` matrix are drawn directly as the Q of an ``out x in``
  Gaussian (same distribution: Haar measure on the Stiefel manifold).
- :func:`delta_orthogonal_`: ``W[:, :, centre] = gain * H`` with ``H`` (out x in) Haar with orthonormal
  columns, zeros at every other tap (algorithm 2). Every spatial Fourier block of the operator is ``gain *
  H`` up to a phase, so the convolution is an isometry times ``gain`` for every padding that keeps the
  centre tap aligned (circular, and zero padding too, because the other taps vanish).
- :func:`orthogonal_conv_`: the block-orthogonal kernel with spatial spread (algorithm 1; TensorFlow's
  ``ConvolutionOrthogonal1D/2D/3D``): a paraunitary matrix polynomial ``A(z) = prod_s (P_s + (I - P_s)
  z_{axis(s)})`` built from random symmetric projections ``P = Q diag(mask) Q^T`` (Q Haar, each column kept
  with probability 1/2), then ``W[:, :, b] = gain * A_b H``. Each factor is unitary on the unit torus, so
  ``K(omega) = gain * A(omega) H`` has orthonormal columns times gain at every frequency: the operator is
  exactly ``gain`` times an isometry under circular padding (only approximately with zero padding).
- :func:`conv_operator_blocks` / :func:`conv_operator_singular_values`: the circular convolution as
  computed by ``nn.ConvNd(k, padding=(k - 1) // 2, padding_mode="circular")`` (a cross-correlation),
  block-diagonalised by the spatial DFT, ``Y[m] = K(m) X[m]`` with ``K(m) = sum_b W[:, :, b] exp(+2 pi i
  m . (b - p) / n)``; its singular values are those of all the ``K(m)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import nn

from dltheory.core.validation import check_choice, check_int, check_positive

WEIGHT_SCHEMES = ("delta_orthogonal", "orthogonal", "gaussian")
#: matrices per chunk when a large CPU batch of Haar matrices is factorised on a thread pool
HAAR_CHUNK = 256
_MAX_RANK = 5  # (out, in, *kernel) for Conv1d/2d/3d


# ------------------------------------------------------------------------------------ validation


def _check_weight(tensor: torch.Tensor, *, what: str, odd_kernel: bool) -> tuple[int, int, tuple[int, ...]]:
    """Check ``tensor`` is a (out, in, *kernel) weight with in <= out; return (out, in, kernel)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what}: tensor must be a torch.Tensor, got {type(tensor).__name__}")
    shape = tuple(tensor.shape)
    if not 2 <= tensor.dim() <= _MAX_RANK:
        raise ValueError(
            f"{what}: tensor of shape {shape} has rank {tensor.dim()}; allowed: rank 2 (Linear weight "
            "(out, in)) or 3-5 (Conv1d/2d/3d weight (out, in, *kernel))"
        )
    if tensor.numel() == 0:
        raise ValueError(f"{what}: tensor of shape {shape} is empty; every dimension must be >= 1")
    if not (tensor.is_floating_point()):
        raise TypeError(f"{what}: tensor must be floating point, got dtype {tensor.dtype}")
    c_out, c_in, kernel = shape[0], shape[1], shape[2:]
    if c_in > c_out:
        raise ValueError(
            f"{what}: tensor of shape {shape} has in={c_in} > out={c_out}; an orthogonal (norm-preserving) "
            "layer needs in <= out (layout (out, in, *kernel))"
        )
    if odd_kernel and any(k % 2 == 0 for k in kernel):
        raise ValueError(
            f"{what}: tensor of shape {shape} has kernel size {kernel} with an even side; the centre tap is "
            "defined only for odd sizes (allowed: odd kernel sides, e.g. 1, 3, 5; sides may differ)"
        )
    return c_out, c_in, kernel


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """QR runs in float64 for float64 weights, float32 otherwise (half precisions included)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ------------------------------------------------------------------------------------ Haar factors


def haar_orthogonal(
    rows: int,
    cols: int | None = None,
    *,
    batch: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Haar-distributed matrices with orthonormal columns, ``(rows, cols)`` or ``(batch, rows, cols)``.

    ``Q`` of the QR decomposition of a standard Gaussian ``rows x cols`` matrix, each column multiplied by
    the sign of the matching diagonal entry of ``R`` (Mezzadri 2007): exactly the first ``cols`` columns of
    a Haar orthogonal ``rows x rows`` matrix. ``cols`` defaults to ``rows``; ``cols > rows`` is refused.

    With ``batch`` the matrices come from batched QRs. On the CPU a batch larger than
    :data:`HAAR_CHUNK` is cut into chunks of that many matrices, each drawn from its own generator seeded
    from ``generator`` and factorised on a thread pool of ``torch.get_num_threads()`` workers (torch
    releases the GIL in LAPACK, and the per-matrix QRs dominate the cost); the chunking does not depend on
    the thread count, so a seeded generator gives the same matrices on every machine.

    Args:
        rows: number of rows.
        cols: number of orthonormal columns (default ``rows``), ``<= rows``.
        batch: number of matrices (default: a single matrix).
        dtype: result dtype (the QR runs in float32 or float64).
        device: where the matrices are drawn.
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global generator).

    Returns:
        ``(rows, cols)`` or ``(batch, rows, cols)`` tensor with orthonormal columns.

    Raises:
        ValueError: when ``cols > rows`` or a size is not a positive integer.

    References:
        Mezzadri (2007), How to generate random matrices from the classical compact groups, section 5.

    Examples:
        >>> import torch
        >>> from dltheory.nn import haar_orthogonal
        >>> q = haar_orthogonal(4, 3, generator=torch.Generator().manual_seed(0))
        >>> q.shape, torch.allclose(q.T @ q, torch.eye(3), atol=1e-6)
        (torch.Size([4, 3]), True)
    """
    rows = check_int("rows", rows, minimum=1)
    cols = rows if cols is None else check_int("cols", cols, minimum=1)
    if cols > rows:
        raise ValueError(f"cols must be <= rows for orthonormal columns, got rows={rows}, cols={cols}")
    work = _compute_dtype(dtype)
    target = torch.device(device) if device is not None else torch.empty(0).device
    if batch is None:
        return _sign_fixed_qr(torch.randn((rows, cols), dtype=work, device=target, generator=generator)).to(
            dtype
        )
    batch = check_int("batch", batch, minimum=1)
    if batch <= HAAR_CHUNK or target.type != "cpu":
        gaussian = torch.randn((batch, rows, cols), dtype=work, device=target, generator=generator)
        return _sign_fixed_qr(gaussian).to(dtype)
    chunks = math.ceil(batch / HAAR_CHUNK)
    seeds = torch.randint(0, 2**62, (chunks,), generator=generator).tolist()
    out = torch.empty((batch, rows, cols), dtype=work)

    def fill(index: int) -> None:
        lo, hi = index * HAAR_CHUNK, min(batch, (index + 1) * HAAR_CHUNK)
        local = torch.Generator().manual_seed(seeds[index])
        out[lo:hi] = _sign_fixed_qr(torch.randn((hi - lo, rows, cols), dtype=work, generator=local))

    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        list(pool.map(fill, range(chunks)))
    return out.to(dtype)


def _sign_fixed_qr(gaussian: torch.Tensor) -> torch.Tensor:
    """Q of the QR decomposition with the signs of diag(R) made positive (zero counts as positive)."""
    q, r = torch.linalg.qr(gaussian)
    signs = torch.diagonal(r, dim1=-2, dim2=-1).sign()
    return q * torch.where(signs == 0, torch.ones_like(signs), signs).unsqueeze(-2)


def _centre(kernel: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((k - 1) // 2 for k in kernel)


def _tap_index(leading: int, tap: Sequence[int]) -> tuple[slice | int, ...]:
    """Index of one kernel tap behind ``leading`` full dimensions."""
    return (slice(None),) * leading + tuple(tap)


# ------------------------------------------------------------------------------------ delta orthogonal


def delta_orthogonal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a Conv1d/2d/3d weight ``(out, in, *kernel)`` with a delta-orthogonal kernel, in place.

    ``W[:, :, centre] = gain * H``, zero elsewhere, ``H`` Haar with orthonormal columns (Xiao et al. 2018,
    algorithm 2). A 2-D (Linear) weight gets ``gain * H`` (plain orthogonal). Requires ``in <= out`` and
    odd kernel sides (the centre tap ``(k - 1) // 2`` is then also torch's ``k // 2``); sides may differ.

    Args:
        tensor: weight ``(out, in, *kernel)`` (or ``(out, in)``) with ``in <= out`` and odd kernel sides.
        gain: multiplies the orthogonal factor (``gain = sigma_w = sqrt(sigma_w2)``).
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global generator).

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: for ``in > out``, an even kernel side (ambiguous centre), an unsupported rank or an empty
            tensor.

    References:
        Xiao et al. (2018), algorithm 2. See docs/xiao/theory.md (orthogonal convolution kernels).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from dltheory.nn import conv_operator_singular_values, delta_orthogonal_
        >>> conv = nn.Conv2d(16, 32, 3, padding=1, padding_mode="circular")
        >>> _ = delta_orthogonal_(conv.weight, gain=1.2, generator=torch.Generator().manual_seed(0))
        >>> s = conv_operator_singular_values(conv.weight.detach(), (8, 8))
        >>> round(float(s.min()), 5), round(float(s.max()), 5)      # an isometry times the gain
        (1.2, 1.2)
    """
    _, c_in, kernel = _check_weight(tensor, what="delta_orthogonal_", odd_kernel=True)
    with torch.no_grad():
        h = haar_orthogonal(
            tensor.shape[0], c_in, dtype=tensor.dtype, device=tensor.device, generator=generator
        )
        tensor.zero_()
        tensor[_tap_index(2, _centre(kernel))] = gain * h
    return tensor


def delta_orthogonal_stack_(
    tensors: torch.Tensor | Sequence[torch.Tensor],
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor | Sequence[torch.Tensor]:
    """Delta-orthogonal initialisation of many same-shaped weights with one batched QR, in place.

    ``tensors`` is either one stacked tensor ``(depth, out, in, *kernel)`` (e.g. the single stack parameter
    of a 10,000-layer network) or a sequence of tensors of one shape ``(out, in, *kernel)`` (e.g. the
    weights of an ``nn.Sequential`` of convolutions). The result has the distribution of calling
    :func:`delta_orthogonal_` on each layer independently, but all Haar factors come from a single batched
    QR of a ``(depth, out, in)`` Gaussian.

    Args:
        tensors: a stacked ``(depth, out, in, *kernel)`` tensor or a sequence of same-shaped weights.
        gain: multiplies the orthogonal factors.
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global generator).

    Returns:
        ``tensors``, filled in place.

    Raises:
        ValueError: for mixed shapes, ``in > out`` or even kernel sides.

    References:
        Xiao et al. (2018), algorithm 2.

    Examples:
        >>> import torch
        >>> from dltheory.nn import delta_orthogonal_stack_
        >>> stack = torch.empty(100, 8, 8, 3, 3)              # 100 layers of 8 channels
        >>> _ = delta_orthogonal_stack_(stack, gain=1.0, generator=torch.Generator().manual_seed(0))
        >>> float(stack[:, :, :, 0, 0].abs().max())           # zero away from the centre tap
        0.0
    """
    if isinstance(tensors, torch.Tensor):
        if tensors.dim() < 3:
            raise ValueError(
                f"delta_orthogonal_stack_: a stacked tensor must have shape (depth, out, in, *kernel), got "
                f"shape {tuple(tensors.shape)}"
            )
        if tensors.shape[0] == 0:
            raise ValueError(
                f"delta_orthogonal_stack_: stacked tensor of shape {tuple(tensors.shape)} is empty (depth 0)"
            )
        _, c_in, kernel = _check_weight(tensors[0], what="delta_orthogonal_stack_", odd_kernel=True)
        with torch.no_grad():
            h = haar_orthogonal(
                tensors.shape[1],
                c_in,
                batch=tensors.shape[0],
                dtype=tensors.dtype,
                device=tensors.device,
                generator=generator,
            )
            tensors.zero_()
            tensors[_tap_index(3, _centre(kernel))] = gain * h
        return tensors
    layers = list(tensors)
    if not layers:
        raise ValueError("delta_orthogonal_stack_: got an empty sequence of tensors; need at least one")
    first = layers[0]
    _, c_in, kernel = _check_weight(first, what="delta_orthogonal_stack_", odd_kernel=True)
    for i, layer in enumerate(layers):
        if layer.shape != first.shape or layer.dtype != first.dtype or layer.device != first.device:
            raise ValueError(
                f"delta_orthogonal_stack_: all tensors must share shape, dtype and device; tensor 0 is "
                f"{tuple(first.shape)} {first.dtype} on {first.device}, tensor {i} is {tuple(layer.shape)} "
                f"{layer.dtype} on {layer.device}"
            )
    with torch.no_grad():
        h = haar_orthogonal(
            first.shape[0],
            c_in,
            batch=len(layers),
            dtype=first.dtype,
            device=first.device,
            generator=generator,
        )
        h.mul_(gain)
        index = _tap_index(2, _centre(kernel))
        torch._foreach_zero_(layers)
        torch._foreach_copy_([layer[index] for layer in layers], list(h.unbind(0)))
    return tensors


# ------------------------------------------------------------------------------------ block orthogonal


def _symmetric_projection(
    n: int, dtype: torch.dtype, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """``P = Q diag(mask) Q^T`` with Q Haar n x n and each mask entry 1 with probability 1/2."""
    q = haar_orthogonal(n, dtype=dtype, device=device, generator=generator)
    keep = torch.rand(n, dtype=dtype, device=device, generator=generator) < 0.5
    kept = q[:, keep]
    return kept @ kept.T


def _times_factor(taps: torch.Tensor, p: torch.Tensor, axis: int) -> torch.Tensor:
    """Right-multiply the matrix polynomial with taps ``taps[*b, n, n]`` by ``P + (I - P) z_axis``."""
    eye = torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
    pad_shape = list(taps.shape)
    pad_shape[axis] = 1
    zeros = taps.new_zeros(pad_shape)
    low = torch.cat([taps, zeros], dim=axis) @ p
    high = torch.cat([zeros, taps], dim=axis) @ (eye - p)
    return low + high


def orthogonal_conv_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill a Conv1d/2d/3d weight ``(out, in, *kernel)`` with a block-orthogonal kernel with spatial spread.

    The circular convolution with the result is exactly ``gain`` times an isometry (all operator singular
    values equal ``gain`` on every grid; see :func:`conv_operator_singular_values`). Construction (Xiao et
    al. 2018, algorithm 1; TensorFlow's ConvolutionOrthogonal1D/2D/3D generalised to unequal sides): the
    taps of ``A(z) = prod_s (P_s + (I - P_s) z_{axis(s)})``, ``k_axis - 1`` factors per axis (interleaved
    over axes), ``P_s`` independent random symmetric projections of size out x out; then ``W[:, :, b] =
    gain * A_b H`` with ``H`` (out x in) Haar with orthonormal columns. Any kernel sides >= 1 (even ones
    included); requires ``in <= out``; a 2-D weight gets plain orthogonal. Computed in float64, then cast.

    Args:
        tensor: weight ``(out, in, *kernel)`` (or ``(out, in)``) with ``in <= out``.
        gain: multiplies the isometry.
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global generator).

    Returns:
        ``tensor``, filled in place.

    Raises:
        ValueError: for ``in > out``, an unsupported rank or an empty tensor.

    References:
        Xiao et al. (2018), algorithm 1.

    Examples:
        >>> import torch
        >>> from dltheory.nn import conv_operator_singular_values, orthogonal_conv_
        >>> w = orthogonal_conv_(torch.empty(8, 8, 3, 3), generator=torch.Generator().manual_seed(0))
        >>> s = conv_operator_singular_values(w, (6, 6))
        >>> s.shape, round(float(s.min()), 5), round(float(s.max()), 5)
        (torch.Size([288]), 1.0, 1.0)
    """
    c_out, c_in, kernel = _check_weight(tensor, what="orthogonal_conv_", odd_kernel=False)
    work, device = torch.float64, tensor.device
    with torch.no_grad():
        taps = torch.eye(c_out, dtype=work, device=device).reshape((1,) * len(kernel) + (c_out, c_out))
        for step in range(max(kernel, default=1) - 1):
            for axis, size in enumerate(kernel):
                if step < size - 1:
                    taps = _times_factor(taps, _symmetric_projection(c_out, work, device, generator), axis)
        h = haar_orthogonal(c_out, c_in, dtype=work, device=device, generator=generator)
        weight = (gain * taps @ h).permute(len(kernel), len(kernel) + 1, *range(len(kernel)))
        tensor.copy_(weight)
    return tensor


# ------------------------------------------------------------------------------------ operator spectrum


def _check_grid(weight: torch.Tensor, spatial_shape: Sequence[int]) -> tuple[int, ...]:
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or weight.dim() > _MAX_RANK:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a tensor (out, in, *kernel) of rank 2-5, got {shape}")
    if weight.numel() == 0:
        raise ValueError(f"weight of shape {tuple(weight.shape)} is empty")
    grid = tuple(int(check_int("spatial_shape entry", n, minimum=1)) for n in spatial_shape)
    if len(grid) != weight.dim() - 2:
        raise ValueError(
            f"spatial_shape {tuple(spatial_shape)} has {len(grid)} entries but weight of shape "
            f"{tuple(weight.shape)} has {weight.dim() - 2} spatial dimensions"
        )
    return grid


def conv_operator_blocks(
    weight: torch.Tensor, spatial_shape: Sequence[int], padding: Sequence[int] | None = None
) -> torch.Tensor:
    """Fourier blocks ``K[*m, out, in]`` (complex128) of the circular convolution with ``weight``.

    The operator is the one ``nn.ConvNd(in, out, kernel, padding=p, padding_mode="circular", bias=False)``
    applies to inputs of size ``spatial_shape`` (stride 1, dilation 1, output size = input size, which
    needs ``2 p = k - 1``; ``p`` defaults to ``(k - 1) // 2``, i.e. ``padding="same"`` for every k):
    ``y[a] = sum_b W[:, :, b] x[(a + b - p) mod n]`` (cross-correlation). With ``X = fftn(x)``,
    ``fftn(y)[m] = K[m] @ X[m]``, ``K[m] = sum_b W[:, :, b] exp(+2 pi i m . (b - p) / n)``; taps that
    wrap around a grid smaller than the kernel are summed.

    Args:
        weight: kernel ``(out, in, *kernel)``.
        spatial_shape: input size per spatial dimension.
        padding: padding per dimension (default ``(k - 1) // 2``).

    Returns:
        Complex128 tensor ``(*spatial_shape, out, in)``: one block per frequency m.

    Raises:
        ValueError: when ``spatial_shape`` or ``padding`` does not match the kernel.

    Examples:
        >>> import torch
        >>> from dltheory.nn import conv_operator_blocks
        >>> conv_operator_blocks(torch.randn(8, 4, 3, 3), (6, 6)).shape
        torch.Size([6, 6, 8, 4])
    """
    grid = _check_grid(weight, spatial_shape)
    kernel = tuple(weight.shape[2:])
    pads = _centre(kernel) if padding is None else tuple(int(p) for p in padding)
    if len(pads) != len(kernel):
        raise ValueError(f"padding {tuple(pads)} must have one entry per spatial dimension ({len(kernel)})")
    w = weight.detach().to(torch.float64).cpu()
    placed = torch.zeros(w.shape[:2] + grid, dtype=torch.float64)
    for tap in itertools.product(*(range(k) for k in kernel)):
        target = tuple((b - p) % n for b, p, n in zip(tap, pads, grid, strict=True))
        placed[_tap_index(2, target)] += w[_tap_index(2, tap)]
    dims = tuple(range(2, 2 + len(grid)))
    blocks = torch.fft.ifftn(placed, dim=dims) * math.prod(grid) if dims else placed.to(torch.complex128)
    return blocks.permute(*dims, 0, 1)


def conv_operator_singular_values(weight: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """All singular values (float64, descending) of the circular convolution with ``weight`` on a grid of
    size ``spatial_shape``: the singular values of every Fourier block ``K[m]`` of
    :func:`conv_operator_blocks` (``prod(spatial_shape) * min(out, in)`` values). A kernel from
    :func:`orthogonal_conv_` or :func:`delta_orthogonal_` gives all values equal to ``gain``.

    Args:
        weight: kernel ``(out, in, *kernel)``.
        spatial_shape: input size per spatial dimension.

    Returns:
        Float64 tensor of ``prod(spatial_shape) * min(out, in)`` singular values, descending.

    Examples:
        >>> import torch
        >>> from dltheory.nn import conv_operator_singular_values
        >>> w = torch.zeros(2, 2, 3, 3)
        >>> w[:, :, 1, 1] = torch.eye(2)                      # the identity convolution
        >>> conv_operator_singular_values(w, (4, 4)).unique().tolist()
        [1.0]
    """
    blocks = conv_operator_blocks(weight, spatial_shape)
    values = torch.linalg.svdvals(blocks).reshape(-1)
    return torch.sort(values, descending=True).values


# ------------------------------------------------------------------------------------ critical init


def _fan_in(weight: torch.Tensor) -> int:
    return int(weight.shape[1] * math.prod(weight.shape[2:]))


def _init_weight_(weight: torch.Tensor, scheme: str, gain: float, generator: torch.Generator | None) -> None:
    if scheme == "gaussian":
        weight.normal_(0.0, gain / math.sqrt(_fan_in(weight)), generator=generator)
        return
    if weight.shape[1] > weight.shape[0]:
        # in > out (e.g. a read-out): orthonormal rows, the transpose of the construction
        flipped = torch.empty_like(weight.transpose(0, 1))
        _init_weight_(flipped, scheme, gain, generator)
        weight.copy_(flipped.transpose(0, 1))
        return
    if scheme == "delta_orthogonal" and all(k % 2 == 1 for k in weight.shape[2:]):
        delta_orthogonal_(weight, gain, generator)
    else:
        orthogonal_conv_(weight, gain, generator)


def critical_init_(
    module: nn.Module,
    activation: Any,
    *,
    sigma_b2: float | None = None,
    q_star: float | None = None,
    weights: str = "delta_orthogonal",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Initialise every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` of ``module`` at the mean-field critical point.

    The critical point ``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2] = 1`` (Schoenholz et al. 2017, eq. 5; Xiao
    et al. 2018, eq. 2.7) is taken either at the given ``sigma_b2`` (via
    :func:`dltheory.signalprop.critical_sigma_w2`) or at the given fixed-point variance ``q_star`` (via
    :func:`dltheory.signalprop.spectrum.critical_point_for_q_star`; small q* brings tanh networks close to
    dynamical isometry, Pennington et al. 2017). Exactly one of the two must be given.

    ``weights``: ``"delta_orthogonal"`` (:func:`delta_orthogonal_`; kernels with an even side fall back to
    :func:`orthogonal_conv_`), ``"orthogonal"`` (:func:`orthogonal_conv_`, plain orthogonal for Linear) or
    ``"gaussian"`` (i.i.d. ``N(0, sigma_w2 / fan_in)``); orthogonal schemes use ``gain = sqrt(sigma_w2)``.
    Layers with ``in > out`` (read-outs) get orthonormal rows. Biases are drawn ``N(0, sigma_b2)`` (zero when
    ``sigma_b2 = 0``).

    Args:
        module: the model; every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` in it is initialised.
        activation: the activation of the network (name, :class:`~dltheory.core.activations.Activation` or
            callable).
        sigma_b2: bias variance of the critical point (exclusive with ``q_star``).
        q_star: fixed point of the critical point (exclusive with ``sigma_b2``).
        weights: ``"delta_orthogonal"``, ``"orthogonal"`` or ``"gaussian"``.
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global generator).

    Returns:
        ``module``, initialised in place.

    Raises:
        ValueError: when both or neither of ``sigma_b2`` and ``q_star`` are given, for an unknown scheme, or
            for grouped convolutions.

    References:
        Schoenholz et al. (2017), eq. 5; Xiao et al. (2018), eq. 2.7; Pennington et al. (2017).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from dltheory.nn import critical_init_
        >>> model = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
        >>> _ = critical_init_(model, "tanh", sigma_b2=0.05, weights="orthogonal",
        ...                    generator=torch.Generator().manual_seed(0))
        >>> round(float((model[2].weight.detach() ** 2).sum(1).mean()), 4)   # sigma_w2 = 1.7610
        1.761
    """
    from dltheory.signalprop import critical_sigma_w2
    from dltheory.signalprop.spectrum import critical_point_for_q_star

    check_choice("weights", weights, WEIGHT_SCHEMES)
    if (sigma_b2 is None) == (q_star is None):
        raise ValueError(
            f"give exactly one of sigma_b2 and q_star, got sigma_b2={sigma_b2!r}, q_star={q_star!r}"
        )
    if q_star is not None:
        sw2, sb2 = (float(v) for v in critical_point_for_q_star(activation, q_star))
    else:
        sb2 = float(check_positive("sigma_b2", sigma_b2, allow_zero=True))
        sw2 = float(critical_sigma_w2(activation, sb2))
    layers = [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    if not layers:
        raise ValueError(
            f"module {type(module).__name__} has no nn.Linear or nn.Conv1d/2d/3d layer to initialise"
        )
    grouped = [type(m).__name__ for m in layers if getattr(m, "groups", 1) != 1]
    if grouped:
        raise ValueError(
            f"critical_init_ supports convolutions with groups=1 only; got grouped layers {grouped[:3]} in "
            f"{type(module).__name__}"
        )
    with torch.no_grad():
        for layer in layers:
            _init_weight_(layer.weight, weights, math.sqrt(sw2), generator)
            if layer.bias is not None:
                layer.bias.normal_(0.0, math.sqrt(sb2), generator=generator)
    return module
