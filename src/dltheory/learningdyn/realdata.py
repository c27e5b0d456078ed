"""Two classes of an image data set prepared as in Liao & Couillet 2018 (Section 4, MNIST 1 vs 7).

The paper adds white noise at -10 dB, whitens each class and re-centres the classes to -mu and +mu so
that the data match the model ``x = y mu + z`` in their first two moments. Our reading of the recipe
(it gives ||mu||^2 ~ 3.4 on MNIST 1 vs 7, see docs/liao/theory.md):

1. pixels as floats; white Gaussian noise of variance ``10^(-snr_db/10)`` times the mean squared pixel
   value of the whole split (all ten classes; ``snr_db = -10``: ten times the signal power). Referring
   the noise to the two classes only (less ink in 1s and 7s) gives ||mu||^2 ~ 4.1 instead of ~3.45;
2. class means ``m_a`` and covariances ``C_a`` from all noisy images of the two classes; pooled
   ``C = ((N_1 - 1) C_1 + (N_2 - 1) C_2)/(N_1 + N_2 - 2)``;
3. ``mu = C^{-1/2} (m_2 - m_1)/2``; an image x of class a becomes ``C_a^{-1/2}(x - m_a) + y_a mu``
   with ``y = -1`` for the first class and ``+1`` for the second.

The theory is then :class:`~dltheory.learningdyn.GDTheory` with ``||mu||^2`` of the estimated mu.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dltheory.core.validation import as_float_array, check_int


@dataclass(frozen=True)
class TwoClassData:
    """Prepared rows ``x [N, p]``, labels ``y`` = +-1, the mean ``mu`` and where they came from."""

    x: np.ndarray
    y: np.ndarray
    mu: np.ndarray
    source: str

    @property
    def mu_norm2(self) -> float:
        return float(self.mu @ self.mu)

    @property
    def dimension(self) -> int:
        return int(self.x.shape[1])


def inverse_sqrt(cov: np.ndarray) -> np.ndarray:
    """``C^{-1/2}`` of a symmetric positive-definite matrix (ValueError if it is not)."""
    eig, vec = np.linalg.eigh(cov)
    if eig[0] <= 1e-12 * eig[-1]:
        raise ValueError(
            f"covariance is singular (smallest eigenvalue {eig[0]:.3g}, largest {eig[-1]:.3g}); "
            "add noise (snr_db) to make it invertible"
        )
    return (vec / np.sqrt(eig)) @ vec.T


def prepare_two_class_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    classes: tuple[int, int],
    *,
    snr_db: float = -10.0,
    seed: int = 0,
    source: str = "arrays",
) -> TwoClassData:
    """Apply the paper's preparation to the images of ``classes`` (``images`` ``[N, ...]``, any scale; the
    noise power refers to all of ``images``)."""
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must be two different labels, got {classes!r}")
    labels = np.asarray(labels)
    signal_power = float(np.mean(np.square(images, dtype=np.float64)))
    keep = (labels == classes[0]) | (labels == classes[1])
    counts = [int(np.sum(labels == k)) for k in classes]
    x = as_float_array("images", images[keep]).reshape(int(np.sum(keep)), -1)
    p = x.shape[1]
    if min(counts) <= p:
        raise ValueError(
            f"each class needs more than p = {p} images to estimate its covariance, got {counts}"
        )
    y = np.where(labels[keep] == classes[1], 1.0, -1.0)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    noise_var = signal_power * 10.0 ** (-snr_db / 10.0)
    x = x + rng.standard_normal(x.shape) * np.sqrt(noise_var)
    means, covs = {}, {}
    for label in (-1.0, 1.0):
        rows = x[y == label]
        means[label] = rows.mean(0)
        covs[label] = np.cov(rows, rowvar=False)
    pooled = ((counts[0] - 1) * covs[-1.0] + (counts[1] - 1) * covs[1.0]) / (counts[0] + counts[1] - 2)
    mu = inverse_sqrt(pooled) @ (means[1.0] - means[-1.0]) / 2
    out = np.empty_like(x)
    for label in (-1.0, 1.0):
        rows = y == label
        out[rows] = (x[rows] - means[label]) @ inverse_sqrt(covs[label]) + label * mu
    return TwoClassData(out, y, mu, source)


def prepare_two_class(
    dataset: str = "mnist",
    classes: tuple[int, int] = (1, 7),
    *,
    split: str = "train",
    snr_db: float = -10.0,
    seed: int = 0,
) -> TwoClassData:
    """Load ``dataset`` through :func:`dltheory.data.load` and prepare two of its classes (the paper:
    MNIST digits 1 vs 7 from the training split, 6,742 + 6,265 = 13,007 images, p = 784)."""
    from dltheory.data import load

    images, labels = load(dataset, split)
    source = f"{dataset} {split} classes {classes[0]} vs {classes[1]}, noise at {snr_db:g} dB, seed {seed}"
    return prepare_two_class_arrays(images, labels, classes, snr_db=snr_db, seed=seed, source=source)
