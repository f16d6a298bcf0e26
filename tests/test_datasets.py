"""Tests for sk_dim.datasets.

The loaders are exercised on tiny files written here in the official formats
(idx for MNIST, pickled python batches for CIFAR-10), so the suite needs no
data. Tests on the real data sets run only when the environment variable
SK_DIM_DATA (the loaders' default folder) or SK_DIM_DATA_HOME names a folder
holding them, and skip otherwise.
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

from sk_dim.datasets import get_data_home, load_cifar10, load_mnist

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
CIFAR_NAMES += ["dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- file writers


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


# ----------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_round_trip(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    images, labels = arrays["train"]

    bunch = load_mnist(tmp_path)

    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (6, 784)
    assert bunch.data.dtype == np.uint8
    assert bunch.images.shape == (6, 28, 28)
    assert bunch.images.dtype == np.uint8
    assert bunch.target.shape == (6,)
    assert bunch.target.dtype == np.int64
    np.testing.assert_array_equal(bunch.images, images)
    np.testing.assert_array_equal(bunch.data, images.reshape(6, -1))
    np.testing.assert_array_equal(bunch.target, labels)
    np.testing.assert_array_equal(bunch.target_names, np.arange(10))
    assert bunch.image_shape == (1, 28, 28)
    assert "MNIST" in bunch.DESCR
    assert "LeCun" in bunch.DESCR
    # Arrays must be ordinary writable memory, not views over the file bytes.
    assert bunch.data.flags.writeable
    assert bunch.images.flags.writeable


def test_load_mnist_subsets(tmp_path):
    arrays = make_mnist(tmp_path)
    test = load_mnist(tmp_path, subset="test")
    np.testing.assert_array_equal(test.images, arrays["test"][0])
    np.testing.assert_array_equal(test.target, arrays["test"][1])

    both = load_mnist(tmp_path, subset="all")
    assert both.data.shape == (10, 784)
    # Documented order: train first, then test.
    np.testing.assert_array_equal(both.images[:6], arrays["train"][0])
    np.testing.assert_array_equal(both.images[6:], arrays["test"][0])
    np.testing.assert_array_equal(both.target, np.r_[arrays["train"][1], arrays["test"][1]])


def test_load_mnist_return_X_y(tmp_path):
    arrays = make_mnist(tmp_path)
    X, y = load_mnist(tmp_path, subset="test", return_X_y=True)
    assert X.shape == (4, 784)
    assert X.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, arrays["test"][0].reshape(4, -1))
    np.testing.assert_array_equal(y, arrays["test"][1])


def test_load_mnist_mnist_subfolder_and_str_path(tmp_path):
    arrays = make_mnist(tmp_path / "mnist")
    bunch = load_mnist(str(tmp_path))
    np.testing.assert_array_equal(bunch.images, arrays["train"][0])


def test_load_mnist_only_needs_files_of_the_subset(tmp_path):
    make_mnist(tmp_path)
    for name in MNIST_NAMES["test"]:
        (tmp_path / f"{name}.gz").unlink()
    assert load_mnist(tmp_path).data.shape == (6, 784)


def test_load_mnist_detects_compression_from_content(tmp_path):
    # Browsers often decompress the download but keep the ".gz" name, and the
    # reverse happens too: content, not suffix, decides.
    arrays = make_mnist(tmp_path, gz=False)
    images_name, labels_name = MNIST_NAMES["train"]
    (tmp_path / images_name).rename(tmp_path / f"{images_name}.gz")
    raw = (tmp_path / labels_name).read_bytes()
    (tmp_path / labels_name).write_bytes(gzip.compress(raw))

    bunch = load_mnist(tmp_path)
    np.testing.assert_array_equal(bunch.images, arrays["train"][0])
    np.testing.assert_array_equal(bunch.target, arrays["train"][1])


def test_load_mnist_missing_files_message(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist(tmp_path, subset="all")
    message = str(excinfo.value)
    assert "t10k-labels-idx1-ubyte" in message
    assert "train-images-idx3-ubyte" not in message  # only the missing one is named
    assert str(tmp_path) in message
    assert str(tmp_path / "mnist") in message


def test_load_mnist_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*train-labels"):
        load_mnist(tmp_path / "nowhere")


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_truncated_file(tmp_path, gz):
    make_mnist(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=re.escape(name)):
        load_mnist(tmp_path)


def test_load_mnist_trailing_bytes(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*truncated or corrupt"):
        load_mnist(tmp_path)


def test_load_mnist_header_only_partial(tmp_path):
    make_mnist(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_magic(tmp_path):
    make_mnist(tmp_path, gz=False)
    # A labels file where the images file should be.
    labels = np.zeros(6, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", labels)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*0x00000801.*0x00000803"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"6 images.*5 labels"):
        load_mnist(tmp_path)


def test_load_mnist_label_out_of_range(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(6, 10, dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("loader", [load_mnist, load_cifar10])
def test_invalid_subset(tmp_path, loader):
    with pytest.raises(ValueError, match="subset"):
        loader(tmp_path, subset="validation")


# -------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_cifar10_round_trip(tmp_path, protocol):
    arrays = make_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)

    bunch = load_cifar10(tmp_path)

    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (15, 3072)
    assert bunch.data.dtype == np.uint8
    assert bunch.images.shape == (15, 3, 32, 32)
    assert bunch.images.dtype == np.uint8
    assert bunch.target.shape == (15,)
    assert bunch.target.dtype == np.int64
    expected_data = np.concatenate([arrays[name][0] for name in CIFAR_TRAIN])
    expected_target = np.concatenate([arrays[name][1] for name in CIFAR_TRAIN])
    np.testing.assert_array_equal(bunch.data, expected_data)
    np.testing.assert_array_equal(bunch.target, expected_target)
    assert bunch.image_shape == (3, 32, 32)
    assert "CIFAR-10" in bunch.DESCR
    assert "JPEG" in bunch.DESCR
    # No meta file: the standard names.
    assert list(bunch.target_names) == CIFAR_NAMES


def test_load_cifar10_images_are_channel_first(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar(folder)
    # Official row layout: 1024 red, 1024 green, 1024 blue, each plane row-major.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.arange(1024) % 256])
    write_cifar_batch(folder / "test_batch", row.astype(np.uint8)[None], [7])
    image = load_cifar10(tmp_path, subset="test").images[0]
    assert (image[0] == 10).all()
    assert (image[1] == 20).all()
    assert image[2, 0, 1] == 1
    assert image[2, 1, 0] == 32  # row-major within the plane


def test_load_cifar10_subsets_and_return_X_y(tmp_path):
    arrays = make_cifar(tmp_path / "cifar-10-batches-py")
    X, y = load_cifar10(tmp_path, subset="test", return_X_y=True)
    assert X.shape == (3, 3072)
    assert X.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, arrays["test_batch"][0])
    np.testing.assert_array_equal(y, arrays["test_batch"][1])

    both = load_cifar10(tmp_path, subset="all")
    order = [*CIFAR_TRAIN, "test_batch"]
    np.testing.assert_array_equal(both.data, np.concatenate([arrays[n][0] for n in order]))
    np.testing.assert_array_equal(both.target, np.concatenate([arrays[n][1] for n in order]))


def test_load_cifar10_batches_directly_in_data_home(tmp_path):
    arrays = make_cifar(tmp_path)
    X, _ = load_cifar10(str(tmp_path), subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, arrays["test_batch"][0])


@pytest.mark.parametrize("as_bytes", [True, False])
def test_load_cifar10_target_names_from_meta(tmp_path, as_bytes):
    names = [f"class{i}" for i in range(10)]
    meta_names = [n.encode() for n in names] if as_bytes else names
    make_cifar(tmp_path, meta_names=meta_names)
    assert list(load_cifar10(tmp_path).target_names) == names


def test_load_cifar10_str_keys(tmp_path):
    arrays = make_cifar(tmp_path, str_keys=True, protocol=4)
    X, y = load_cifar10(tmp_path, subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, arrays["test_batch"][0])
    np.testing.assert_array_equal(y, arrays["test_batch"][1])


def test_load_cifar10_missing_files_message(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_cifar10(tmp_path)
    message = str(excinfo.value)
    assert "data_batch_3" in message
    assert "data_batch_1" not in message
    assert str(folder) in message
    assert str(tmp_path) in message


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_load_cifar10_corrupt_pickle(tmp_path, damage):
    make_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    content = {
        "truncate": path.read_bytes()[:500],
        "garbage": b"this is not a pickle at all",
        "empty": b"",
    }[damage]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar10(tmp_path)


def test_load_cifar10_corrupt_meta(tmp_path):
    make_cifar(tmp_path, meta_names=CIFAR_NAMES)
    (tmp_path / "batches.meta").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match=r"batches\.meta"):
        load_cifar10(tmp_path, subset="test")


@pytest.mark.parametrize(
    ("data", "labels", "match"),
    [
        (np.zeros((2, 3072), dtype=np.int64), [0, 1], "uint8"),
        (np.zeros((2, 3000), dtype=np.uint8), [0, 1], "3072"),
        (np.zeros((2, 3072), dtype=np.uint8), [0, 1, 2], "2 images but 3 labels"),
        (np.zeros((2, 3072), dtype=np.uint8), [0, 10], r"labels in 0\.\.10"),
        (np.zeros((2, 3072), dtype=np.uint8), [0.0, 1.0], "integers"),
    ],
)
def test_load_cifar10_invalid_batch(tmp_path, data, labels, match):
    make_cifar(tmp_path)
    write_cifar_batch(tmp_path / "test_batch", data, labels)
    with pytest.raises(ValueError, match=match) as excinfo:
        load_cifar10(tmp_path, subset="test")
    assert "test_batch" in str(excinfo.value)


def test_load_cifar10_missing_key(tmp_path):
    make_cifar(tmp_path)
    with (tmp_path / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), dtype=np.uint8)}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch.*'labels'"):
        load_cifar10(tmp_path, subset="test")


# ------------------------------------------------------------ default folder


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


# ------------------------------------------------------ real data (opt-in only)


def _real_data_folder(*parts: str) -> Path:
    """Return SK_DIM_DATA[_HOME]/parts, skipping the test when it is not there."""
    data_home = os.environ.get("SK_DIM_DATA") or os.environ.get("SK_DIM_DATA_HOME")
    if not data_home:
        pytest.skip("neither SK_DIM_DATA nor SK_DIM_DATA_HOME is set")
    folder = Path(data_home, *parts)
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist")
    return folder


def test_real_mnist():
    data_home = _real_data_folder("mnist").parent
    train = load_mnist(data_home)
    X_test, y_test = load_mnist(data_home, subset="test", return_X_y=True)
    assert train.data.shape == (60000, 784)
    assert train.images.shape == (60000, 28, 28)
    assert X_test.shape == (10000, 784)
    for target in (train.target, y_test):
        assert set(np.unique(target)) == set(range(10))
    assert train.data.max() == 255
    assert train.data.min() == 0


def test_real_cifar10():
    data_home = _real_data_folder("cifar-10-batches-py").parent
    train = load_cifar10(data_home)
    X_test, y_test = load_cifar10(data_home, subset="test", return_X_y=True)
    assert train.data.shape == (50000, 3072)
    assert train.images.shape == (50000, 3, 32, 32)
    assert X_test.shape == (10000, 3072)
    # The official release is exactly balanced: 5,000 / 1,000 images per class.
    np.testing.assert_array_equal(np.bincount(train.target, minlength=10), 5000)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), 1000)
    assert list(train.target_names) == CIFAR_NAMES
