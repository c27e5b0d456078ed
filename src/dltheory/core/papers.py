"""The papers dltheory reproduces: one record each, in report order (the single source of this metadata)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """One reproduced paper.

    Attributes:
        key: short id used by experiments (``Experiment.paper``) and reports.
        title: authors, venue and title.
        claim: the paper's main claim, in our words (the report states it above the paper's experiments).
        headline: the paper's headline number or figure, as the paper reports it.
    """

    key: str
    title: str
    claim: str
    headline: str


PAPER_LIST: tuple[Paper, ...] = (
    Paper(
        "foundation",
        "dltheory foundations (sanity checks of the tooling)",
        "The tooling itself: data, training loop, run directories and report work end to end on real data.",
        "softmax regression on MNIST reaches the textbook ~92% test accuracy",
    ),
    Paper(
        "xiao",
        "Xiao, Bahri, Sohl-Dickstein, Schoenholz, Pennington (ICML 2018): Dynamical Isometry and a Mean "
        "Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks",
        "Mean-field theory predicts the critical line and depth scales of signal propagation; with "
        "delta-orthogonal kernels at criticality, vanilla tanh CNNs of thousands of layers train, while "
        "Gaussian initialisation trains only to depths of a few correlation lengths.",
        "a vanilla tanh CNN of 10,000 layers trains to about 99% MNIST test accuracy (figure 1)",
    ),
    Paper(
        "liao",
        "Liao & Couillet (ICML 2018): The Dynamics of Learning: A Random Matrix Approach",
        "Random-matrix theory predicts the full training and test error curves of gradient descent on a "
        "linear classifier for large, comparable n and p, including the optimal early-stopping time.",
        "theory and simulation of the test-error curve coincide on MNIST",
    ),
    Paper(
        "arora",
        "Arora, Cohen & Hazan (ICML 2018): On the Optimization of Deep Networks: Implicit Acceleration by "
        "Overparameterization",
        "Depth in a linear network acts as a preconditioner that no regulariser can reproduce, and can "
        "accelerate gradient descent (e.g. l4 regression).",
        "on l4 regression, depth-2 and depth-3 linear networks converge faster than depth 1",
    ),
    Paper(
        "laurent",
        "Laurent & von Brecht (ICML 2018): Deep Linear Networks with Arbitrary Loss: All Local Minima Are "
        "Global",
        "If every hidden layer is at least as wide as the input or the output, every local minimum of a "
        "deep linear network with a convex differentiable loss is global; non-differentiable losses can "
        "break this.",
        "every local minimum is global when hidden widths are at least min(input, output); a "
        "non-differentiable loss breaks it",
    ),
    Paper(
        "yang",
        "Yang & Schoenholz (NeurIPS 2017): Mean Field Residual Networks: On the Edge of Chaos",
        "Residual networks have no fixed point: with bounded activations the variance grows linearly and "
        "gradients stretched-exponentially with depth, with ReLU both exponentially; the branch scale sets "
        "the growth, and trainability follows sigma_w sqrt(L) rather than the edge of chaos.",
        "peak test accuracy of tanh residual networks on MNIST is set by sigma_w sqrt(L)",
    ),
)

#: papers by key, in report order
PAPERS: dict[str, Paper] = {paper.key: paper for paper in PAPER_LIST}
#: report order of the paper keys
PAPER_ORDER: tuple[str, ...] = tuple(PAPERS)
