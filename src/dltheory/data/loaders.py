"""Data set loaders. Every loader returns numpy arrays ``(x, y)`` with documented shapes and dtypes.

| name | x | y |
|---|---|---|
| ``mnist``, ``fashion-mnist`` | uint8 ``[N, 28, 28]`` (60,000 train / 10,000 test) | int64 ``[N]`` in 0..9 |
| ``cifar10`` | uint8 ``[N, 3, 32, 32]`` (50,000 / 10,000) | int64 ``[N]`` in 0..9 |
| ``digits`` | float64 ``[N, 8, 8]`` in 0..16 (sklearn, 1,797 digits, seeded 80/20 split) | int64 |
| ``gas-sensor`` | float64 ``[N, 128]`` sensor features | float64 ``[N]`` concentration (ppmv) |
| ``gaussian-mixture`` | float64 ``[n, p]`` | int64 ``[n]`` class index |
"""

from __future__ import annotations

import csv
import gzip
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_choice, check_int
from dltheory.data.idx import read_idx
from dltheory.data.sources import DataNotFoundError, RemoteFile, find_dataset_dir, locate, search_path

Arrays = tuple[np.ndarray, np.ndarray]

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_FASHION_MIRRORS = ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

IDX_FILES: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
_IDX_MIRRORS = {"mnist": _MNIST_MIRRORS, "fashion-mnist": _FASHION_MIRRORS}
CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
)
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
GAS_SENSOR_FILE = "gas_sensor_drift.csv.gz"
GAS_SENSOR_DIR = "gas-sensor-drift"
GAS_NAMES = ("Ethanol", "Ethylene", "Ammonia", "Acetaldehyde", "Acetone", "Toluene")
SPLITS = ("train", "test")


def idx_remote_files(dataset: str, split: str) -> tuple[RemoteFile, RemoteFile]:
    prefix = "train" if split == "train" else "t10k"
    names = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    mirrors = _IDX_MIRRORS[dataset]
    files = IDX_FILES[dataset]
    return tuple(RemoteFile(n, tuple(m + n for m in mirrors), files[n]) for n in names)  # type: ignore[return-value]


def load_idx_dataset(
    dataset: str, split: str = "train", *, download: bool = True, progress: bool = False
) -> Arrays:
    """MNIST-format data set: uint8 images ``[N, 28, 28]`` and int64 labels ``[N]``."""
    check_choice("split", split, SPLITS)
    files = idx_remote_files(dataset, split)
    directory = locate(dataset, files, allow_download=download, progress=progress)
    images = read_idx(directory / files[0].name)
    labels = read_idx(directory / files[1].name).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def load_cifar10(split: str = "train", *, download: bool = True, progress: bool = False) -> Arrays:
    """CIFAR-10 from the standard python-pickle batches (``cifar-10-batches-py/``): uint8 ``[N, 3, 32, 32]``,
    int64 labels. The batches are looked for in ``<root>/cifar10/`` or ``<root>/cifar10/cifar-10-batches-py``;
    otherwise the official archive is downloaded (sha256-verified) and unpacked into the user cache."""
    check_choice("split", split, SPLITS)
    names = CIFAR10_BATCHES[split]
    directory = find_dataset_dir("cifar10", names) or find_dataset_dir("cifar10/cifar-10-batches-py", names)
    if directory is None:
        archive_dir = locate("cifar10", (CIFAR10_ARCHIVE,), allow_download=download, progress=progress)
        directory = _unpack_cifar(archive_dir / CIFAR10_ARCHIVE.name)
    xs, ys = [], []
    for name in names:
        with open(directory / name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
        if data is None or labels is None:
            raise ValueError(f"{directory / name} is not a CIFAR-10 batch (no 'data'/'labels' keys)")
        xs.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _unpack_cifar(archive: Path) -> Path:
    import tarfile

    target = archive.parent / "cifar-10-batches-py"
    if not (target / "test_batch").exists():
        with tarfile.open(archive) as tar:
            tar.extractall(archive.parent, filter="data")
    return target


def load_digits(split: str = "train", *, seed: int = 0, test_fraction: float = 0.2) -> Arrays:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16), split by a seeded shuffle."""
    check_choice("split", split, (*SPLITS, "all"))
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.float64)
    y = bunch.target.astype(np.int64)
    if split == "all":
        return x, y
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    chosen = order[:n_test] if split == "test" else order[n_test:]
    return x[chosen], y[chosen]


def load_gas_sensor(
    split: str = "all",
    *,
    gas: str | None = "Ethanol",
    batches: tuple[int, ...] | None = None,
    return_batch: bool = False,
) -> Arrays | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UCI "Gas Sensor Array Drift at Different Concentrations": features float64 ``[N, 128]`` (16 sensors x
    8 features), target the concentration in ppmv. ``gas=None`` keeps every gas. Batches 7 and 10 of the
    original 10 are missing from the offline copy (1,316 Ethanol rows instead of the paper's 2,565)."""
    check_choice("split", split, ("all",))
    if gas is not None:
        check_choice("gas", gas, GAS_NAMES)
    directory = _gas_sensor_dir()
    with gzip.open(directory / GAS_SENSOR_FILE, "rt") as handle:
        reader = csv.reader(io.StringIO(handle.read()))
        header = next(reader)
        if header[:3] != ["batch", "gas", "concentration"] or len(header) != 131:
            raise ValueError(f"{directory / GAS_SENSOR_FILE}: unexpected header {header[:4]}...")
        rows = [
            r for r in reader if (gas is None or r[1] == gas) and (batches is None or int(r[0]) in batches)
        ]
    batch_ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    y = np.array([float(r[2]) for r in rows], dtype=np.float64)
    x = np.array([[float(v) for v in r[3:]] for r in rows], dtype=np.float64).reshape(len(rows), 128)
    if return_batch:
        return x, y, batch_ids
    return x, y


