"""The paper's real-data preparation: class-wise whitening and re-centring to +-mu."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.data.sources import find_dataset_dir
from dltheory.learningdyn.realdata import inverse_sqrt, prepare_two_class, prepare_two_class_arrays

MNIST = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


def test_prepared_classes_are_white_and_centred_at_plus_minus_mu():
    rng = np.random.default_rng(0)
    p, per_class = 12, 400
    labels = np.repeat([3, 5, 8], per_class)
    mixing = rng.standard_normal((p, p))
    images = rng.standard_normal((3 * per_class, p)) @ mixing + 2.0 * labels[:, None]
    data = prepare_two_class_arrays(images, labels, (3, 8), snr_db=-5.0, seed=1)
    assert data.x.shape == (2 * per_class, p)
    for label in (-1.0, 1.0):
        rows = data.x[data.y == label]
        np.testing.assert_allclose(rows.mean(0), label * data.mu, atol=1e-10)
        np.testing.assert_allclose(np.cov(rows, rowvar=False), np.eye(p), atol=1e-10)
    assert np.sum(data.y == 1.0) == per_class  # the second class is +1


def test_mu_is_the_whitened_half_difference_of_the_noisy_means():
    rng = np.random.default_rng(2)
    p = 6
    labels = np.repeat([0, 1], 500)
    images = rng.standard_normal((1000, p)) + np.where(labels[:, None] == 1, 1.0, -1.0)
    data = prepare_two_class_arrays(images, labels, (0, 1), snr_db=60.0, seed=0)
    # at 60 dB the added noise is negligible: mu = C^{-1/2} (m_1 - m_0)/2 from the clean sample moments
    a, b = images[labels == 0], images[labels == 1]
    pooled = (499 * np.cov(a, rowvar=False) + 499 * np.cov(b, rowvar=False)) / 998
    np.testing.assert_allclose(data.mu, inverse_sqrt(pooled) @ (b.mean(0) - a.mean(0)) / 2, atol=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="two different labels"):
        prepare_two_class_arrays(np.zeros((10, 3)), np.zeros(10), (1, 1))
    with pytest.raises(ValueError, match="more than p"):
        prepare_two_class_arrays(np.zeros((6, 3)), np.repeat([0, 1], 3), (0, 1))
    with pytest.raises(ValueError, match="singular"):
        inverse_sqrt(np.diag([1.0, 0.0]))


@pytest.mark.skipif(find_dataset_dir("mnist", MNIST) is None, reason="MNIST not on the data search path")
def test_mnist_one_versus_seven_matches_the_paper_setting():
    data = prepare_two_class("mnist", (1, 7))
    assert data.x.shape == (6742 + 6265, 784)
    assert np.sum(data.y == -1.0) == 6742
    # docs/liao/theory.md: with noise at -10 dB of the split's mean squared pixel, ||mu||^2 ~ 3.4
    assert data.mu_norm2 == pytest.approx(3.45, abs=0.1)
