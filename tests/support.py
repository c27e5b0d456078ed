"""Helpers shared by test modules (import as ``from support import ...``)."""

from __future__ import annotations


def has_dataset(name: str, files: tuple[str, ...]) -> bool:
    from dltheory.data.sources import find_dataset_dir

    return find_dataset_dir(name, files) is not None


MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
