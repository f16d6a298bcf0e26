"""sk_dim.persistence.transformers: one transformer's entries, every check of an untrusted file."""

import copy
import json
import re
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import sk_dim
from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.modules import multiview
from sk_dim.persistence import FORMAT_VERSION, load, save
from sk_dim.persistence import transformers as transformer_files

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")


FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)


def test_memory_bank_is_left_out_with_a_warning(digits, tmp_path):
    cmc = CMCTransformer(keep_memory_bank=True, **FAST).fit(digits.to_numpy())
    with pytest.warns(UserWarning, match="training-only state"):
        sk_dim.save(cmc, tmp_path / "cmc.skdim")
    loaded = load(tmp_path / "cmc.skdim")
    assert loaded.net_.module_.contrast is None
    X = digits.to_numpy()
    np.testing.assert_array_equal(loaded.transform(X), cmc.transform(X))


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


def test_attributes_fit_does_not_set_are_left_out(fitted, tmp_path):
    # load() refuses them (below): save leaves them out, warning.
    model = copy.deepcopy(fitted)
    model.score_curve_ = [2.5, float("nan")]
    with pytest.warns(UserWarning, match=r"leaves out the attributes \['score_curve_'\]"):
        save(model, tmp_path / "dim.skdim")
    loaded = load(tmp_path / "dim.skdim")
    assert not hasattr(loaded, "score_curve_")
    assert loaded.input_shape_ == fitted.input_shape_


def test_version_mismatch_warns(saved, zips):
    path = zips.tampered(saved, lambda m: m["fitted"]["versions_"]["__dict__"].update(
        torch="1.0.0"))  # fmt: skip
    with pytest.warns(UserWarning, match=r"saved with torch 1\.0\.0 \(now"):
        load(path)


def _with_weights(zips, path, state):
    return zips.rewrite({**zips.entries(path), "weights.safetensors": save_safetensors(state)})


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
def test_tampered_metadata_is_rejected(saved, zips, case):
    edit, message = TAMPER[case]
    with pytest.raises(ValueError, match=message):
        load(zips.tampered(saved, edit))


def test_tampered_files_are_rejected(saved, tmp_path, zips):
    entries = zips.entries(saved)
    with pytest.raises(ValueError, match="not valid JSON"):
        load(zips.rewrite({**entries, "metadata.json": b"{not json"}))
    with pytest.raises(ValueError, match="expected exactly the entries"):
        load(zips.rewrite({**entries, "extra.pkl": b"x"}))
    (tmp_path / "plain").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a file written by sk_dim"):
        load(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load(zips.rewrite({**entries, "weights.safetensors": b"\x10" * 64}))

    state = zips.weights(saved)
    key = next(k for k in state if k.endswith("weight"))
    state[key] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="(?s)weights do not fit.*size mismatch"):
        load(_with_weights(zips, saved, state))
    state = zips.weights(saved)
    state.pop(key)
    with pytest.raises(ValueError, match="(?s)weights do not fit.*Missing key"):
        load(_with_weights(zips, saved, state))
    state = zips.weights(saved)
    state[key] = state[key].double()
    with pytest.raises(ValueError, match="(?s)weights do not fit.*float64"):
        load(_with_weights(zips, saved, state))


def test_mismatched_weights_name_the_versions(saved, zips):
    # As when two sk_dim releases build different networks under one format version.
    state = zips.weights(saved)
    state.pop(next(iter(state)))
    path = zips.tampered(_with_weights(zips, saved, state),
                         lambda m: m.update({"written_by": "0.0.9"}))  # fmt: skip
    with pytest.raises(ValueError, match=r"written by sk_dim 0\.0\.9 in format version 2; this "
                       rf"is sk_dim {sk_dim.__version__}"):  # fmt: skip
        load(path)


def test_non_finite_weights_are_refused(saved, zips):
    for bad in (float("nan"), float("inf")):
        state = zips.weights(saved)
        key = next(k for k in state if k.endswith("weight"))
        state[key][0] = bad
        with pytest.raises(ValueError, match=f"weight '{key}' holds NaN or infinite"):
            load(_with_weights(zips, saved, state))


def test_finite_weights_that_give_non_finite_features_are_refused(saved, zips):
    # Moved from tests/integration/test_state_consistency.py with the checks (sk_dim.persistence).
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
        state = zips.weights(saved)
        change(state)
        with pytest.raises(ValueError, match=message):
            load(_with_weights(zips, saved, state))


