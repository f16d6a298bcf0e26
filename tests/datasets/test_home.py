"""sk_dim.datasets.home: the data home, finding files, the checks both loaders share."""

from __future__ import annotations

import numpy as np
import pytest

from sk_dim.datasets import get_data_home, load_cifar10, load_mnist


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


def test_loaders_read_the_default_folder(monkeypatch, tmp_path, files):
    arrays = files.make_mnist(tmp_path / "mnist")
    cifar = files.make_cifar(tmp_path / "cifar-10-batches-py")
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
