"""Residual stacks found in a dataflow graph: where the blocks are, how the squared gradient grows across
them, how deep the same blocks could go before it grows 10x or 100x, and which branch multiplier brings
the growth to a target (numpy only).

A *block* is an addition ``h_out = skip(s) + branch(s)`` whose two summands lead back, through chains of
single-input operations, to a common node ``s`` (the stream entering the block): the longer chain is the
branch, the shorter one the skip (empty for an identity skip, one dense layer for a projection). Blocks are
*consecutive* when the stream leaving one (the addition, or the normaliser right after it: post-norm) is
the stream entering the next. The stack is the longest run of consecutive blocks.

The depth laws use the block-level engine :func:`dltheory.signalprop.residual.propagate_stack` on the
blocks' own operations and parameters (mean statistics over the inputs): it continues the stack past the
model's depth with copies of its last block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dltheory.core.activations import Activation
from dltheory.signalprop.graph import GraphNode
from dltheory.signalprop.kernels import dual_kernel
from dltheory.signalprop.residual import BranchOp, propagate_stack

#: single-input operations a branch or a skip may consist of
_CHAIN_KINDS = ("dense", "act", "scale", "norm", "pass")


@dataclass(frozen=True)
class StackBlock:
    """One residual block: the add node, the stream node entering (``start``) and leaving (``end``: the add
    or its post-normaliser), the branch and skip node chains (in execution order) and the post-normaliser
    node (or None)."""

    add: int
    start: int
    end: int
    branch: tuple[int, ...]
    skip: tuple[int, ...]
    post: int | None

    @property
    def identity_skip(self) -> bool:
        return not self.skip


def _chain_back(nodes: Sequence[GraphNode], start: int) -> list[int]:
    """Nodes from ``start`` back through single-input operations: [start, parent, grandparent, ...] up to and
    including the first node that is not such an operation."""
    path = [start]
    i = start
    while nodes[i].kind in _CHAIN_KINDS and len(nodes[i].inputs) == 1:
        i = nodes[i].inputs[0]
        path.append(i)
    return path


def find_blocks(nodes: Sequence[GraphNode], uncovered: dict[int, str] | None = None) -> list[StackBlock]:
    """The residual stack of a graph: the longest run of consecutive blocks (module docstring), in order.

    Args:
        nodes: the graph.
        uncovered: nodes the mean-field rules do not cover (their additions are not blocks).

    Returns:
        The blocks (empty when the graph has no residual addition).

    Examples:
        >>> from dltheory.signalprop.layerwise import ChainLayer
        >>> nodes = [GraphNode("input")]
        >>> for k in range(3):  # h <- h + W tanh(h)
        ...     h = len(nodes) - 1
        ...     nodes += [GraphNode("act", (h,), activation="tanh"),
        ...               GraphNode("dense", (h + 1,), layer=ChainLayer(1.0, 0.0), source=f"W{k}"),
        ...               GraphNode("add", (h, h + 2))]
        >>> [(b.start, b.branch, b.end) for b in find_blocks(nodes)]
        [(0, (1, 2), 3), (3, (4, 5), 6), (6, (7, 8), 9)]
    """
    uncovered = uncovered or {}
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for j in set(node.inputs):
            consumers[j].append(i)
    blocks = []
    for i, node in enumerate(nodes):
        if node.kind != "add" or len(node.inputs) != 2 or i in uncovered:
            continue
        a, b = (_chain_back(nodes, j) for j in node.inputs)
        common = next((k for k in a if k in b), None)
        if common is None:
            continue
        chain_a, chain_b = a[: a.index(common)], b[: b.index(common)]
        branch, skip = (chain_a, chain_b) if len(chain_a) >= len(chain_b) else (chain_b, chain_a)
        if not any(nodes[k].kind == "dense" for k in branch):
            continue
        users = consumers[i]
        post = users[0] if len(users) == 1 and nodes[users[0]].kind == "norm" else None
        blocks.append(
            StackBlock(
                i, common, post if post is not None else i, tuple(branch[::-1]), tuple(skip[::-1]), post
            )
        )
    runs: list[list[StackBlock]] = []
    for block in blocks:
        if runs and _reaches(nodes, runs[-1][-1].end, block.start):
            runs[-1].append(block)
        else:
            runs.append([block])
    return max(runs, key=len) if runs else []


def _reaches(nodes: Sequence[GraphNode], end: int, start: int) -> bool:
    """True when ``start`` is ``end`` or follows it through pass operations only."""
    i = start
    while i != end and nodes[i].kind == "pass" and len(nodes[i].inputs) == 1:
        i = nodes[i].inputs[0]
    return i == end


def branch_ops(
    nodes: Sequence[GraphNode], block: StackBlock
) -> tuple[tuple[BranchOp, ...], BranchOp | None] | None:
    """The block's branch (and post-normaliser) as :class:`~dltheory.signalprop.residual.BranchOp` s, or
    None when an operation has no block-level form (a normaliser with a bias, a projection skip)."""
    if not block.identity_skip:
        return None
    ops: list[BranchOp] = []
    for k in block.branch:
        op = _op(nodes[k])
        if op is False:
            return None
        if isinstance(op, BranchOp):
            ops.append(op)
    post = None
    if block.post is not None:
        post_op = _op(nodes[block.post])
        if not isinstance(post_op, BranchOp):
            return None
        post = post_op
    return tuple(ops), post


def _op(node: GraphNode) -> BranchOp | None | bool:
    if node.kind == "pass":
        return None
    if node.kind == "act":
        assert isinstance(node.activation, Activation)
        return BranchOp("act", dual_kernel(node.activation), fast=True)
    if node.kind == "dense":
        assert node.layer is not None
        return BranchOp("dense", sigma_w2=node.layer.sigma_w2, sigma_b2=node.layer.sigma_b2)
    if node.kind == "scale":
        return BranchOp("scale", scale=node.scale)
    if node.kind == "norm" and node.norm is not None and node.norm.beta2 == 0.0:
        return BranchOp("norm", gamma2=node.norm.gamma2, eps=node.norm.eps, nu=node.norm.nu)
    return False


@dataclass(frozen=True)
class StackGrowth:
    """Block-level growth of the squared gradient across a residual stack.

    Attributes:
        chi: per block (the model's blocks, then copies of its last block), ``|g_l|^2 / |g_{l+1}|^2``.
        growth: ``growth[L] = prod_{l < L} chi_l`` (``growth[0] = 1``).
        blocks: how many of the entries are the model's own blocks.
    """

    chi: np.ndarray
    growth: np.ndarray
    blocks: int

    def depth_exceeding(self, factor: float) -> int | None:
        """The smallest number of blocks L with ``growth[L] >= factor``, or None within the horizon."""
        reached = np.nonzero(self.growth >= factor)[0]
        return int(reached[0]) if reached.size else None


def stack_growth(
    ops: Sequence[tuple[tuple[BranchOp, ...], BranchOp | None]],
    q0: float,
    *,
    horizon: int = 0,
    until: float | None = None,
    multiplier: object = 1.0,
) -> StackGrowth:
    """Squared-gradient growth of the blocks ``ops`` from stream second moment ``q0``, with every branch
    multiplied by ``multiplier`` (a float, or an array: one stack per value, along a new last axis of
    ``chi``), continued with copies of the last block up to ``horizon`` blocks in total, or, with
    ``until``, only as far as needed for the growth to reach ``until`` (in chunks of doubling size).

    Examples:
        ReLU reduced blocks at sigma_w2 = 2 double the squared gradient:

        >>> relu = (BranchOp("act", dual_kernel("relu")), BranchOp("dense", sigma_w2=2.0))
        >>> g = stack_growth([(relu, None)] * 3, 1.0, horizon=100, until=100.0)
        >>> g.growth[:4].tolist(), g.depth_exceeding(100.0), len(g.growth) - 1 < 100
        ([1.0, 2.0, 4.0, 8.0], 7, True)
    """
    if not ops:
        raise ValueError("ops must describe at least one block")
    scale = BranchOp("scale", scale=np.asarray(multiplier, dtype=np.float64))
    q = np.broadcast_to(np.asarray(q0, dtype=np.float64), np.shape(scale.scale))
    branches = [(*branch, scale) for branch, _ in ops]
    qs, _, chi = propagate_stack(branches, len(ops), q, None, [post for _, post in ops])
    chis = [chi]
    done, chunk = len(ops), 64
    last = ((*ops[-1][0], scale), ops[-1][1])
    while done < horizon:
        if until is not None and float(np.min(np.prod([np.prod(c, axis=0) for c in chis], axis=0))) >= until:
            break
        steps = min(chunk, horizon - done) if until is not None else horizon - done
        qs, _, chi = propagate_stack(last[0], steps, qs[-1], None, last[1])
        chis.append(chi)
        done, chunk = done + steps, chunk * 2
    chi = np.concatenate(chis)
    with np.errstate(over="ignore"):
        growth = np.concatenate([np.ones((1,) + chi.shape[1:]), np.cumprod(chi, axis=0)])
    return StackGrowth(chi, growth, len(ops))


def solve_multiplier(
    ops: Sequence[tuple[tuple[BranchOp, ...], BranchOp | None]],
    q0: float,
    target: float,
    *,
    low: float = 1e-3,
    high: float = 10.0,
) -> tuple[float, float] | None:
    """The branch multiplier r in [low, high] whose stack growth is closest to ``target`` (on a log scale):
    a 97-point logarithmic grid, then a 97-point refinement around the best point. Returns (r, growth), or
    None when the closest growth is more than a factor 1.5 from the target.

    Examples:
        >>> relu = (BranchOp("act", dual_kernel("relu")), BranchOp("dense", sigma_w2=2.0))
        >>> r, growth = solve_multiplier([(relu, None)] * 10, 1.0, 2.0)
        >>> abs(r - (2 ** 0.1 - 1) ** 0.5) < 1e-3, round(growth, 3)  # (1 + r^2)^10 = 2
        (True, 2.0)
    """
    grid = np.geomspace(low, high, 97)
    for _ in range(2):
        end = stack_growth(ops, q0, multiplier=grid).growth[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            miss = np.abs(np.log(end) - np.log(target))
        miss = np.where(np.isfinite(miss), miss, np.inf)
        best = int(np.argmin(miss))
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
        r, growth, error = float(grid[best]), float(end[best]), float(miss[best])
        grid = np.geomspace(lo, hi, 97)
    if error > np.log(1.5):
        return None
    return r, growth
