"""save / load: JSON parameters, safetensors weights and skops composites, no pickle."""

import copy
import io
import json
import os
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

import sk_dim
from sk_dim import DeepInfoMaxTransformer
from sk_dim.cmc import CMCTransformer
from sk_dim.modules import multiview
from sk_dim.persistence import FORMAT_VERSION, load, save

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")

FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)


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
    sk_dim.save(fitted, path)
    return path


@pytest.fixture(scope="module")
def cmc(digits):
    return CMCTransformer(**FAST).fit(digits.to_numpy())


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
    with pytest.warns(UserWarning, match="training-only state"):
        sk_dim.save(cmc, tmp_path / "cmc.skdim")
    loaded = load(tmp_path / "cmc.skdim")
    assert loaded.net_.module_.contrast is None
    X = digits.to_numpy()
    np.testing.assert_array_equal(loaded.transform(X), cmc.transform(X))


def test_saved_file_permissions_follow_the_umask(saved, tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    assert saved.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_weights_are_safetensors_and_params_json(saved, fitted):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["metadata.json", "weights.safetensors"]
        metadata = json.loads(archive.read("metadata.json"))
        state = load_safetensors(archive.read("weights.safetensors"))
    assert metadata["class"] == "DeepInfoMaxTransformer"
    assert metadata["format_version"] == FORMAT_VERSION == 2
    assert metadata["written_by"] == sk_dim.__version__
    assert metadata["fitted"]["versions_"]["__dict__"]["torch"] == torch.__version__
    assert state.keys() == fitted.net_.module_.state_dict().keys()


def test_format_1_files_are_refused(saved, tmp_path):
    # Format 1 (weights pickled in weights.pt) was never released: only format 2 is read,
    # and the pickle is never unpickled.
    metadata = json.loads(_entries(saved)["metadata.json"])
    del metadata["written_by"]
    metadata["format_version"] = 1
    buffer = io.BytesIO()
    torch.save({**_state(saved), "x": Boom()}, buffer)
    old = {"metadata.json": json.dumps(metadata), "weights.pt": buffer.getvalue()}
    with pytest.raises(ValueError, match=r"format 'sk_dim' version 1 .*reads 'sk_dim' version 2"):
        load(_rewrite(tmp_path, old))
    assert EXPLODED == [], "loading must never run code from the file"


def test_load_inference_state_is_the_seam(cmc, digits):
    # What load does once the file is checked: the fitted attributes on a new instance,
    # then the estimator's own persistence-agnostic load_inference_state.
    X = digits.to_numpy()
    state = cmc.inference_state()
    fitted = {k: v for k, v in vars(cmc).items() if k.endswith("_") and not k.startswith("_")}
    fitted.pop("net_")
    copy_ = clone(cmc)
    copy_.__dict__.update(fitted)
    copy_.history_ = cmc.history_
    copy_.load_inference_state(state)
    np.testing.assert_array_equal(copy_.transform(X), cmc.transform(X))
    assert copy_.n_iter_ == cmc.n_iter_
    key = next(k for k, v in state.items() if v.ndim == 2)  # a linear layer's weight
    broken = clone(cmc)
    broken.__dict__.update(fitted)
    with pytest.raises(ValueError, match="the weights do not fit the network: size mismatch"):
        broken.load_inference_state({**state, key: state[key][:, :1]})
    assert not hasattr(broken, "net_")


def test_attributes_fit_does_not_set_are_left_out(fitted, tmp_path):
    # load() refuses them (tests/test_persistence_files.py): save leaves them out, warning.
    model = copy.deepcopy(fitted)
    model.score_curve_ = [2.5, float("nan")]
    with pytest.warns(UserWarning, match=r"leaves out the attributes \['score_curve_'\]"):
        save(model, tmp_path / "dim.skdim")
    loaded = load(tmp_path / "dim.skdim")
    assert not hasattr(loaded, "score_curve_")
    assert loaded.input_shape_ == fitted.input_shape_


def test_non_finite_values_round_trip_through_json():
    from sk_dim.persistence.codec import decode, encode

    for value in ([2.5, float("nan")], float("inf"), np.array([1.0, -np.inf])):
        decoded = decode(json.loads(json.dumps(encode(value, "x"), allow_nan=False)), "x")
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(value))


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
        sk_dim.save(user, tmp_path / "x")
    seeded = DeepInfoMaxTransformer(**{**FAST, "random_state": np.random.RandomState(0)})
    with pytest.raises(TypeError, match="random_state.*joblib"):
        sk_dim.save(seeded.fit(digits), tmp_path / "x")
    with pytest.raises(TypeError, match="joblib"):
        save(object(), tmp_path / "x")
    assert os.listdir(tmp_path) == []


