"""Bad input, tried systematically: every case raises a clear error before training.

The estimators' errors must come before any training step (a fixture makes
training itself fail the test) and name the parameter or the data problem;
none may surface as a torch shape error. CMC's own view options are tested
in test_cmc.py.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from sklearn.datasets import load_digits
from torch import nn

from sk_dim import DeepInfoMaxTransformer, losses, training
from sk_dim.cmc import CMCTransformer
from sk_dim.datasets import load_cifar10, load_mnist
from sk_dim.evaluation import (
    MLPProbe,
    linear_probe,
    mine,
    neural_dependency_measure,
    nonlinear_probe,
    probe_features,
)
from sk_dim.mi_estimation import mutual_information

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")

FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)
ESTIMATORS = {"dim": DeepInfoMaxTransformer, "cmc": CMCTransformer}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:60], y[:60]


@pytest.fixture(scope="module")
def fitted(digits):
    return {name: cls(**FAST).fit(digits[0]) for name, cls in ESTIMATORS.items()}


@pytest.fixture
def no_training(monkeypatch):
    """Any training step fails the test: errors must come before training."""

    def fail(*args, **kwargs):
        raise AssertionError("training started before the error")

    monkeypatch.setattr(training.SelfSupervisedNet, "fit_loop", fail)


def _mixed_frame():
    df = pd.DataFrame(np.zeros((10, 64)), columns=[f"px{i}" for i in range(64)])
    df["px3"] = "a"
    return df


BAD_X = {
    "NaN": (np.full((10, 64), np.nan), "NaN"),
    "infinity": (np.full((10, 64), np.inf), "infinity"),
    "no samples": (np.zeros((0, 64)), "0 sample"),
    "no features": (np.zeros((10, 0)), "0 feature"),
    "one sample": (np.zeros((1, 64)), "1 sample"),
    "1-D": (np.zeros(64), "Expected 2D array"),
    "strings": (np.array([["a"] * 64] * 10), "could not convert|dtype"),
    "object column": (_mixed_frame(), "could not convert"),
    "complex": (np.zeros((10, 64), dtype=complex), "[Cc]omplex"),
    "sparse": (sparse.csr_matrix(np.eye(10, 64)), "[Ss]parse"),
    "5-D": (np.zeros((10, 1, 1, 8, 8)), "4-D"),
}


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("case", BAD_X)
def test_bad_training_data(name, case, no_training):
    X, message = BAD_X[case]
    with pytest.raises((ValueError, TypeError), match=message):
        ESTIMATORS[name](**FAST).fit(X)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_one_feature_works(name):
    X = np.random.default_rng(0).standard_normal((40, 1))
    est = ESTIMATORS[name](**FAST).fit(X)
    Z = est.transform(X)
    assert len(Z) == 40 and np.isfinite(Z).all()
    assert est.input_shape_ == (1,)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_batch_size_above_n_samples_is_capped_with_a_warning(name, digits):
    with pytest.warns(UserWarning, match=r"batch_size=64 .*n_samples=20.*batch_size=20"):
        est = ESTIMATORS[name](**{**FAST, "batch_size": 64}).fit(digits[0][:20])
    assert est.net_.batch_size == 20
    assert est.transform(digits[0][:20]).shape[0] == 20


BAD_TRANSFORM = {
    "wrong feature count": (lambda X: X[:, :60], "60 features.*expecting 64"),
    "wrong image shape": (lambda X: np.zeros((3, 1, 4, 16)), "images of shape"),
    "NaN": (lambda X: np.where(X == 0, np.nan, X), "NaN"),
    "infinity": (lambda X: np.where(X == 0, np.inf, X), "infinity"),
    "no samples": (lambda X: X[:0], "0 sample"),
    "strings": (lambda X: X.astype(str).astype(object) + "px", "could not convert"),
    "complex": (lambda X: X.astype(complex), "[Cc]omplex"),
    "sparse": (lambda X: sparse.csr_matrix(X), "[Ss]parse"),
}


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("case", BAD_TRANSFORM)
def test_bad_transform_data(fitted, digits, name, case):
    make, message = BAD_TRANSFORM[case]
    with pytest.raises((ValueError, TypeError), match=message):
        fitted[name].transform(make(digits[0]))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_one_sample_at_transform_works(fitted, digits, name):
    assert fitted[name].transform(digits[0][:1]).shape[0] == 1


COMMON_PARAMS = [
    ({"embedding_dim": 0}, "embedding_dim"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"max_epochs": 2.5}, "max_epochs"),
    ({"batch_size": 1}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"pool_size": 0}, "pool_size"),
    ({"layer": "pixels"}, "layer"),
    ({"encoder": "resnet"}, "encoder"),
    ({"image_shape": (1, 8, 7)}, "image_shape"),
    ({"image_shape": (1, -8, -8)}, "image_shape"),
    ({"image_shape": (1, 8.0, 8)}, "image_shape"),
    ({"image_shape": "square"}, "image_shape"),
    ({"device": "tpu:0"}, "device"),
    ({"device": 0}, "device"),
    ({"random_state": "seed"}, "random_state"),
    ({"verbose": -1}, "verbose"),
    ({"weight_decay": -1e-4}, "weight_decay"),
]
if not torch.cuda.is_available():
    COMMON_PARAMS.append(({"device": "cuda"}, "device='cuda' needs CUDA"))
DIM_PARAMS = [
    ({"alpha": -1.0}, "alpha"),
    ({"gamma": -0.1}, "gamma"),
    ({"alpha": 0.0, "beta": 0.0}, "no MI term"),
    ({"mi_estimator": "mine"}, "mi_estimator"),
    ({"local_critic": "bilinear"}, "local_critic"),
    ({"prior": "laplace"}, "prior"),
    ({"encoder": "dcgan32"}, "32x32"),
    ({"on_divergence": "ignore"}, "on_divergence"),
]
CMC_PARAMS = [
    ({"n_negatives": 0}, "n_negatives"),
    ({"temperature": -1.0}, "temperature"),
    ({"momentum": -0.5}, "momentum"),
    ({"augment": "yes"}, "augment"),
    ({"crop_scale": (0.0, 1.0)}, r"crop_scale must satisfy 0.0 < min <= max <= 1.0"),
    ({"crop_scale": (0.9, 0.5)}, r"crop_scale must satisfy"),
    ({"crop_scale": (0.5,)}, r"crop_scale must be a pair"),
    ({"crop_scale": "wide"}, "crop_scale"),
    ({"view": -1}, "view"),
]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [("dim", p, m) for p, m in COMMON_PARAMS + DIM_PARAMS]
    + [("cmc", p, m) for p, m in COMMON_PARAMS + CMC_PARAMS],
)
def test_bad_parameters(digits, name, params, message, no_training):
    with pytest.raises(ValueError, match=message):
        ESTIMATORS[name](**{**FAST, **params}).fit(digits[0])


class ThreeChannelEncoder(nn.Module):
    """Expects RGB: fails on the grayscale digits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        local = self.conv(x)
        return local, local.mean((2, 3))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_user_encoder_of_the_wrong_shape(digits, name, no_training):
    with pytest.raises(ValueError, match=r"encoder failed on a batch of shape \(2, 1, 8, 8\)"):
        ESTIMATORS[name](encoder=ThreeChannelEncoder(), **FAST).fit(digits[0])


