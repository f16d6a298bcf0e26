"""Sequences of calls: the estimator's state never disagrees with what it reports.

fit, set_params, warm fit / partial_fit, pickle, save, load and transform in the
orders a careful user tries them (issue 30).
"""

import pickle
import threading

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

import sk_dim
from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.training import TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(
    embedding_dim=8, batch_size=32, max_epochs=1, device="cpu", precision="float32", random_state=0
)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:96].astype(np.float32)


def dim(**params):
    return DeepInfoMaxTransformer(**{**FAST, **params})


def cmc(**params):
    return CMCTransformer(**{**FAST, "n_negatives": 16, **params})


# -- parameters the network is built from -------------------------------------------


@pytest.mark.parametrize(
    "make, name, value",
    [
        (dim, "embedding_dim", 16),
        (dim, "alpha", 0.0),
        (dim, "gamma", 0.0),
        (dim, "mi_estimator", "jsd"),
        (dim, "local_critic", "concat"),
        (dim, "prior", "gaussian"),
        (dim, "image_shape", None),
        (cmc, "embedding_dim", 16),
        (cmc, "temperature", 0.2),
        (cmc, "loss", "softmax"),
        (cmc, "views", "crops"),
    ],
)
def test_a_changed_module_parameter_is_refused_until_set_back(digits, tmp_path, make, name, value):
    est = make(warm_start=True).fit(digits)
    before = est.transform(digits)
    fitted_value = est.get_params()[name]
    est.set_params(**{name: value})
    calls = {
        "continue training": lambda: est.fit(digits),
        "continue training ": lambda: est.partial_fit(digits),
        "transform": lambda: est.transform(digits),
        "save": lambda: sk_dim.save(est, tmp_path / "x.skdim"),
    }
    for action, call in calls.items():
        with pytest.raises(ValueError, match=f"Cannot {action.strip()}: {name}="):
            call()
    assert not (tmp_path / "x.skdim").exists()
    assert est.n_iter_ == 1  # nothing trained

    est.set_params(**{name: fitted_value})
    np.testing.assert_array_equal(est.transform(digits), before)
    est.fit(digits)
    assert est.n_iter_ == 2
    # Fitting anew takes the new value.
    est.set_params(**{name: value}, warm_start=False).fit(digits)
    assert est.n_iter_ == 1 and est.get_params()[name] == value
    sk_dim.save(est, tmp_path / "x.skdim")
    assert sk_dim.load(tmp_path / "x.skdim").get_params()[name] == value


def test_embedding_dim_sets_y_width_after_a_refit_only(digits):
    est = dim(layer="y").fit(digits)
    assert est.transform(digits).shape[1] == 8
    est.set_params(embedding_dim=16)
    with pytest.raises(ValueError, match="embedding_dim=8 at fit, 16 now"):
        est.get_feature_names_out()
    assert est.fit(digits).transform(digits).shape[1] == 16


# -- training parameters take effect at the next fit ---------------------------------


def test_lr_and_weight_decay_take_effect_at_a_warm_fit(digits):
    est = dim(warm_start=True).fit(digits)
    est.set_params(lr=0.05, weight_decay=0.1).fit(digits)
    for optimizer in (est.net_.optimizer_, est.net_.optimizer_discriminator_):
        assert optimizer.param_groups[0]["lr"] == 0.05
        assert optimizer.param_groups[0]["weight_decay"] == 0.1
        # Adam's state carried over: two epochs of steps.
        state = next(iter(optimizer.state.values()))
        assert int(state["step"]) == 2 * 3  # 96 rows, batches of 32


class CountEpochs(Callback):
    def initialize(self):
        self.epochs = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1


def test_callbacks_set_to_none_no_longer_run(digits):
    est = dim(warm_start=True, callbacks=[("count", CountEpochs())]).fit(digits)
    assert "count" in dict(est.net_.callbacks_)
    est.set_params(callbacks=None).fit(digits)
    assert "count" not in dict(est.net_.callbacks_)
    assert est.n_iter_ == 2


def test_early_stopping_turned_on_at_a_warm_fit_stops(digits):
    est = dim(warm_start=True).fit(digits)
    # tol far above any improvement: the first epoch without one stops training.
    est.set_params(early_stopping=True, n_iter_no_change=1, tol=100.0, max_epochs=10)
    est.fit(digits)
    assert "valid_loss" in est.history_
    assert est.n_iter_ < 1 + 10


