"""Divergence, interruption, determinism, memory-mapped input and small reprs."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from sk_dim import DeepInfoMaxTransformer
from sk_dim._input import as_tensor
from sk_dim.cmc import CMCTransformer
from sk_dim.training import TrainingDiverged

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")

FAST = dict(embedding_dim=8, max_epochs=3, batch_size=16, random_state=0)
ESTIMATORS = {"dim": DeepInfoMaxTransformer, "cmc": CMCTransformer}
BATCHES_PER_EPOCH = 4  # 64 samples in batches of 16


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:64]


class TinyEncoder(nn.Module):
    """A user's encoder: returns (local map, y); counts its training calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 64, 5)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            self.on_training_call()
        local = torch.relu(self.conv(x))
        return local, self.head(local.flatten(1))

    def on_training_call(self):
        pass


class NaNEncoder(TinyEncoder):
    def forward(self, x):
        local, y = super().forward(x)
        return local, y * float("nan")


class BlowsUpInEpoch2(TinyEncoder):
    """Finite in epoch 1; its weights become infinite in the first step of epoch 2."""

    def on_training_call(self):
        if self.calls == BATCHES_PER_EPOCH + 1:
            with torch.no_grad():
                self.head.weight.fill_(float("inf"))


class InterruptsInEpoch2(TinyEncoder):
    def on_training_call(self):
        if self.calls == BATCHES_PER_EPOCH + 2:
            raise KeyboardInterrupt


class CtrlCInEpoch2(TinyEncoder):
    def on_training_call(self):
        if self.calls == BATCHES_PER_EPOCH + 2:
            os.kill(os.getpid(), signal.SIGINT)


def _twin(cls):
    """An encoder of class cls with the weights of a fresh seeded TinyEncoder."""
    torch.manual_seed(0)
    base = TinyEncoder()
    twin = cls()
    twin.load_state_dict(base.state_dict())
    return twin


# -- divergence -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ESTIMATORS)
def test_divergence_names_the_epoch_and_term_and_leaves_unfitted(digits, name):
    est = ESTIMATORS[name](encoder=NaNEncoder(), **FAST)
    with pytest.raises(TrainingDiverged, match="epoch 1: the '.*' term became nan") as info:
        est.fit(digits)
    assert info.value.epoch == 1 and isinstance(info.value, FloatingPointError)
    assert not hasattr(est, "net_")


def test_huge_learning_rate_diverges(digits):
    est = DeepInfoMaxTransformer(**{**FAST, "lr": 1e8})
    with pytest.raises(TrainingDiverged, match=r"epoch 1: .*Lower lr"):
        est.fit(digits)
    assert not hasattr(est, "net_")
    # keep_last has no finite epoch to fall back on: it raises too.
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        DeepInfoMaxTransformer(**{**FAST, "lr": 1e8}, on_divergence="keep_last").fit(digits)


def test_keep_last_restores_the_last_finite_epoch(digits):
    with pytest.raises(TrainingDiverged, match="epoch 2: the .* became nan"):
        DeepInfoMaxTransformer(encoder=_twin(BlowsUpInEpoch2), **FAST).fit(digits)

    with pytest.warns(UserWarning, match="epoch 2.*keeping the weights from the end of epoch 1"):
        kept = DeepInfoMaxTransformer(
            encoder=_twin(BlowsUpInEpoch2), on_divergence="keep_last", **FAST
        ).fit(digits)
    assert list(kept.history_.index) == [1]
    assert not hasattr(kept.net_, "last_finite_state_")
    one_epoch = DeepInfoMaxTransformer(encoder=_twin(TinyEncoder), **{**FAST, "max_epochs": 1})
    np.testing.assert_array_equal(kept.transform(digits), one_epoch.fit(digits).transform(digits))


# -- interruption ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ESTIMATORS)
def test_keyboard_interrupt_leaves_a_usable_transformer(digits, name):
    est = ESTIMATORS[name](encoder=InterruptsInEpoch2(), **FAST)
    with pytest.warns(UserWarning, match="interrupted .*during epoch 2"):
        est.fit(digits)
    assert list(est.history_.index) == [1]
    Z = est.transform(digits)
    assert len(Z) == 64 and np.isfinite(Z).all()
    assert est.net_.interrupted_ == 2


def test_ctrl_c_stops_at_the_end_of_the_batch(digits, monkeypatch):
    # Test runners may ignore SIGINT in workers: restore Python's default here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        est = DeepInfoMaxTransformer(encoder=CtrlCInEpoch2(), **FAST)
        with pytest.warns(UserWarning, match="interrupted .*during epoch 2"):
            est.fit(digits)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    # The batch that saw Ctrl-C finished (its step ran), and no other began.
    encoder = est.net_.module_.encoder[1]
    assert encoder.calls == BATCHES_PER_EPOCH + 2
    assert np.isfinite(est.transform(digits)).all()


