"""sk_dim.datasets.home: the data home, finding files, the checks both loaders share."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from sk_dim.datasets import get_data_home, load_cifar10, load_mnist

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


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


@pytest.mark.parametrize("loader", [load_mnist, load_cifar10])
def test_invalid_subset(tmp_path, loader):
    with pytest.raises(ValueError, match="subset"):
        loader(tmp_path, subset="validation")


def test_get_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SK_DIM_DATA", raising=False)
    assert get_data_home() == str(tmp_path / "sk_dim_data")
    monkeypatch.setenv("SK_DIM_DATA", "")  # empty counts as unset
    assert get_data_home() == str(tmp_path / "sk_dim_data")
    monkeypatch.setenv("SK_DIM_DATA", "~/images")
    assert get_data_home() == str(tmp_path / "images")
    assert get_data_home(tmp_path / "explicit") == str(tmp_path / "explicit")
    assert get_data_home("~/elsewhere") == str(tmp_path / "elsewhere")
    assert not any(tmp_path.iterdir())  # nothing is created


def test_loaders_read_the_default_folder(monkeypatch, tmp_path):
    arrays = make_mnist(tmp_path / "mnist")
    cifar = make_cifar(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("SK_DIM_DATA", str(tmp_path))
    X, y = load_mnist(subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, arrays["test"][0].reshape(len(X), -1))
    np.testing.assert_array_equal(y, arrays["test"][1])
    X, y = load_cifar10(subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, cifar["test_batch"][0])
    np.testing.assert_array_equal(load_cifar10().data, load_cifar10(tmp_path).data)


@pytest.mark.parametrize(
    ("loader", "expected"),
    [(load_mnist, "train-images-idx3-ubyte"), (load_cifar10, "data_batch_1")],
)
def test_default_folder_missing_says_where_it_looked(monkeypatch, tmp_path, loader, expected):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SK_DIM_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as excinfo:
        loader()
    message = str(excinfo.value)
    assert str(tmp_path / "sk_dim_data") in message and expected in message
    assert "none of these folders exists" in message
    assert "$SK_DIM_DATA is not set" in message and "Nothing is downloaded" in message
    assert not (tmp_path / "sk_dim_data").exists()  # nothing created, nothing downloaded

    monkeypatch.setenv("SK_DIM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"data_home=None reads \$SK_DIM_DATA"):
        loader()
