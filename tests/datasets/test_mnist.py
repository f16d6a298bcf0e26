"""sk_dim.datasets.mnist: load_mnist, exercised on tiny files in the official format."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from sklearn.utils import Bunch

from sk_dim.datasets import load_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_round_trip(tmp_path, gz, files):
    arrays = files.make_mnist(tmp_path, gz=gz)
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


def test_load_mnist_subsets(tmp_path, files):
    arrays = files.make_mnist(tmp_path)
    test = load_mnist(tmp_path, subset="test")
    np.testing.assert_array_equal(test.images, arrays["test"][0])
    np.testing.assert_array_equal(test.target, arrays["test"][1])

    both = load_mnist(tmp_path, subset="all")
    assert both.data.shape == (10, 784)
    # Documented order: train first, then test.
    np.testing.assert_array_equal(both.images[:6], arrays["train"][0])
    np.testing.assert_array_equal(both.images[6:], arrays["test"][0])
    np.testing.assert_array_equal(both.target, np.r_[arrays["train"][1], arrays["test"][1]])


def test_load_mnist_return_X_y(tmp_path, files):
    arrays = files.make_mnist(tmp_path)
    X, y = load_mnist(tmp_path, subset="test", return_X_y=True)
    assert X.shape == (4, 784)
    assert X.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, arrays["test"][0].reshape(4, -1))
    np.testing.assert_array_equal(y, arrays["test"][1])


def test_load_mnist_mnist_subfolder_and_str_path(tmp_path, files):
    arrays = files.make_mnist(tmp_path / "mnist")
    bunch = load_mnist(str(tmp_path))
    np.testing.assert_array_equal(bunch.images, arrays["train"][0])


def test_load_mnist_only_needs_files_of_the_subset(tmp_path, files):
    files.make_mnist(tmp_path)
    for name in files.MNIST_NAMES["test"]:
        (tmp_path / f"{name}.gz").unlink()
    assert load_mnist(tmp_path).data.shape == (6, 784)


def test_load_mnist_detects_compression_from_content(tmp_path, files):
    # Browsers often decompress the download but keep the ".gz" name, and the
    # reverse happens too: content, not suffix, decides.
    arrays = files.make_mnist(tmp_path, gz=False)
    images_name, labels_name = files.MNIST_NAMES["train"]
    (tmp_path / images_name).rename(tmp_path / f"{images_name}.gz")
    raw = (tmp_path / labels_name).read_bytes()
    (tmp_path / labels_name).write_bytes(gzip.compress(raw))

    bunch = load_mnist(tmp_path)
    np.testing.assert_array_equal(bunch.images, arrays["train"][0])
    np.testing.assert_array_equal(bunch.target, arrays["train"][1])


def test_load_mnist_missing_files_message(tmp_path, files):
    files.make_mnist(tmp_path)
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
def test_load_mnist_truncated_file(tmp_path, gz, files):
    files.make_mnist(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=re.escape(name)):
        load_mnist(tmp_path)


def test_load_mnist_trailing_bytes(tmp_path, files):
    files.make_mnist(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*truncated or corrupt"):
        load_mnist(tmp_path)


def test_load_mnist_header_only_partial(tmp_path, files):
    files.make_mnist(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_magic(tmp_path, files):
    files.make_mnist(tmp_path, gz=False)
    # A labels file where the images file should be.
    labels = np.zeros(6, dtype=np.uint8)
    files.write_idx(tmp_path / "train-images-idx3-ubyte", labels)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*0x00000801.*0x00000803"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path, files):
    files.make_mnist(tmp_path)
    files.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"6 images.*5 labels"):
        load_mnist(tmp_path)


def test_load_mnist_label_out_of_range(tmp_path, files):
    files.make_mnist(tmp_path)
    files.write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(6, 10, dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_real_mnist(files):
    data_home = files.real_data_folder("mnist").parent
    train = load_mnist(data_home)
    X_test, y_test = load_mnist(data_home, subset="test", return_X_y=True)
    assert train.data.shape == (60000, 784)
    assert train.images.shape == (60000, 28, 28)
    assert X_test.shape == (10000, 784)
    for target in (train.target, y_test):
        assert set(np.unique(target)) == set(range(10))
    assert train.data.max() == 255
    assert train.data.min() == 0