def test_batch_size_and_max_epochs_take_effect_at_a_warm_fit(digits):
    est = dim(warm_start=True).fit(digits)
    est.set_params(batch_size=48, max_epochs=2).fit(digits)
    assert est.n_iter_ == 3
    assert est.history_["train_batch_count"].tolist() == [3, 2, 2]


def test_precision_set_after_fit_is_what_transform_and_a_reload_use(digits, tmp_path):
    est = dim().fit(digits)
    float32 = est.transform(digits)
    est.set_params(precision="bfloat16")
    bfloat16 = est.transform(digits)
    assert np.abs(bfloat16 - float32).max() > 1e-4  # another arithmetic
    assert est.precision_ == "float32"  # what training used
    sk_dim.save(est, tmp_path / "x.skdim")
    np.testing.assert_array_equal(sk_dim.load(tmp_path / "x.skdim").transform(digits), bfloat16)


def test_a_warm_fit_records_the_precision_it_used(digits):
    est = dim(warm_start=True).fit(digits)
    est.set_params(precision="bfloat16").fit(digits)
    assert est.precision_ == "bfloat16"


# -- weights that give non-finite features --------------------------------------------


class PoisonAtEnd(Callback):
    """Writes NaN into one weight after the last epoch's own finiteness check."""

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == net.max_epochs:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(float("nan"))


def test_fit_notices_weights_a_callback_made_nan(digits):
    est = dim()
    with pytest.raises(TrainingDiverged, match="weights"):
        est.set_params(callbacks=[PoisonAtEnd()]).fit(digits)
    assert not hasattr(est, "net_")  # all or nothing
    kept = dim(max_epochs=2, on_divergence="keep_last", callbacks=[PoisonAtEnd()])
    with pytest.warns(UserWarning, match="keep_last"):
        kept.fit(digits)
    assert np.isfinite(kept.transform(digits)).all()


# -- threads ----------------------------------------------------------------------------


def test_n_threads_is_bounded():
    with pytest.raises(ValueError, match="n_threads"):
        dim(n_threads=10**6).fit(np.zeros((4, 64)))


def test_concurrent_transforms_restore_the_thread_count(digits):
    est = dim(n_threads=2).fit(digits)
    torch.set_num_threads(1)
    errors = []

    def work():
        try:
            for _ in range(10):
                est.transform(digits)
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert torch.get_num_threads() == 1


# -- optimizer state --------------------------------------------------------------------


def test_training_on_without_adam_state_says_so(digits, tmp_path):
    lean = pickle.loads(pickle.dumps(dim().fit(digits)))  # warm_start=False: no Adam state
    with pytest.warns(UserWarning, match="new optimizer state"):
        lean.partial_fit(digits)
    sk_dim.save(lean, tmp_path / "x.skdim")
    loaded = sk_dim.load(tmp_path / "x.skdim").set_params(warm_start=True)
    with pytest.warns(UserWarning, match="new optimizer state"):
        loaded.fit(digits)
    assert loaded.n_iter_ == 3


def test_a_warm_pickle_continues_silently(digits, recwarn):
    warm = pickle.loads(pickle.dumps(dim(warm_start=True).fit(digits)))
    warm.fit(digits)
    assert not [w for w in recwarn if "optimizer" in str(w.message)]


# -- smaller items --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["embedding_dim", "batch_size", "max_epochs", "pool_size"])
def test_bools_are_not_ints(name):
    with pytest.raises(ValueError, match=f"'{name}' parameter .* must be an int"):
        dim(**{name: True}).fit(np.zeros((4, 64)))


class StopAtBatch(Callback):
    """A Ctrl-C in the middle of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch and len(net.history[-1]["batches"]) == 2:
            raise KeyboardInterrupt


def test_history_counts_on_after_an_interrupted_epoch(digits):
    est = dim(max_epochs=3, warm_start=True, callbacks=[StopAtBatch(epoch=3)])
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(digits)
    assert est.history_.index.tolist() == [1, 2]
    est.set_params(callbacks=None, max_epochs=1).fit(digits)
    assert est.history_.index.tolist() == [1, 2, 3]
    assert est.n_iter_ == 3 == len(est.loss_curve_)