def test_wide_inputs_need_weights(saved, zips):
    def edit(m):
        m["params"]["image_shape"] = {"__tuple__": [1, 4096, 4096]}
        wide = {"__tuple__": [1, 4096, 4096]}
        m["fitted"].update(input_shape_=wide, image_shape_=wide, n_features_in_=4096**2)
        del m["fitted"]["feature_names_in_"]

    with pytest.raises(ValueError, match="n_features_in_=16777216 is more than the weights"):
        load(zips.tampered(saved, edit))


def test_cmc_n_negatives_cannot_make_load_allocate(cmc, tmp_path, monkeypatch, zips):
    sk_dim.save(cmc, tmp_path / "cmc.skdim")
    huge = zips.tampered(tmp_path / "cmc.skdim", lambda m: m["fitted"].update(
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
    path = zips.tampered(tmp_path / "cmc.skdim", lambda m: (
        m["fitted"].update(n_negatives_=10**6), m["params"].update(n_negatives=10**6)))  # fmt: skip
    loaded = load(path)
    assert loaded.n_negatives_ == 10**6
    assert sizes == []


TINY = dict(max_epochs=1, batch_size=32, device="cpu", precision="float32", random_state=0)


def _fitted_attributes(estimator):
    return {
        key
        for key in vars(estimator)
        if key.endswith("_") and not key.startswith("_") and key not in transformer_files._REBUILT
    }


def test_the_allow_list_is_what_fit_sets(dim, cmc):
    allowed = transformer_files._FITTED_ATTRIBUTES
    assert set(allowed) == set(transformer_files.TRANSFORMER_CLASSES)
    # Fitted on a DataFrame: feature_names_in_ is set too.
    assert _fitted_attributes(dim) == allowed["DeepInfoMaxTransformer"]
    assert _fitted_attributes(cmc) == allowed["CMCTransformer"]


@pytest.mark.parametrize("model", ["dim", "cmc"])
def test_save_writes_every_fitted_attribute(model, request, tmp_path):
    estimator = request.getfixturevalue(model)
    save(estimator, tmp_path / "m.skdim")
    with zipfile.ZipFile(tmp_path / "m.skdim") as archive:
        fitted = json.loads(archive.read("metadata.json"))["fitted"]
    assert set(fitted) == transformer_files._FITTED_ATTRIBUTES[type(estimator).__name__]


def _tuple(*values):
    return {"__tuple__": list(values)}


def _in_fitted(edit):
    """An edit of the fitted attributes' metadata, for ``zips.tampered``."""
    return lambda metadata: edit(metadata["fitted"])


@pytest.mark.parametrize("name", ["totally_unknown_", "classes_", "n_iter_", "loss_curve_"])
def test_load_refuses_fitted_attributes_fit_does_not_set(saved, zips, name):
    path = zips.tampered(saved, _in_fitted(lambda fitted: fitted.update({name: 1})))
    message = f"{re.escape(str(path))}: unexpected fitted attribute '{name}'"
    with pytest.raises(ValueError, match=message):
        load(path)


@pytest.mark.parametrize(
    "image_shape",
    [_tuple(3, 4, 4), _tuple(1, 64, 1), None, [1, 8, 8], _tuple(1.0, 8.0, 8.0)],
    ids=["other", "same-size", "none", "list", "floats"],
)
def test_load_refuses_an_image_shape_other_than_the_input_shape(saved, zips, image_shape):
    with zipfile.ZipFile(saved) as archive:
        fitted = json.loads(archive.read("metadata.json"))["fitted"]
    assert fitted["input_shape_"] == _tuple(1, 8, 8) == fitted["image_shape_"]
    path = zips.tampered(saved, _in_fitted(lambda fitted: fitted.update(image_shape_=image_shape)))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: .*image_shape_=.* does not"):
        load(path)


def test_load_refuses_an_image_shape_for_vectors(digits, tmp_path, zips):
    vectors = DeepInfoMaxTransformer(image_shape=None, **TINY).fit(digits)
    assert vectors.input_shape_ == (64,) and vectors.image_shape_ is None
    save(vectors, tmp_path / "vectors.skdim")
    load(tmp_path / "vectors.skdim")
    for image_shape in (_tuple(1, 8, 8), _tuple(64)):
        path = zips.tampered(
            tmp_path / "vectors.skdim",
            _in_fitted(lambda f, shape=image_shape: f.update(image_shape_=shape)),
        )
        with pytest.raises(
            ValueError, match="image_shape_=.* does not match input_shape_=\\(64,\\)"
        ):
            load(path)
    path = zips.tampered(tmp_path / "vectors.skdim", _in_fitted(lambda f: f.pop("image_shape_")))
    with pytest.raises(ValueError, match="'image_shape_' is missing"):
        load(path)
