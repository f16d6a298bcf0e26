"""Every trained measure of sk_dim.evaluation and sk_dim.mi_estimation trains through one loop."""

import pytest

from sk_dim import evaluation, mi_estimation
from sk_dim.evaluation import FineTunedClassifier, MLPProbe, mine, neural_dependency_measure

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_trained_measure_uses_the_shared_loop(monkeypatch, digits, fitted):
    """Probes, fine-tuning, NDM and MINE all train through ``train_minibatches``."""
    calls = []
    shared = mi_estimation.train_minibatches

    def spy(module, batch_loss, n_samples, **kwargs):
        calls.append(type(module).__name__)
        return shared(module, batch_loss, n_samples, **kwargs)

    for module in (evaluation.torch_classifier, evaluation.dependency, mi_estimation):
        assert module.train_minibatches is shared
        monkeypatch.setattr(module, "train_minibatches", spy)
    X, y = digits
    Z = fitted.transform(X[:60])
    MLPProbe(max_epochs=1, random_state=0).fit(Z, y[:60])
    FineTunedClassifier(fitted, max_epochs=1, random_state=0).fit(X[:60], y[:60])
    neural_dependency_measure(Z, max_epochs=1, random_state=0)
    mine(X[:60], Z[:, :4], max_epochs=1, random_state=0)
    assert calls == ["Sequential", "Sequential", "Sequential", "ConcatCritic"]
