"""The speed options: precision (autocast), channels_last and compile.

bfloat16 on a CPU without AVX512-BF16 / AMX is emulated and many times
slower than float32, so the bfloat16 fits use small feature vectors.
(``tests/losses/test_mi_bounds.py`` checks the bounds' float32 arithmetic under autocast.)
"""

import dataclasses
import io
import json
import pickle
import zipfile
from pathlib import Path
from unittest import mock

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import sk_dim
from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim._runtime import cpu_computes_bfloat16
from sk_dim.persistence import load

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits().data


@pytest.fixture(scope="module")
def vectors(digits):
    """128 samples with 16 features: small enough for emulated bfloat16."""
    return digits[:128, ::4]


SMALL = {"embedding_dim": 8, "max_epochs": 4, "batch_size": 32, "device": "cpu", "random_state": 0}


def small_dim(**params):
    return DeepInfoMaxTransformer(**{**SMALL, **params})


def small_cmc(**params):
    return CMCTransformer(**{**SMALL, "n_negatives": 32, **params})


@pytest.mark.parametrize("make", [small_dim, small_cmc], ids=["dim", "cmc"])
@pytest.mark.parametrize(
    "params", [{"precision": "float64"}, {"channels_last": "yes"}, {"compile": "yes"}]
)
def test_invalid_options_are_rejected(make, params, vectors):
    with pytest.raises(ValueError, match=next(iter(params))):
        make(**params).fit(vectors)


@pytest.mark.parametrize("make", [small_dim, small_cmc], ids=["dim", "cmc"])
def test_float16_needs_cuda(make, vectors):
    with pytest.raises(ValueError, match="precision='float16' needs a CUDA device"):
        make(precision="float16").fit(vectors)


@pytest.mark.parametrize("make", [small_dim, small_cmc], ids=["dim", "cmc"])
@pytest.mark.parametrize("native", [False, True], ids=["emulated", "native"])
def test_auto_on_cpu_is_bfloat16_only_where_the_cpu_computes_it(make, native, vectors):
    with mock.patch("sk_dim._runtime.cpu_computes_bfloat16", return_value=native):
        model = make(max_epochs=2).fit(vectors)
    assert (model.precision, model.channels_last, model.compile) == ("auto", "auto", False)
    expected = "bfloat16" if native else "float32"
    assert (model.precision_, model.channels_last_) == (expected, False)
    # Trained in that precision: the same losses as the explicit setting, batch for batch.
    explicit = make(max_epochs=2, precision=expected).fit(vectors)
    np.testing.assert_array_equal(model.history_["train_loss"], explicit.history_["train_loss"])


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
def test_cpu_computes_bfloat16_matches_the_cpu_flags():
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert cpu_computes_bfloat16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


@pytest.mark.parametrize("make", [small_dim, small_cmc], ids=["dim", "cmc"])
def test_bfloat16_on_cpu_trains_like_float32(make, vectors):
    full = make(precision="float32").fit(vectors)
    half = make(precision="bfloat16").fit(vectors)
    assert half.precision_ == "bfloat16"
    loss, reference = half.history_["train_loss"], full.history_["train_loss"]
    assert np.isfinite(half.history_.to_numpy()).all()
    assert loss.iloc[-1] < loss.iloc[0]
    # Same seed, same batches: bfloat16 rounding only nudges the losses.
    np.testing.assert_allclose(loss, reference, rtol=0.05)
    Z = half.transform(vectors)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    assert _correlation(Z, full.transform(vectors)) > 0.9


