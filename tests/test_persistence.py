"""save / load: JSON parameters and tensor weights, no pickle."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from torch import nn

from sk_dim import DeepInfoMaxTransformer
from sk_dim.cmc import CMCTransformer
from sk_dim.persistence import load, save

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")

FAST = dict(n_components=8, max_epochs=1, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return pd.DataFrame(X[:64], columns=[f"px{i}" for i in range(64)])


@pytest.fixture(scope="module")
def fitted(digits):
    return DeepInfoMaxTransformer(image_shape=(1, 8, 8), **FAST).fit(digits)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "dim.skdim"
    fitted.save(path)
    return path


def _assert_same(loaded, original, X):
    assert type(loaded) is type(original)
    assert loaded.get_params() == original.get_params()
    np.testing.assert_array_equal(loaded.transform(X), original.transform(X))
    pd.testing.assert_frame_equal(loaded.history_, original.history_, check_dtype=False)
    for key in ("n_features_in_", "input_shape_", "image_shape_", "versions_"):
        assert getattr(loaded, key) == getattr(original, key)
    assert loaded.get_feature_names_out().tolist() == original.get_feature_names_out().tolist()


def test_round_trip_dim(fitted, saved, digits):
    loaded = load(saved)
    _assert_same(loaded, fitted, digits)
    assert list(loaded.feature_names_in_) == list(digits.columns)
    assert isinstance(loaded.image_shape, tuple)


def test_round_trip_cmc(digits, tmp_path):
    cols = list(digits.columns)
    cmc = CMCTransformer(views=[cols[:32], cols[32:]], **FAST).fit(digits)
    save(cmc, tmp_path / "cmc.skdim")
    loaded = load(tmp_path / "cmc.skdim")
    _assert_same(loaded, cmc, digits)
    assert loaded.views_ == cmc.views_ and loaded.n_negatives_ == cmc.n_negatives_


def test_memory_bank_is_left_out_with_a_warning(digits, tmp_path):
    cmc = CMCTransformer(keep_memory_bank=True, **FAST).fit(digits.to_numpy())
    with pytest.warns(UserWarning, match="memory bank"):
        cmc.save(tmp_path / "cmc.skdim")
    loaded = load(tmp_path / "cmc.skdim")
    assert loaded.net_.module_.contrast is None
    X = digits.to_numpy()
    np.testing.assert_array_equal(loaded.transform(X), cmc.transform(X))


def test_weights_are_plain_tensors_and_params_json(saved):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["metadata.json", "weights.pt"]
        metadata = json.loads(archive.read("metadata.json"))
        state = torch.load(io.BytesIO(archive.read("weights.pt")), weights_only=True)
    assert metadata["class"] == "DeepInfoMaxTransformer"
    assert metadata["fitted"]["versions_"]["__dict__"]["torch"] == torch.__version__
    assert all(isinstance(v, torch.Tensor) for v in state.values())


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 64, 3)

    def forward(self, x):
        local = torch.relu(self.conv(x))
        return local, self.head(local.flatten(1))


def test_what_cannot_be_saved_safely(digits, tmp_path):
    with pytest.raises(NotFittedError):
        save(DeepInfoMaxTransformer(), tmp_path / "x")
    user = DeepInfoMaxTransformer(encoder=TinyEncoder(), **FAST).fit(digits)
    with pytest.raises(TypeError, match="encoder holds a TinyEncoder.*joblib"):
        user.save(tmp_path / "x")
    seeded = DeepInfoMaxTransformer(**{**FAST, "random_state": np.random.RandomState(0)})
    with pytest.raises(TypeError, match="random_state.*joblib"):
        seeded.fit(digits).save(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_version_mismatch_warns(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda m: m["fitted"]["versions_"]["__dict__"].update(
        torch="1.0.0"))  # fmt: skip
    with pytest.warns(UserWarning, match=r"saved with torch 1\.0\.0 \(now"):
        load(path)


# -- tampered files --------------------------------------------------------------------


def _rewrite(path, tmp_path, entries):
    out = tmp_path / "tampered.skdim"
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out


def _entries(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _tampered(path, tmp_path, edit):
    entries = _entries(path)
    metadata = json.loads(entries["metadata.json"])
    edit(metadata)
    entries["metadata.json"] = json.dumps(metadata)
    return _rewrite(path, tmp_path, entries)


def _with_weights(path, tmp_path, state):
    entries = _entries(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    entries["weights.pt"] = buffer.getvalue()
    return _rewrite(path, tmp_path, entries)


EXPLODED = []


class Boom:
    def __reduce__(self):
        return (EXPLODED.append, ("code ran",))


def _state(path):
    return torch.load(io.BytesIO(_entries(path)["weights.pt"]), weights_only=True)


TAMPER = {
    "class": (lambda m: m.update({"class": "Pipeline"}), "class 'Pipeline' is not allowed"),
    "key": (lambda m: m.update({"code": "print(1)"}), "must hold the keys"),
    "param": (lambda m: m["params"].update({"evil": 1}), r"unknown parameters \['evil'\]"),
    "value": (lambda m: m["params"].update({"encoder": "evil"}), "invalid parameters.*encoder"),
    "tag": (lambda m: m["params"].update({"lr": {"__class__": "os"}}), "unexpected value"),
    "attribute": (lambda m: m["fitted"].update({"transform": 1}), "unexpected fitted attr"),
    "shape": (lambda m: m["fitted"].update({"input_shape_": [8]}), "invalid input_shape_"),
    "format": (lambda m: m.update({"format_version": 99}), "unsupported format"),
}


@pytest.mark.parametrize("case", TAMPER)
def test_tampered_metadata_is_rejected(saved, tmp_path, case):
    edit, message = TAMPER[case]
    with pytest.raises(ValueError, match=message):
        load(_tampered(saved, tmp_path, edit))


def test_tampered_files_are_rejected(saved, tmp_path):
    entries = _entries(saved)
    with pytest.raises(ValueError, match="not valid JSON"):
        load(_rewrite(saved, tmp_path, {**entries, "metadata.json": b"{not json"}))
    with pytest.raises(ValueError, match="expected exactly the entries"):
        load(_rewrite(saved, tmp_path, {**entries, "extra.pkl": b"x"}))
    (tmp_path / "plain").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a file written by sk_dim"):
        load(tmp_path / "plain")

    with pytest.raises(ValueError, match="weights_only"):
        load(_with_weights(saved, tmp_path, {**_state(saved), "x": Boom()}))
    assert EXPLODED == [], "loading must never run code from the file"
    with pytest.raises(ValueError, match="dict of tensors"):
        load(_with_weights(saved, tmp_path, {**_state(saved), "x": 3}))
    state = _state(saved)
    key = next(k for k in state if k.endswith("weight"))
    state[key] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="(?s)weights do not fit.*size mismatch"):
        load(_with_weights(saved, tmp_path, state))
    state = _state(saved)
    state.pop(key)
    with pytest.raises(ValueError, match="(?s)weights do not fit.*Missing key"):
        load(_with_weights(saved, tmp_path, state))