# -- determinism ----------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import hashlib, torch
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    from sk_dim import DeepInfoMaxTransformer
    from sk_dim.cmc import CMCTransformer
    X = load_digits().data[:64]
    for cls in (DeepInfoMaxTransformer, CMCTransformer):
        Z = cls(embedding_dim=8, max_epochs=2, batch_size=16, random_state=0).fit_transform(X)
        print(hashlib.sha256(Z.tobytes()).hexdigest())
    """
)


def test_same_seed_same_embeddings_across_fits_and_processes(digits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess: reductions depend on threads
    try:
        hashes = []
        for cls in ESTIMATORS.values():
            params = dict(embedding_dim=8, max_epochs=2, batch_size=16, random_state=0)
            a = cls(**params).fit_transform(digits)
            b = cls(**params).fit_transform(digits)
            np.testing.assert_array_equal(a, b)
            hashes.append(hashlib.sha256(a.tobytes()).hexdigest())
    finally:
        torch.set_num_threads(threads)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert out == hashes


# -- memory ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_memory_mapped_input(digits, tmp_path, dtype):
    X = digits.astype(dtype)
    joblib.dump(X, tmp_path / "X.joblib")
    X_mmap = joblib.load(tmp_path / "X.joblib", mmap_mode="r")
    assert isinstance(X_mmap, np.memmap) and not X_mmap.flags.writeable
    params = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)
    in_memory = DeepInfoMaxTransformer(**params).fit(X)
    mapped = DeepInfoMaxTransformer(**params).fit(X_mmap)
    np.testing.assert_array_equal(mapped.transform(X_mmap), in_memory.transform(X))
    raw = np.memmap(tmp_path / "X.dat", dtype=dtype, mode="w+", shape=X.shape)
    raw[:] = X
    np.testing.assert_array_equal(mapped.transform(raw), in_memory.transform(X))


def test_float32_input_is_not_copied():
    X = np.zeros((10, 64), dtype=np.float32)
    assert as_tensor(X, (1, 8, 8)).data_ptr() == X.ctypes.data
    X64 = X.astype(np.float64)  # float64 costs exactly one float32 copy
    assert as_tensor(X64, (1, 8, 8)).dtype == torch.float32


# -- reprs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fitted_reprs_are_small_and_fast(digits, name):
    est = ESTIMATORS[name](**{**FAST, "max_epochs": 1}).fit(digits)
    start = time.perf_counter()
    text, html = repr(est), est._repr_html_()
    assert time.perf_counter() - start < 2.0
    assert len(text) < 300 and "tensor" not in text
    assert len(html) < 100_000 and "tensor(" not in html
    assert not any(isinstance(v, torch.Tensor) for v in est.get_params().values())


# -- all-or-nothing fits ------------------------------------------------------------------


def test_a_refit_that_fails_leaves_the_fitted_transformer_as_it_was(digits):
    est = DeepInfoMaxTransformer(**FAST).fit(digits)
    before = est.transform(digits)
    other = np.random.default_rng(0).random((64, 100))
    with pytest.raises(TrainingDiverged):
        est.set_params(lr=1e8).fit(other)
    # Not the new data's description next to the old network: exactly as before.
    assert est.n_features_in_ == 64 and est.input_shape_ == (1, 8, 8)
    np.testing.assert_array_equal(est.transform(digits), before)
    with pytest.raises(TrainingDiverged):  # same shape: the old model is kept, not half-trained
        est.fit(digits)
    np.testing.assert_array_equal(est.transform(digits), before)


def test_a_first_fit_that_fails_leaves_the_transformer_unfitted(digits):
    est = DeepInfoMaxTransformer(**{**FAST, "lr": 1e8})
    with pytest.raises(TrainingDiverged):
        est.fit(digits)
    assert not any(key.endswith("_") for key in vars(est))


# -- output-shaping parameters set after fit ---------------------------------------------


@pytest.mark.parametrize(
    "name, change",
    [("dim", {"layer": "y"}), ("dim", {"pool_size": 2}), ("cmc", {"view": 0})],
)
def test_feature_names_follow_parameters_set_after_fit(digits, name, change):
    est = ESTIMATORS[name](**{**FAST, "max_epochs": 1}).fit(digits)
    est.set_params(**change)
    width = est.transform(digits[:3]).shape[1]
    assert len(est.get_feature_names_out()) == width
    frame = est.set_output(transform="pandas").transform(digits[:3])
    assert frame.shape == (3, width)


@pytest.mark.parametrize("name, layer", [("dim", "bogus"), ("cmc", "y")])
def test_unknown_layer_after_fit_is_refused(digits, name, layer):
    est = ESTIMATORS[name](**{**FAST, "max_epochs": 1}).fit(digits)
    est.set_params(layer=layer)
    with pytest.raises(ValueError, match="layer"):
        est.transform(digits)


# -- fits in threads ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fits_in_threads_equal_sequential_fits(digits, name):
    from concurrent.futures import ThreadPoolExecutor

    params = {**FAST, "max_epochs": 2, "n_threads": 1}
    sequential = [ESTIMATORS[name](**params).fit(digits).transform(digits) for _ in range(2)]
    torch.manual_seed(123)
    expected_state = torch.get_rng_state()
    with ThreadPoolExecutor(2) as pool:
        fits = list(pool.map(lambda _: ESTIMATORS[name](**params).fit(digits), range(2)))
    for est, reference in zip(fits, sequential, strict=True):
        np.testing.assert_array_equal(est.transform(digits), reference)
    assert torch.equal(torch.get_rng_state(), expected_state)  # the caller's RNG is untouched


# -- values float32 cannot hold ----------------------------------------------------------


def test_values_beyond_float32_are_refused(digits):
    huge = digits.astype(np.float64)
    huge[3, 5] = 1e39
    with pytest.raises(ValueError, match="float32"):
        DeepInfoMaxTransformer(**FAST).fit(huge)
    est = DeepInfoMaxTransformer(**{**FAST, "max_epochs": 1}).fit(digits)
    with pytest.raises(ValueError, match="float32"):
        est.transform(huge)


# -- channels-last images ----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(10, 32, 32, 3), (10, 16, 16, 4), (10, 28, 28, 1)])
def test_channels_last_images_are_recognised(shape):
    X = np.zeros(shape, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"channels-last.*transpose\(0, 3, 1, 2\)"):
        DeepInfoMaxTransformer(**FAST).fit(X)


# -- divergence of normalised objectives ---------------------------------------------------


def test_cmc_reports_divergence_when_weights_explode(digits):
    est = CMCTransformer(**{**FAST, "lr": 1e6, "n_negatives": 16})
    with pytest.raises(TrainingDiverged, match="weights"):
        est.fit(digits)


def test_cmc_caps_n_negatives_quietly(digits):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = CMCTransformer(**{**FAST, "max_epochs": 1}).fit(digits)
    assert est.n_negatives_ == len(digits) - 1


# -- memory ------------------------------------------------------------------------------


def test_transform_does_not_copy_the_input(digits):
    """float64 rows are converted one batch at a time: numpy memory is the output only."""
    import tracemalloc

    est = DeepInfoMaxTransformer(**{**FAST, "max_epochs": 1, "layer": "y"}).fit(digits)
    X = np.tile(digits.astype(np.float64), (300, 1))  # 19,200 rows, 9.8 MB
    tracemalloc.start()
    Z = est.transform(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < Z.nbytes + 0.1 * X.nbytes / 2  # a float32 copy of X would be X.nbytes / 2


def test_scaling_statistics_are_computed_in_chunks():
    import tracemalloc

    X = np.random.default_rng(0).integers(0, 256, (400_000, 64), dtype=np.uint8)  # 25.6 MB
    est = DeepInfoMaxTransformer()
    est.input_shape_ = (1, 8, 8)
    tracemalloc.start()
    mean, std = est._scaling(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < X.nbytes  # a float64 copy would be 8x
    np.testing.assert_allclose(mean.item(), X.mean(), rtol=1e-12)
    np.testing.assert_allclose(std.item(), X.std(dtype=np.float64), rtol=1e-9)


def test_constant_columns_are_centred_not_scaled():
    # std 0 (or rounding noise far below the data's magnitude) must not be divided by.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3)).astype(np.float32)
    X[:, 1] = 1e4
    est = DeepInfoMaxTransformer(image_shape=None, max_epochs=1, random_state=0)
    est.input_shape_ = (3,)
    mean, std = est._scaling(X, per_feature=True)
    assert std[0, 1].item() == 1.0 and mean[0, 1].item() == 1e4
    assert 0.9 < std[0, 0].item() < 1.1 and 0.9 < std[0, 2].item() < 1.1
    assert np.isfinite(est.fit_transform(X)).all()


def test_fit_and_transform_read_a_memmap_in_batches(digits, tmp_path):
    from sk_dim.training import FileRows

    X = np.memmap(tmp_path / "X.u8", dtype=np.uint8, mode="w+", shape=(len(digits), 64))
    X[:] = digits.astype(np.uint8)
    X.flush()
    X = np.memmap(tmp_path / "X.u8", dtype=np.uint8, mode="r", shape=(len(digits), 64))
    assert FileRows.of(X) is not None  # read from the file, not through the mapping
    est = DeepInfoMaxTransformer(**{**FAST, "max_epochs": 1}).fit(X)
    reference = DeepInfoMaxTransformer(**{**FAST, "max_epochs": 1}).fit(np.array(X))
    np.testing.assert_array_equal(est.transform(X), reference.transform(np.array(X)))
