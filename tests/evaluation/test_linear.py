"""linear_probe solves LinearSVC's problem exactly, fast, and without warnings.

The probe replaced liblinear (74 s and a ConvergenceWarning on 1,000 x 3,072
pixels) by a finite Newton solver of the same objective; these tests hold it to
liblinear's optimum where liblinear converges, and to the plain scikit-learn
pipeline's accuracy. ``benchmarks/probe_speed.py`` compares the two at full size.
"""

import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sk_dim.evaluation import (
    linear_probe,
    probe_features,
)
from sk_dim.evaluation.linear import _squared_hinge_svm


def upsampled_digits(size=32, noise=4.0, seed=0):
    """Digits scaled up to size x size, in three tinted channels, with pixel noise.

    Structured (a linear SVM reaches about 0.8) and wider than the 1,797 rows:
    3,072 features at size=32, as CIFAR-10's pixels.
    """
    rng = np.random.default_rng(seed)
    digits = load_digits()
    factor = size // 8
    images = np.kron(digits.images, np.ones((factor, factor)))
    rgb = images[:, None] * rng.uniform(0.5, 1.0, (len(images), 3, 1, 1))
    rgb = rgb + noise * rng.standard_normal(rgb.shape)
    return rgb.reshape(len(images), -1), digits.target


def objectives(Z, y, coef, intercept, C):
    """LinearSVC's objective of each one-vs-rest classifier."""
    classes = np.unique(y)
    positives = classes[1:] if len(classes) == 2 else classes
    values = []
    for k, positive in enumerate(positives):
        signs = np.where(y == positive, 1.0, -1.0)
        loss = np.maximum(0, 1 - signs * (Z @ coef[:, k] + intercept[k]))
        values.append(0.5 * (coef[:, k] @ coef[:, k] + intercept[k] ** 2) + C * loss @ loss)
    return np.array(values)


@pytest.mark.parametrize("C", [1.0, 0.01])
@pytest.mark.parametrize("binary", [False, True], ids=["10 classes", "2 classes"])
@pytest.mark.parametrize(
    ("n_samples", "size"), [(300, 16), (400, 8)], ids=["kernel form", "weight form"]
)
def test_solver_reaches_liblinears_optimum(n_samples, size, binary, C):
    X, y = upsampled_digits(size)
    Z = StandardScaler().fit_transform(X[:n_samples])
    y = y[:n_samples] % 2 if binary else y[:n_samples]
    classes, coef, intercept = _squared_hinge_svm(Z, y, C=C)
    svm = LinearSVC(C=C, tol=1e-10, max_iter=100_000).fit(Z, y)
    np.testing.assert_array_equal(classes, svm.classes_)
    ours = objectives(Z, y, coef, intercept, C)
    theirs = objectives(Z, y, svm.coef_.T, svm.intercept_, C)
    # Never worse than liblinear's optimum, and the same point.
    assert np.all(ours <= theirs * (1 + 1e-9)), (ours, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    scale = np.abs(svm.coef_).max()
    np.testing.assert_allclose(coef, svm.coef_.T, atol=1e-3 * scale)
    np.testing.assert_allclose(intercept, svm.intercept_, atol=1e-3 * scale)


@pytest.mark.parametrize("C", [1.0, 0.01])
def test_accuracy_equals_the_scikit_learn_pipeline(C):
    X, y = upsampled_digits(16)
    labels = np.array(["even", "odd"])[y % 2]  # labels of any type
    for target in (y, labels):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            accuracy = linear_probe(None, X[:300], target[:300], X[300:], target[300:], C=C)
        pipe = make_pipeline(StandardScaler(), LinearSVC(C=C, tol=1e-8, max_iter=100_000))
        expected = pipe.fit(X[:300], target[:300]).score(X[300:], target[300:])
        assert accuracy == pytest.approx(expected, abs=2 / len(X[300:]))


def test_wide_features_take_seconds_without_convergence_warning():
    X, y = upsampled_digits(32)  # 1,000 x 3,072 for training, as in the issue
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        accuracy = linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:])
    elapsed = time.perf_counter() - start
    assert accuracy > 0.7
    # liblinear took over a minute here; about 2 s on 2 shared cores. A loose bound.
    assert elapsed < 60, elapsed


def test_float32_unscaled_features_and_raw_pixels():
    X, y = load_digits(return_X_y=True)
    Z = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unscaled = linear_probe(None, Z[:1000], y[:1000], Z[1000:], y[1000:], scale=False, C=0.01)
    pipe = LinearSVC(C=0.01, tol=1e-8, max_iter=100_000).fit(X[:1000], y[:1000])
    assert unscaled == pytest.approx(pipe.score(X[1000:], y[1000:]), abs=2 / len(X[1000:]))


def test_solver_warns_when_it_runs_out_of_iterations():
    X, y = upsampled_digits(16)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=1"):
        linear_probe(None, X[:300], y[:300], X[300:], y[300:], max_iter=1)


@pytest.mark.parametrize(
    ("params", "y_train", "message"),
    [
        ({}, np.zeros(40), "at least 2 classes"),
        ({"C": 0}, np.arange(40) % 2, "C must be a positive number"),
        ({"max_iter": 0}, np.arange(40) % 2, "max_iter must be an int"),
        ({}, np.linspace(0, 1, 40), "Unknown label type"),
    ],
)
def test_bad_options(params, y_train, message):
    X = np.random.default_rng(0).standard_normal((40, 3))
    with pytest.raises(ValueError, match=message):
        linear_probe(None, X, y_train, X, np.arange(40) % 2, **params)


@pytest.mark.usefixtures("one_torch_thread")
def test_linear_probe_on_a_transformer_equals_the_probe_on_its_features(digits, fitted):
    X, y = digits
    acc = linear_probe(fitted, X[:300], y[:300], X[300:], y[300:], layer="y", random_state=0)
    Z_train, Z_test = (probe_features(fitted, part, layer="y") for part in (X[:300], X[300:]))
    same = linear_probe(None, Z_train, y[:300], Z_test, y[300:], random_state=0)
    assert acc == same and 0.2 < acc <= 1.0  # 8 features after 2 epochs: above chance


@pytest.mark.usefixtures("one_torch_thread")
def test_linear_probe_on_raw_pixels():
    X, y = load_digits(return_X_y=True)
    assert linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:], random_state=0) > 0.85
    unscaled = linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:], scale=False, C=0.01)
    assert unscaled > 0.8