def _correlation(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_channels_last_gives_the_same_features(digits):
    X = digits[:256]
    params = {
        "max_epochs": 1,
        "batch_size": 64,
        "device": "cpu",
        "random_state": 0,
        "precision": "float32",
    }  # layout rounding only, not bfloat16 rounding
    default = DeepInfoMaxTransformer(channels_last=False, **params).fit(X)
    nhwc = DeepInfoMaxTransformer(channels_last=True, **params).fit(X)
    assert nhwc.channels_last_ and not default.channels_last_
    weight = nhwc.net_.module_.encoder[1].local[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(
        nhwc.history_["train_loss"], default.history_["train_loss"], rtol=1e-3
    )
    # Rounding differs between the layouts and Adam amplifies it (a gradient
    # near 0 still makes an lr-sized step): trained features agree closely,
    # not exactly.
    Z = default.transform(X)
    assert _correlation(nhwc.transform(X), Z) > 0.99

    # The same weights give the same features in either layout.
    default.net_.channels_last = True
    default.net_.module_.to(memory_format=torch.channels_last)
    np.testing.assert_allclose(default.transform(X), Z, rtol=1e-4, atol=1e-5)


def test_channels_last_cmc(digits):
    params = {"n_negatives": 64, "max_epochs": 1, "batch_size": 64, "device": "cpu"}
    default = CMCTransformer(channels_last=False, random_state=0, **params).fit(digits[:128])
    nhwc = CMCTransformer(channels_last=True, random_state=0, **params).fit(digits[:128])
    np.testing.assert_allclose(
        nhwc.history_["train_loss"], default.history_["train_loss"], rtol=1e-3
    )
    assert _correlation(nhwc.transform(digits[:32]), default.transform(digits[:32])) > 0.99


def _edit_saved(path, out, **changes):
    """Rewrite a save()d file with some params / fitted attributes changed."""
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        weights = archive.read("weights.safetensors")
    for key, value in changes.items():
        metadata["fitted" if key.endswith("_") else "params"][key] = value
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("weights.safetensors", weights)


def test_options_round_trip_through_save(vectors, tmp_path):
    model = small_dim(max_epochs=1, precision="bfloat16", channels_last=True).fit(vectors)
    sk_dim.save(model, tmp_path / "dim.skdim")
    loaded = load(tmp_path / "dim.skdim")
    assert (loaded.precision, loaded.channels_last) == ("bfloat16", True)
    assert (loaded.precision_, loaded.channels_last_) == ("bfloat16", True)
    np.testing.assert_array_equal(loaded.transform(vectors), model.transform(vectors))


def test_a_cuda_float16_model_infers_in_float32_on_cpu(digits, tmp_path):
    """As if fitted on a GPU with float16 and channels_last: loads and transforms on a CPU."""
    X = digits[:128]
    model = DeepInfoMaxTransformer(
        max_epochs=1, device="cpu", random_state=0, precision="float32"
    ).fit(X)
    expected = model.transform(X)
    sk_dim.save(model, tmp_path / "cpu.skdim")
    gpu = {"precision": "float16", "channels_last": True, "device": "cuda"}
    _edit_saved(tmp_path / "cpu.skdim", tmp_path / "gpu.skdim", **gpu, precision_="float16")
    with pytest.warns(UserWarning, match="saved with device='cuda'.*using the CPU") as record:
        loaded = load(tmp_path / "gpu.skdim")
    assert record[0].filename == __file__  # the warning points at the user's call
    if not torch.cuda.is_available():  # asked for by name, an absent device is refused
        with pytest.raises(ValueError, match="device='cuda' needs CUDA"):
            load(tmp_path / "gpu.skdim", device="cuda")
    assert loaded.precision_ == "float16"
    np.testing.assert_allclose(loaded.transform(X), expected, rtol=1e-3, atol=1e-4)

    # The same through pickle: transform resolves the precision on the net's device.
    model.net_.runtime = dataclasses.replace(model.net_.runtime, precision="float16")
    unpickled = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(unpickled.transform(X), expected)


@pytest.mark.slow
def test_compile_fits_pickles_and_saves(vectors, tmp_path):
    """Compiling on a CPU takes minutes (and a C++ compiler); small vectors keep it short."""
    compiled = small_dim(max_epochs=2, compile=True).fit(vectors)
    eager = small_dim(max_epochs=2, compile=False).fit(vectors)
    module = compiled.net_.module_
    assert not any("_orig_mod" in key for key in module.state_dict())  # compiled in place
    assert module._compiled_call_impl is None  # for training only
    np.testing.assert_allclose(
        compiled.history_["train_loss"], eager.history_["train_loss"], rtol=1e-3
    )
    Z = compiled.transform(vectors)
    assert _correlation(Z, eager.transform(vectors)) > 0.99

    buffer = io.BytesIO()
    joblib.dump(compiled, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).transform(vectors), Z)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(compiled)).transform(vectors), Z)
    sk_dim.save(compiled, tmp_path / "compiled.skdim")
    np.testing.assert_array_equal(load(tmp_path / "compiled.skdim").transform(vectors), Z)


@pytest.mark.slow
def test_compile_cmc_compiles_the_encoders_only(vectors):
    """The contrast returns Python floats: compiled, it would recompile every batch."""
    model = small_cmc(max_epochs=2, compile=True)
    targets = []
    real_compile = torch.nn.Module.compile

    def spy(module, *args, **kwargs):
        targets.append(module)
        real_compile(module, *args, **kwargs)

    with mock.patch.object(torch.nn.Module, "compile", spy):
        compiled = model.fit(vectors)
    assert targets == list(compiled.net_.module_.encoders)
    eager = small_cmc(max_epochs=2).fit(vectors)
    np.testing.assert_allclose(
        compiled.history_["train_loss"], eager.history_["train_loss"], rtol=1e-3
    )
    Z = compiled.transform(vectors)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(compiled)).transform(vectors), Z)


@pytest.mark.gpu
@pytest.mark.parametrize("make", [DeepInfoMaxTransformer, CMCTransformer])
def test_auto_on_cuda_is_bfloat16_and_channels_last(make, digits):
    params = {"max_epochs": 1, "batch_size": 64, "device": "cuda", "random_state": 0}
    if make is CMCTransformer:
        params["n_negatives"] = 64
    model = make(**params).fit(digits[:256])
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    assert (model.precision_, model.channels_last_) == (expected, True)
    assert model.transform(digits[:8]).dtype == np.float32


@pytest.mark.gpu
def test_float16_on_cuda_uses_a_grad_scaler(digits):
    model = DeepInfoMaxTransformer(
        max_epochs=2, batch_size=64, device="cuda", precision="float16", random_state=0
    ).fit(digits[:256])
    assert model.precision_ == "float16"
    assert model.net_.grad_scaler_ is not None
    assert np.isfinite(model.history_.to_numpy()).all()
    assert np.isfinite(model.transform(digits[:8])).all()
