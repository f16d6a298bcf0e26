"""Tiny files in the official MNIST and CIFAR-10 formats, for the loaders' tests."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
CIFAR_NAMES += ["dog", "frog", "horse", "ship", "truck"]


def write_idx(path: Path, array: np.ndarray, *, magic: int | None = None, gz: bool = False) -> Path:
    """Write ``array`` (uint8) as an idx file; ``.gz`` is appended when gzipped."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    raw = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def make_mnist(folder: Path, *, gz: bool = True, n_train: int = 6, n_test: int = 4, seed: int = 0):
    """Write the four MNIST files with random content; return the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / MNIST_NAMES[split][0], images, gz=gz)
        write_idx(folder / MNIST_NAMES[split][1], labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays


def write_cifar_batch(path: Path, data, labels, *, protocol: int = 2, str_keys: bool = False):
    """Write a batch like the official ones (bytes keys, uint8 data, list labels)."""
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": list(labels),
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    if str_keys:
        batch = {key.decode(): value for key, value in batch.items()}
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=protocol)


def make_cifar(
    folder: Path,
    *,
    n: int = 3,
    protocol: int = 2,
    str_keys: bool = False,
    meta_names: list | None = None,
    seed: int = 0,
):
    """Write five train batches and a test batch of ``n`` images each; return the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in [*CIFAR_TRAIN, "test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        write_cifar_batch(folder / name, data, labels, protocol=protocol, str_keys=str_keys)
        arrays[name] = (data, np.asarray(labels))
    if meta_names is not None:
        meta = {b"num_cases_per_batch": n, b"label_names": meta_names, b"num_vis": 3072}
        with (folder / "batches.meta").open("wb") as f:
            pickle.dump(meta, f, protocol=protocol)
    return arrays


def real_data_folder(*parts: str) -> Path:
    """Return SK_DIM_DATA[_HOME]/parts, skipping the test when it is not there."""
    data_home = os.environ.get("SK_DIM_DATA") or os.environ.get("SK_DIM_DATA_HOME")
    if not data_home:
        pytest.skip("neither SK_DIM_DATA nor SK_DIM_DATA_HOME is set")
    folder = Path(data_home, *parts)
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist")
    return folder


@pytest.fixture
def files():
    """The writers of tiny data set files, the real-data folder finder, and the file names."""
    return SimpleNamespace(
        write_idx=write_idx,
        make_mnist=make_mnist,
        write_cifar_batch=write_cifar_batch,
        make_cifar=make_cifar,
        real_data_folder=real_data_folder,
        MNIST_NAMES=MNIST_NAMES,
        CIFAR_TRAIN=CIFAR_TRAIN,
        CIFAR_NAMES=CIFAR_NAMES,
    )