def test_version_mismatch_warns(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda m: m["fitted"]["versions_"]["__dict__"].update(
        torch="1.0.0"))  # fmt: skip
    with pytest.warns(UserWarning, match=r"saved with torch 1\.0\.0 \(now"):
        load(path)


def test_interrupted_save_leaves_no_file(fitted, saved, tmp_path, monkeypatch):
    before = saved.read_bytes()
    calls = []

    def failing_writestr(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) % 2 == 0:  # the second entry of each file
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="disk full"):
        save(fitted, saved)
    with pytest.raises(OSError, match="disk full"):
        save(fitted, tmp_path / "new.skdim")
    assert os.listdir(tmp_path) == ["dim.skdim"]  # no temporary file, no half file
    assert saved.read_bytes() == before


# -- tampered and damaged files --------------------------------------------------------


def _rewrite(tmp_path, entries, name="tampered.skdim"):
    out = tmp_path / name
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return out


def _entries(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _tampered(path, tmp_path, edit, prefix=""):
    entries = _entries(path)
    metadata = json.loads(entries[f"{prefix}metadata.json"])
    edit(metadata)
    entries[f"{prefix}metadata.json"] = json.dumps(metadata)
    return _rewrite(tmp_path, entries)


def _state(path):
    return load_safetensors(_entries(path)["weights.safetensors"])


def _with_weights(path, tmp_path, state):
    return _rewrite(tmp_path, {**_entries(path), "weights.safetensors": save_safetensors(state)})


EXPLODED = []


class Boom:
    def __reduce__(self):
        return (EXPLODED.append, ("code ran",))


TAMPER = {
    "class": (lambda m: m.update({"class": "Pipeline"}), "class 'Pipeline' is not allowed"),
    "key": (lambda m: m.update({"code": "print(1)"}), "must hold the keys"),
    "param": (lambda m: m["params"].update({"evil": 1}), r"unknown parameters \['evil'\]"),
    "value": (lambda m: m["params"].update({"encoder": "evil"}), "invalid parameters.*encoder"),
    "tag": (lambda m: m["params"].update({"lr": {"__class__": "os"}}), "unexpected value"),
    "attribute": (lambda m: m["fitted"].update({"transform": 1}), "unexpected fitted attr"),
    "shape": (lambda m: m["fitted"].update({"input_shape_": [8]}), "invalid input_shape_"),
    "format": (lambda m: m.update({"format_version": 99}), "unsupported format.*reads"),
    # A network 10^7 wide is refused before anything is allocated for it.
    "width": (lambda m: m["params"].update({"embedding_dim": 10**7}), "weights do not fit"),
    "names": (
        lambda m: m["fitted"]["feature_names_in_"].update(
            {"shape": [2], "__ndarray__": ["a", "b"]}
        ),
        "feature_names_in_",
    ),
}


@pytest.mark.parametrize("case", TAMPER)
def test_tampered_metadata_is_rejected(saved, tmp_path, case):
    edit, message = TAMPER[case]
    with pytest.raises(ValueError, match=message):
        load(_tampered(saved, tmp_path, edit))


def test_tampered_files_are_rejected(saved, tmp_path):
    entries = _entries(saved)
    with pytest.raises(ValueError, match="not valid JSON"):
        load(_rewrite(tmp_path, {**entries, "metadata.json": b"{not json"}))
    with pytest.raises(ValueError, match="expected exactly the entries"):
        load(_rewrite(tmp_path, {**entries, "extra.pkl": b"x"}))
    (tmp_path / "plain").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a file written by sk_dim"):
        load(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load(_rewrite(tmp_path, {**entries, "weights.safetensors": b"\x10" * 64}))

    state = _state(saved)
    key = next(k for k in state if k.endswith("weight"))
    state[key] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="(?s)weights do not fit.*size mismatch"):
        load(_with_weights(saved, tmp_path, state))
    state = _state(saved)
    state.pop(key)
    with pytest.raises(ValueError, match="(?s)weights do not fit.*Missing key"):
        load(_with_weights(saved, tmp_path, state))
    state = _state(saved)
    state[key] = state[key].double()
    with pytest.raises(ValueError, match="(?s)weights do not fit.*float64"):
        load(_with_weights(saved, tmp_path, state))


def test_mismatched_weights_name_the_versions(saved, tmp_path):
    # As when two sk_dim releases build different networks under one format version.
    state = _state(saved)
    state.pop(next(iter(state)))
    path = _tampered(_with_weights(saved, tmp_path, state), tmp_path,
                     lambda m: m.update({"written_by": "0.0.9"}))  # fmt: skip
    with pytest.raises(ValueError, match=r"written by sk_dim 0\.0\.9 in format version 2; this "
                       rf"is sk_dim {sk_dim.__version__}"):  # fmt: skip
        load(path)


def test_non_finite_weights_are_refused(saved, tmp_path):
    for bad in (float("nan"), float("inf")):
        state = _state(saved)
        key = next(k for k in state if k.endswith("weight"))
        state[key][0] = bad
        with pytest.raises(ValueError, match=f"weight '{key}' holds NaN or infinite"):
            load(_with_weights(saved, tmp_path, state))


def test_finite_weights_that_give_non_finite_features_are_refused(saved, tmp_path):
    # Moved from tests/test_state_consistency.py with the checks (sk_dim.persistence).
    def zero_std(state):
        state["encoder.0.std"].zero_()

    def huge_conv(state):
        key = next(k for k, v in state.items() if k.endswith("weight") and v.dim() == 4)
        state[key].view(-1)[0] = 1e38

    def negative_variance(state):
        key = next(k for k in state if k.startswith("encoder.") and k.endswith("running_var"))
        state[key].fill_(-1.0)

    cases = [(zero_std, "non-finite features"), (huge_conv, "larger than")]
    for change, message in [*cases, (negative_variance, "non-finite features")]:
        state = _state(saved)
        change(state)
        with pytest.raises(ValueError, match=message):
            load(_with_weights(saved, tmp_path, state))


def test_damaged_zip_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a file written by sk_dim"):
        load(tmp_path / "truncated")
    # A flipped byte inside the deflated metadata: zlib.error or a CRC error.
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("metadata.json")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in (start + 5, start + info.compress_size // 2):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        (tmp_path / "flipped").write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="metadata.json is damaged"):
            load(tmp_path / "flipped")


def test_size_caps(saved, tmp_path):
    entries = _entries(saved)
    # 20 MB of spaces deflate to ~20 KB: the declared size is refused before reading.
    padded = entries["metadata.json"] + b" " * (20 << 20)
    with pytest.raises(ValueError, match="metadata.json is 2.* bytes, more than"):
        load(_rewrite(tmp_path, {**entries, "metadata.json": padded}))
    # Empty JSON objects cost 3 bytes each in the file, ~70 bytes each in memory.
    bomb = json.loads(entries["metadata.json"])
    bomb["history"] = [{}] * (1 << 20)
    with pytest.raises(ValueError, match="more than 1048576 JSON objects"):
        load(_rewrite(tmp_path, {**entries, "metadata.json": json.dumps(bomb)}))
    deep = json.loads(entries["metadata.json"])
    deep["params"]["lr"] = "DEEP"
    deep = json.dumps(deep).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply|not valid JSON"):
        load(_rewrite(tmp_path, {**entries, "metadata.json": deep}))
    # Weights that deflate too well (a zip bomb) are refused before reading.
    zeros = bytes(32 << 20)
    with pytest.raises(ValueError, match="weights.safetensors claims 33554432 bytes from"):
        load(_rewrite(tmp_path, {**entries, "weights.safetensors": zeros}))


def test_wide_inputs_need_weights(saved, tmp_path):
    def edit(m):
        m["params"]["image_shape"] = {"__tuple__": [1, 4096, 4096]}
        wide = {"__tuple__": [1, 4096, 4096]}
        m["fitted"].update(input_shape_=wide, image_shape_=wide, n_features_in_=4096**2)
        del m["fitted"]["feature_names_in_"]

    with pytest.raises(ValueError, match="n_features_in_=16777216 is more than the weights"):
        load(_tampered(saved, tmp_path, edit))


def test_cmc_n_negatives_cannot_make_load_allocate(cmc, tmp_path, monkeypatch):
    sk_dim.save(cmc, tmp_path / "cmc.skdim")
    huge = _tampered(tmp_path / "cmc.skdim", tmp_path, lambda m: m["fitted"].update(
        n_negatives_=10**6))  # fmt: skip
    with pytest.raises(ValueError, match=r"invalid n_negatives_=1000000: expected an int in \[1"):
        load(huge)

    # Consistent with a huge n_negatives, it loads, building no memory bank at all.
    sizes = []

    class RecordingBank(multiview.MemoryBank):
        def __init__(self, n_samples, *args, **kwargs):
            sizes.append(n_samples)
            super().__init__(n_samples, *args, **kwargs)

    monkeypatch.setattr(multiview, "MemoryBank", RecordingBank)
    path = _tampered(tmp_path / "cmc.skdim", tmp_path, lambda m: (
        m["fitted"].update(n_negatives_=10**6), m["params"].update(n_negatives=10**6)))  # fmt: skip
    loaded = load(path)
    assert loaded.n_negatives_ == 10**6
    assert sizes == []


# -- composites ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits150():
    X, y = load_digits(return_X_y=True)
    return X[:150], y[:150]


@pytest.fixture(scope="module")
def pipe(digits150):
    X, y = digits150
    dim = DeepInfoMaxTransformer(max_epochs=1, batch_size=32, random_state=0)
    steps = [("dim", dim), ("scale", StandardScaler()), ("svc", LinearSVC())]
    return Pipeline(steps).fit(X, y)


@pytest.fixture
def saved_pipe(pipe, tmp_path):
    path = tmp_path / "pipe.skdim"
    save(pipe, path)
    return path


def test_pipeline_round_trip(pipe, saved_pipe, digits150, tmp_path):
    X, _ = digits150
    dim, net = pipe.named_steps["dim"], pipe.named_steps["dim"].net_
    loaded = load(saved_pipe)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_array_equal(loaded.decision_function(X), pipe.decision_function(X))
    assert type(loaded.named_steps["dim"]) is DeepInfoMaxTransformer
    # The user's pipeline is untouched.
    assert pipe.named_steps["dim"] is dim and dim.net_ is net
    with zipfile.ZipFile(saved_pipe) as archive:
        assert sorted(archive.namelist()) == [
            "composite.json",
            "estimator.skops",
            "steps/0/metadata.json",
            "steps/0/weights.safetensors",
        ]
    # As small as a pickle, which holds what transform needs (about 4x smaller than the
    # 93 MB of the pickles that held the optimizer state and the module twice) ...
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    assert os.path.getsize(saved_pipe) < 1.05 * os.path.getsize(tmp_path / "pipe.joblib")
    # ... and the optimizer state goes into a pickle only for warm_start.
    warm = clone(pipe).set_params(dim__warm_start=True).fit(X, digits150[1])
    joblib.dump(warm, tmp_path / "warm.joblib")
    assert os.path.getsize(tmp_path / "warm.joblib") > 2.5 * os.path.getsize(saved_pipe)


def test_column_transformer_round_trip(digits, tmp_path):
    X = digits.to_numpy()
    dim = DeepInfoMaxTransformer(image_shape=None, **FAST)
    ct = ColumnTransformer([("dim", dim, slice(0, 32)), ("rest", "passthrough", slice(32, 64))])
    ct.fit(X)
    save(ct, tmp_path / "ct.skdim")
    loaded = load(tmp_path / "ct.skdim")
    np.testing.assert_array_equal(loaded.transform(X), ct.transform(X))
    # The unfitted parameter comes back unfitted, the fitted clone fitted.
    assert not hasattr(loaded.transformers[0][1], "net_")
    assert loaded.transformers[0][1].get_params() == dim.get_params()
    assert hasattr(loaded.transformers_[0][1], "net_")


def test_composites_skops_cannot_store_safely_are_refused(pipe, tmp_path):
    risky = Pipeline([("f", FunctionTransformer(func=os.system)), ("p", pipe)])
    with pytest.raises(TypeError, match=r"(?s)load\(\) would refuse.*posix\.system.*joblib"):
        save(risky, tmp_path / "x")
    assert os.listdir(tmp_path) == []


def test_tampered_composites_are_refused(saved_pipe, tmp_path):
    entries = _entries(saved_pipe)
    evil = skops.io.dumps(Pipeline([("f", FunctionTransformer(func=os.system))]))
    with pytest.raises(ValueError, match=r"names types that are not trusted: \['posix\.system'\]"):
        load(_rewrite(tmp_path, {**entries, "estimator.skops": evil}))
    with pytest.raises(ValueError, match="not a valid skops file"):
        load(_rewrite(tmp_path, {**entries, "estimator.skops": b"not a zip"}))
    bomb = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(entries["estimator.skops"])) as inner,
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as out,
    ):
        for info in inner.infolist():
            out.writestr(info.filename, inner.read(info))
        out.writestr("zeros.npy", bytes(32 << 20))
    with pytest.raises(ValueError, match="zeros.npy claims 33554432 bytes"):
        load(_rewrite(tmp_path, {**entries, "estimator.skops": bomb.getvalue()}))
    with pytest.raises(ValueError, match="unexpected entries"):
        load(_rewrite(tmp_path, {**entries, "steps/0/evil.pkl": b"x"}))
    missing = {k: v for k, v in entries.items() if k != "steps/0/weights.safetensors"}
    with pytest.raises(ValueError, match="expected exactly the entries"):
        load(_rewrite(tmp_path, missing))
    # A step's metadata is checked as a transformer's is.
    edit = TAMPER["width"][0]
    with pytest.raises(ValueError, match=r"\(steps/0\): the weights do not fit"):
        load(_tampered(saved_pipe, tmp_path, edit, prefix="steps/0/"))
    header = json.loads(entries["composite.json"])
    header["steps"] = []
    with pytest.raises(ValueError, match="placeholders"):
        load(_rewrite(tmp_path, {
            "composite.json": json.dumps(header), "estimator.skops": entries["estimator.skops"]
        }))  # fmt: skip
