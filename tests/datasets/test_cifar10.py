"""sk_dim.datasets.cifar10: load_cifar10, exercised on tiny files in the official format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.utils import Bunch

from sk_dim.datasets import load_cifar10


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_cifar10_round_trip(tmp_path, protocol, files):
    arrays = files.make_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)

    bunch = load_cifar10(tmp_path)

    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (15, 3072)
    assert bunch.data.dtype == np.uint8
    assert bunch.images.shape == (15, 3, 32, 32)
    assert bunch.images.dtype == np.uint8
    assert bunch.target.shape == (15,)
    assert bunch.target.dtype == np.int64
    expected_data = np.concatenate([arrays[name][0] for name in files.CIFAR_TRAIN])
    expected_target = np.concatenate([arrays[name][1] for name in files.CIFAR_TRAIN])
    np.testing.assert_array_equal(bunch.data, expected_data)
    np.testing.assert_array_equal(bunch.target, expected_target)
    assert bunch.image_shape == (3, 32, 32)
    assert "CIFAR-10" in bunch.DESCR
    assert "JPEG" in bunch.DESCR
    # No meta file: the standard names.
    assert list(bunch.target_names) == files.CIFAR_NAMES


def test_load_cifar10_images_are_channel_first(tmp_path, files):
    folder = tmp_path / "cifar-10-batches-py"
    files.make_cifar(folder)
    # Official row layout: 1024 red, 1024 green, 1024 blue, each plane row-major.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.arange(1024) % 256])
    files.write_cifar_batch(folder / "test_batch", row.astype(np.uint8)[None], [7])
    image = load_cifar10(tmp_path, subset="test").images[0]
    assert (image[0] == 10).all()
    assert (image[1] == 20).all()
    assert image[2, 0, 1] == 1
    assert image[2, 1, 0] == 32  # row-major within the plane


def test_load_cifar10_subsets_and_return_X_y(tmp_path, files):
    arrays = files.make_cifar(tmp_path / "cifar-10-batches-py")
    X, y = load_cifar10(tmp_path, subset="test", return_X_y=True)
    assert X.shape == (3, 3072)
    assert X.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, arrays["test_batch"][0])
    np.testing.assert_array_equal(y, arrays["test_batch"][1])

    both = load_cifar10(tmp_path, subset="all")
    order = [*files.CIFAR_TRAIN, "test_batch"]
    np.testing.assert_array_equal(both.data, np.concatenate([arrays[n][0] for n in order]))
    np.testing.assert_array_equal(both.target, np.concatenate([arrays[n][1] for n in order]))


def test_load_cifar10_batches_directly_in_data_home(tmp_path, files):
    arrays = files.make_cifar(tmp_path)
    X, _ = load_cifar10(str(tmp_path), subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, arrays["test_batch"][0])


@pytest.mark.parametrize("as_bytes", [True, False])
def test_load_cifar10_target_names_from_meta(tmp_path, as_bytes, files):
    names = [f"class{i}" for i in range(10)]
    meta_names = [n.encode() for n in names] if as_bytes else names
    files.make_cifar(tmp_path, meta_names=meta_names)
    assert list(load_cifar10(tmp_path).target_names) == names


def test_load_cifar10_str_keys(tmp_path, files):
    arrays = files.make_cifar(tmp_path, str_keys=True, protocol=4)
    X, y = load_cifar10(tmp_path, subset="test", return_X_y=True)
    np.testing.assert_array_equal(X, arrays["test_batch"][0])
    np.testing.assert_array_equal(y, arrays["test_batch"][1])


def test_load_cifar10_missing_files_message(tmp_path, files):
    folder = tmp_path / "cifar-10-batches-py"
    files.make_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_cifar10(tmp_path)
    message = str(excinfo.value)
    assert "data_batch_3" in message
    assert "data_batch_1" not in message
    assert str(folder) in message
    assert str(tmp_path) in message


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_load_cifar10_corrupt_pickle(tmp_path, damage, files):
    files.make_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    content = {
        "truncate": path.read_bytes()[:500],
        "garbage": b"this is not a pickle at all",
        "empty": b"",
    }[damage]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar10(tmp_path)


def test_load_cifar10_corrupt_meta(tmp_path, files):
    files.make_cifar(tmp_path, meta_names=files.CIFAR_NAMES)
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
def test_load_cifar10_invalid_batch(tmp_path, data, labels, match, files):
    files.make_cifar(tmp_path)
    files.write_cifar_batch(tmp_path / "test_batch", data, labels)
    with pytest.raises(ValueError, match=match) as excinfo:
        load_cifar10(tmp_path, subset="test")
    assert "test_batch" in str(excinfo.value)


def test_load_cifar10_missing_key(tmp_path, files):
    files.make_cifar(tmp_path)
    with (tmp_path / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), dtype=np.uint8)}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch.*'labels'"):
        load_cifar10(tmp_path, subset="test")


def test_real_cifar10(files):
    data_home = files.real_data_folder("cifar-10-batches-py").parent
    train = load_cifar10(data_home)
    X_test, y_test = load_cifar10(data_home, subset="test", return_X_y=True)
    assert train.data.shape == (50000, 3072)
    assert train.images.shape == (50000, 3, 32, 32)
    assert X_test.shape == (10000, 3072)
    # The official release is exactly balanced: 5,000 / 1,000 images per class.
    np.testing.assert_array_equal(np.bincount(train.target, minlength=10), 5000)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), 1000)
    assert list(train.target_names) == files.CIFAR_NAMES
