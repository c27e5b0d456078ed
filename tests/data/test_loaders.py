import pickle

import numpy as np
import pytest

from dltheory.data import DataNotFoundError, load
from dltheory.data.idx import read_idx, write_idx
from support import MNIST_FILES, has_dataset

needs_mnist = pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not on the data path")
FASHION = "/usr/share/datasets/fashion-mnist"


@needs_mnist
def test_mnist_real_files_match_official_facts():
    x, y = load("mnist", "train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.int64
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert x.mean() == pytest.approx(33.318, abs=1e-3)
    xt, yt = load("mnist", "test")
    assert xt.shape == (10000, 28, 28)
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(
    not has_dataset("fashion-mnist", MNIST_FILES), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_from_debian_package():
    x, y = load("fashion-mnist", "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced


def test_gas_sensor_ethanol_rows():
    x, y = load("gas-sensor", gas="Ethanol")
    assert x.shape == (1316, 128) and x.dtype == np.float64
    assert y.shape == (1316,) and np.all(y > 0)
    x_all, _, batches = load("gas-sensor", gas=None, return_batch=True)
    assert x_all.shape == (6697, 128)
    assert 7 not in set(batches.tolist()) and 10 not in set(batches.tolist())
    with pytest.raises(ValueError, match="gas must be one of"):
        load("gas-sensor", gas="Methane")


def test_digits_split_is_seeded_and_disjoint():
    x_tr, y_tr = load("digits", "train")
    x_te, _ = load("digits", "test")
    assert x_tr.shape[1:] == (8, 8) and x_tr.shape[0] + x_te.shape[0] == 1797
    assert x_tr.max() <= 16 and y_tr.dtype == np.int64
    np.testing.assert_array_equal(load("digits", "train")[0], x_tr)
    flat_tr = {row.tobytes() for row in x_tr.reshape(len(x_tr), -1)}
    overlap = sum(row.tobytes() in flat_tr for row in x_te.reshape(len(x_te), -1))
    assert overlap < 5  # sklearn digits holds a handful of exact duplicate images


def test_gaussian_mixture_statistics():
    means = np.array([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    cov = np.diag([1.0, 4.0, 0.25])
    x, y = load("gaussian-mixture", means=means, n=20000, cov=cov, seed=3)
    assert np.bincount(y).tolist() == [10000, 10000]
    for k in range(2):
        np.testing.assert_allclose(x[y == k].mean(axis=0), means[k], atol=0.06)
        np.testing.assert_allclose(np.cov(x[y == k].T), cov, atol=0.12)
    x2, _ = load("gaussian-mixture", "test", means=means, n=20000, cov=cov, seed=3)
    assert not np.allclose(x, x2)
    with pytest.raises(ValueError, match="cov must have shape"):
        load("gaussian-mixture", means=means, n=10, cov=np.eye(2))


def _write_cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    with open(path, "wb") as handle:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, handle)
    return data, labels


def test_cifar10_from_pickles_written_here(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = [_write_cifar_batch(folder / f"data_batch_{i}", 7, i) for i in range(1, 6)]
    _write_cifar_batch(folder / "test_batch", 4, 99)
    monkeypatch.setenv("DLTHEORY_DATA", str(tmp_path))
    x, y = load("cifar10", "train", download=False)
    assert x.shape == (35, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    # channel-major layout: the first 1024 bytes of a row are the red plane
    np.testing.assert_array_equal(x[0, 0].ravel(), written[0][0][0, :1024])
    assert y[:7].tolist() == written[0][1]
    assert load("cifar10", "test", download=False)[0].shape == (4, 3, 32, 32)


def test_missing_data_error_says_where_it_looked(isolated_cache):
    with pytest.raises(DataNotFoundError, match=r"looked in: .*cifar10.*Put the files"):
        load("cifar10", "train", download=False)


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match=r"unknown data set 'svhn'; valid data sets: \["):
        load("svhn")
    with pytest.raises(ValueError, match="split must be one of"):
        load("mnist", "validation")


def test_idx_roundtrip_and_corruption(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)
    raw = (tmp_path / "b").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    assert raw
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x00")
    with pytest.raises(ValueError, match="announces 5 data bytes"):
        read_idx(tmp_path / "c")
