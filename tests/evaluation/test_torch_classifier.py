"""sk_dim.evaluation.torch_classifier: the training both neural classifiers share."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

from sk_dim.evaluation.torch_classifier import TorchClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LinearClassifier(TorchClassifier):
    """The smallest subclass: a linear layer over float inputs."""

    def __init__(self, max_epochs=20, batch_size=16, lr=0.05, weight_decay=0.0, random_state=0):
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _as_data(self, X):
        return torch.as_tensor(np.asarray(X), dtype=torch.float32)

    def fit(self, X, y):
        target = self._encode_labels(y)
        torch.manual_seed(0)
        self.module_ = nn.Linear(np.asarray(X).shape[1], len(self.classes_))
        self.device_ = "cpu"
        self._train(self._as_data(X), target, seed=self.random_state)
        return self


def blobs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["left", "right"])[np.arange(n) % 2]
    X = rng.normal(size=(n, 2)) + np.where(y == "left", -2.0, 2.0)[:, None]
    return X, y


def test_fit_learns_separable_classes_and_records_the_loss_curve():
    X, y = blobs()
    clf = LinearClassifier().fit(X, y)
    assert clf.classes_.tolist() == ["left", "right"]
    assert len(clf.loss_curve_) == 20 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.95
    assert clf.predict(X).dtype == y.dtype


def test_predict_proba_is_the_softmax_of_the_logits():
    X, y = blobs()
    clf = LinearClassifier(max_epochs=2).fit(X, y)
    proba = clf.predict_proba(X)
    with torch.no_grad():
        logits = clf.module_(torch.as_tensor(X, dtype=torch.float32)).double().numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    assert not clf.module_.training  # prediction runs in eval mode


def test_logits_are_computed_in_chunks_of_at_least_256_rows():
    X, y = blobs(n=600)
    clf = LinearClassifier(max_epochs=1).fit(X, y)
    calls = []
    clf.module_.register_forward_hook(lambda module, inputs, out: calls.append(len(inputs[0])))
    clf.predict(X)
    assert calls == [256, 256, 88]


def test_same_seed_same_weights():
    X, y = blobs()
    a, b = LinearClassifier().fit(X, y), LinearClassifier().fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    assert torch.equal(a.module_.weight, b.module_.weight)
    c = LinearClassifier(random_state=1).fit(X, y)
    assert c.loss_curve_ != a.loss_curve_  # another order of the batches


def test_one_class_and_unfitted_are_refused():
    X, _ = blobs()
    with pytest.raises(ValueError, match="LinearClassifier needs at least 2 classes, got 1"):
        LinearClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        LinearClassifier().fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(NotFittedError):
        LinearClassifier().predict(X)