def _gas_sensor_dir() -> Path:
    directory = find_dataset_dir(GAS_SENSOR_DIR, (GAS_SENSOR_FILE,))
    if directory is None:
        looked = ", ".join(str(p / GAS_SENSOR_DIR) for p in search_path())
        raise DataNotFoundError(
            f"gas sensor data not found (no download source); looked in: {looked}. Put {GAS_SENSOR_FILE} "
            "(columns batch, gas, concentration, f1..f128; converted from the UCI 'Gas Sensor Array Drift "
            "at Different Concentrations' batch files) into one of these directories."
        )
    return directory


def make_gaussian_mixture(
    split: str = "train",
    *,
    means: Any,
    n: int,
    cov: Any = None,
    priors: Any = None,
    seed: int = 0,
) -> Arrays:
    """Synthetic Gaussian mixture: class a has mean ``means[a]`` and covariance ``cov`` (identity when None;
    one matrix shared by all classes, or one per class ``[k, p, p]``). Classes are drawn with ``priors``
    (balanced when None: exactly ``n // k`` per class, the remainder to the first classes). The ``split``
    only changes the random stream (train and test are independent draws)."""
    check_choice("split", split, SPLITS)
    mu = np.atleast_2d(as_float_array("means", means))
    k, p = mu.shape
    n = check_int("n", n, minimum=1)
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    if priors is None:
        counts = np.full(k, n // k)
        counts[: n % k] += 1
        y = np.repeat(np.arange(k), counts)
    else:
        pri = as_float_array("priors", priors)
        if pri.shape != (k,) or np.any(pri < 0) or not np.isclose(pri.sum(), 1.0):
            raise ValueError(f"priors must be {k} non-negative numbers summing to 1, got {pri}")
        y = rng.choice(k, size=n, p=pri)
    z = rng.standard_normal((n, p))
    if cov is not None:
        c = as_float_array("cov", cov)
        if c.shape == (p, p):
            z = z @ np.linalg.cholesky(c).T
        elif c.shape == (k, p, p):
            factors = np.linalg.cholesky(c)
            z = np.einsum("nij,nj->ni", factors[y], z)
        else:
            raise ValueError(f"cov must have shape ({p}, {p}) or ({k}, {p}, {p}), got {c.shape}")
    return mu[y] + z, y.astype(np.int64)


LOADERS: dict[str, Callable[..., Any]] = {
    "mnist": lambda split="train", **kw: load_idx_dataset("mnist", split, **kw),
    "fashion-mnist": lambda split="train", **kw: load_idx_dataset("fashion-mnist", split, **kw),
    "cifar10": load_cifar10,
    "digits": load_digits,
    "gas-sensor": load_gas_sensor,
    "gaussian-mixture": make_gaussian_mixture,
}

DESCRIPTIONS = {
    "mnist": "MNIST handwritten digits, IDX (60,000 train / 10,000 test)",
    "fashion-mnist": "Fashion-MNIST, IDX (60,000 / 10,000); Debian package dataset-fashion-mnist",
    "cifar10": "CIFAR-10, python-pickle batches (50,000 / 10,000)",
    "digits": "scikit-learn's bundled 8x8 digits (1,797)",
    "gas-sensor": "UCI gas sensor array drift at different concentrations (batches 7 and 10 missing here)",
    "gaussian-mixture": "synthetic Gaussian mixture (seeded)",
}


def require(name: str, *, download: bool = True, progress: bool = False) -> Path | None:
    """Make sure data set ``name`` is available, the way every loader gets its files: the search path
    first, then (when ``download``) a sha256-verified download into the user cache, else
    :class:`DataNotFoundError` naming the files, the folders searched and how to place them offline.

    Args:
        name: one of :data:`LOADERS`.
        download: allow downloading missing files.
        progress: show download progress.

    Returns:
        The directory holding the files, or None for data sets that need no files (``digits``,
        ``gaussian-mixture``).

    Raises:
        ValueError: unknown ``name``.
        DataNotFoundError: the files are neither found nor downloadable.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; valid data sets: {sorted(LOADERS)}")
    if name in IDX_FILES:
        files = idx_remote_files(name, "train") + idx_remote_files(name, "test")
        return locate(name, files, allow_download=download, progress=progress)
    if name == "cifar10":
        names = CIFAR10_BATCHES["train"] + CIFAR10_BATCHES["test"]
        found = find_dataset_dir("cifar10", names) or find_dataset_dir("cifar10/cifar-10-batches-py", names)
        if found is not None:
            return found
        archive_dir = locate("cifar10", (CIFAR10_ARCHIVE,), allow_download=download, progress=progress)
        return _unpack_cifar(archive_dir / CIFAR10_ARCHIVE.name)
    if name == "gas-sensor":
        return _gas_sensor_dir()
    return None


def load(name: str, split: str | None = None, **options: Any) -> Any:
    """Load data set ``name`` (one of :data:`LOADERS`) and return numpy arrays ``(x, y)``; see the
    module docstring for shapes and dtypes. ``split`` defaults to "train" ("all" for gas-sensor)."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; valid data sets: {sorted(LOADERS)}")
    loader = LOADERS[name]
    return loader(**options) if split is None else loader(split, **options)
