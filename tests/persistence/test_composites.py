"""sk_dim.persistence.composites: pipelines and other composites through skops."""

import io
import json
import os
import zipfile

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer
from sk_dim.persistence import load, save

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")


FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)


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


def test_tampered_composites_are_refused(saved_pipe, zips):
    entries = zips.entries(saved_pipe)
    evil = skops.io.dumps(Pipeline([("f", FunctionTransformer(func=os.system))]))
    with pytest.raises(ValueError, match=r"names types that are not trusted: \['posix\.system'\]"):
        load(zips.rewrite({**entries, "estimator.skops": evil}))
    with pytest.raises(ValueError, match="not a valid skops file"):
        load(zips.rewrite({**entries, "estimator.skops": b"not a zip"}))
    bomb = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(entries["estimator.skops"])) as inner,
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as out,
    ):
        for info in inner.infolist():
            out.writestr(info.filename, inner.read(info))
        out.writestr("zeros.npy", bytes(32 << 20))
    with pytest.raises(ValueError, match="zeros.npy claims 33554432 bytes"):
        load(zips.rewrite({**entries, "estimator.skops": bomb.getvalue()}))
    with pytest.raises(ValueError, match="unexpected entries"):
        load(zips.rewrite({**entries, "steps/0/evil.pkl": b"x"}))
    missing = {k: v for k, v in entries.items() if k != "steps/0/weights.safetensors"}
    with pytest.raises(ValueError, match="expected exactly the entries"):
        load(zips.rewrite(missing))

    # A step's metadata is checked as a transformer's is: a network 10^7 wide is refused.
    def edit(metadata):
        metadata["params"]["embedding_dim"] = 10**7

    with pytest.raises(ValueError, match=r"\(steps/0\): the weights do not fit"):
        load(zips.tampered(saved_pipe, edit, prefix="steps/0/"))
    header = json.loads(entries["composite.json"])
    header["steps"] = []
    with pytest.raises(ValueError, match="placeholders"):
        load(zips.rewrite({
            "composite.json": json.dumps(header), "estimator.skops": entries["estimator.skops"]
        }))  # fmt: skip
