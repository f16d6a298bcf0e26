"""sk_dim.datasets.cifar10: load_cifar10, exercised on tiny files in the official format."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

from sk_dim.datasets import load_cifar10

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
CIFAR_NAMES += ["dog", "frog", "horse", "ship", "truck"]


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


def _real_data_folder(*parts: str) -> Path:
    """Return SK_DIM_DATA[_HOME]/parts, skipping the test when it is not there."""
    data_home = os.environ.get("SK_DIM_DATA") or os.environ.get("SK_DIM_DATA_HOME")
    if not data_home:
        pytest.skip("neither SK_DIM_DATA nor SK_DIM_DATA_HOME is set")
    folder = Path(data_home, *parts)
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist")
    return folder


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