# -- public functions ---------------------------------------------------------------

RNG = np.random.default_rng(0)
XY = RNG.standard_normal((40, 2))
LABELS = np.arange(40) % 2
TINY = dict(max_epochs=1)

FUNCTIONS = {
    "mutual_information": lambda a: mutual_information(a, XY, **TINY),
    "neural_dependency_measure": lambda a: neural_dependency_measure(a, **TINY),
    "mine": lambda a: mine(a, XY, **TINY),
    "linear_probe": lambda a: linear_probe(None, a, LABELS[: a.shape[0]], XY, LABELS),
    "nonlinear_probe": lambda a: nonlinear_probe(None, a, LABELS[: a.shape[0]], XY, LABELS, **TINY),
    "probe_features": lambda a: probe_features(None, a),
    "MLPProbe": lambda a: MLPProbe(**TINY).fit(a, LABELS[: a.shape[0]]),
}
BAD_ARRAYS = {
    "NaN": (np.where(XY > 1, np.nan, XY), "NaN"),
    "infinity": (np.where(XY > 1, np.inf, XY), "infinity"),
    "no samples": (XY[:0], "0 sample|at least"),
    "one sample": (XY[:1], "1 sample|at least|same number"),
    "strings": (np.full(XY.shape, "a"), "could not convert"),
    "complex": (XY.astype(complex), "[Cc]omplex"),
}


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_public_functions_reject_bad_arrays(function, case):
    a, message = BAD_ARRAYS[case]
    if function == "probe_features" and case == "one sample":
        assert probe_features(None, a).shape == (1, 2)  # features of one sample are fine
        return
    with pytest.raises(ValueError, match=message):
        FUNCTIONS[function](a)


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_public_functions_reject_sparse_clearly(function):
    with pytest.raises((TypeError, ValueError), match="[Ss]parse"):
        FUNCTIONS[function](sparse.csr_matrix(XY))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mutual_information(XY, XY, estimator="nwj"), "Unknown estimator"),
        (lambda: mutual_information(XY, XY, lr=-1.0), "lr"),
        (lambda: mutual_information(XY, XY, max_epochs=0), "max_epochs"),
        (lambda: mutual_information(XY, XY, hidden_units=0), "hidden_units"),
        (lambda: mutual_information(XY, XY[:30]), "same number of samples"),
        (lambda: neural_dependency_measure(XY, batch_size=1), "batch_size"),
        (lambda: neural_dependency_measure(XY, n_shuffles=0), "n_shuffles"),
        (lambda: neural_dependency_measure(XY, test_size=1.5), "test_size"),
        (lambda: neural_dependency_measure(XY[:, :1]), "at least 2 columns"),
        (lambda: mine(XY, XY, estimator="dv"), "mine"),
        (lambda: linear_probe(None, XY, LABELS, XY, LABELS, C=-1.0), "C"),
        (lambda: linear_probe(None, XY, LABELS, XY[:, :1], LABELS), "features"),
        (lambda: nonlinear_probe(None, XY, LABELS, XY, LABELS, dropout=1.5), "dropout"),
        (lambda: nonlinear_probe(None, XY, LABELS, XY, LABELS, lr=0), "lr"),
        (lambda: MLPProbe(**TINY).fit(XY, np.zeros(40)), "at least 2 classes"),
        (lambda: MLPProbe(**TINY).fit(XY, np.full(40, np.nan)), "NaN"),
    ],
)
def test_public_functions_reject_bad_options(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# mi bounds take torch scores from the training loop: they check shapes, not
# values (NaN propagates, and training reports it as a divergence).
@pytest.mark.parametrize("estimator", losses.BOUNDS)
@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (torch.zeros(4, 3), r"\(N, N\)"),
        (torch.zeros(1, 1), "at least 2 samples"),
        (torch.zeros(0, 0), "at least 2 samples"),
        (torch.zeros(4), r"\(N, N\)"),
        (torch.zeros(4, 4, 2, 2), r"\(N, N\)"),
    ],
)
def test_mi_bounds_reject_bad_scores(estimator, scores, message):
    with pytest.raises(ValueError, match=message):
        losses.mi_bound(scores, estimator)


def test_mi_bound_unknown_estimator():
    with pytest.raises(ValueError, match="Unknown MI estimator 'mine'"):
        losses.mi_bound(torch.zeros(4, 4), "mine")


@pytest.mark.parametrize("loader", [load_mnist, load_cifar10])
def test_loaders_bad_input(loader, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="subset must be one of"):
        loader(tmp_path, subset="validation")
    with pytest.raises(FileNotFoundError, match="Could not find"):
        loader(tmp_path / "missing")
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(FileNotFoundError, match="Could not find"):
        loader(tmp_path / "a_file")
    # None is the default folder ($SK_DIM_DATA here), searched like any other.
    monkeypatch.setenv("SK_DIM_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="Could not find.*SK_DIM_DATA"):
        loader(None)
