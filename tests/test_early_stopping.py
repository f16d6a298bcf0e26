"""Early stopping on the held-out objective, and the batches an epoch takes.

The rule is scikit-learn's MLPs': an improvement beats the lowest held-out
loss so far by more than ``tol``; training stops after ``n_iter_no_change``
epochs without one and ends with the weights of the epoch with the lowest
held-out loss.
"""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback
from torch import nn

import sk_dim
from sk_dim import training
from sk_dim._runtime import Runtime
from sk_dim.losses import mi_bound
from sk_dim.modules.base import SelfSupervisedModule
from sk_dim.modules.encoders import unpack
from sk_dim.views import ImageAugment

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(embedding_dim=8, batch_size=32, device="cpu", precision="float32", random_state=0)
STOPPING = dict(early_stopping=True, validation_fraction=0.25)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:160].astype(np.float32)


# -- the callback, on a module whose held-out losses are scripted ------------------------


class Scripted(SelfSupervisedModule):
    """One weight trained towards the data's mean; held-out losses read from a script.

    ``validation_terms`` returns the next scripted loss (one held-out batch an
    epoch) plus a draw from the generator it is given.
    """

    def __init__(self, valid_losses):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.valid_losses = list(valid_losses)
        self.epoch = 0

    def forward(self, x, index):
        return {"loss": ((x.mean() - self.w) ** 2)}

    def validation_terms(self, x, index, generator):
        loss = torch.tensor(self.valid_losses[self.epoch])
        self.epoch += 1
        return {"loss": loss, "draw": torch.rand((), generator=generator)}


class RecordWeights(Callback):
    def initialize(self):
        self.weights = []
        return self

    def on_epoch_end(self, net, **kwargs):
        self.weights.append(net.module_.w.detach().clone())


def scripted_fit(valid_losses, *, n_iter_no_change, tol, verbose=0):
    record = RecordWeights()
    net = training.build_net(
        Scripted(valid_losses),
        Runtime("cpu", "float32", False),
        lr=0.1,
        max_epochs=len(valid_losses),
        batch_size=8,
        verbose=verbose,
        seed=0,
        callbacks=[("record", record)],
        validation_data=torch.randn(4, 3),
        n_iter_no_change=n_iter_no_change,
        tol=tol,
    )
    net.fit(torch.randn(8, 3) + 1)
    return net, record.weights


def test_the_epoch_restored_is_the_lowest_even_below_tol():
    # Epoch 4 beats epoch 2 by less than tol: no improvement for the stopping
    # rule (3 epochs without one stop training after epoch 5), but the lowest.
    net, weights = scripted_fit([3.0, 1.0, 2.0, 0.95, 5.0, 6.0, 7.0], n_iter_no_change=3, tol=0.1)
    assert len(net.history) == 5
    assert net.history[:, "valid_loss_best"] == [True, True, False, True, False]
    assert net.restored_epoch() == 4
    assert torch.equal(net.module_.w.detach(), weights[3])
    assert not torch.equal(weights[3], weights[4])  # the last epoch's weights were replaced


def test_an_improvement_resets_the_count():
    net, _ = scripted_fit([3.0, 2.5, 2.45, 1.0, 0.99, 0.98, 0.97], n_iter_no_change=2, tol=0.1)
    # 2: improvement; 3: none; 4: improvement; 5, 6: none -> stop after 6.
    assert len(net.history) == 6 and net.restored_epoch() == 6


def test_the_verbose_table_shows_every_epoch(capsys):
    net, _ = scripted_fit(
        [3.0, 1.0, 2.0, 0.95, 5.0, 6.0, 7.0], n_iter_no_change=3, tol=0.1, verbose=1
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [i for i, line in enumerate(lines) if line.strip()[:1].isdigit()]
    assert [lines[i].split()[0] for i in rows] == ["1", "2", "3", "4", "5"]
    # The messages follow the table.
    restoring = [i for i, line in enumerate(lines) if "Restoring the weights of epoch 4" in line]
    assert len(restoring) == 1 and restoring[0] > rows[-1]


def test_held_out_draws_are_the_same_every_epoch():
    net, _ = scripted_fit([3.0, 2.0, 1.0], n_iter_no_change=5, tol=0.0)
    draws = net.history[:, "valid_draw"]
    expected = torch.rand((), generator=torch.Generator().manual_seed(training.validation_seed(0)))
    assert draws == [expected.item()] * 3
    # ... and not the training epochs' stream.
    assert training.validation_seed(0) not in {training.epoch_seed(0, e) for e in range(10)}


# -- Deep InfoMax's held-out objective -----------------------------------------------------


def test_dim_valid_loss_is_the_mi_objective_without_the_prior(digits):
    est = sk_dim.DeepInfoMaxTransformer(
        **FAST, alpha=0.5, beta=1.0, gamma=0.5, max_epochs=2, **STOPPING
    ).fit(digits)
    history = est.history_
    assert "valid_prior" not in history and "prior" in history
    expected = -(0.5 * history["valid_global_mi"] + 1.0 * history["valid_local_mi"])
    np.testing.assert_allclose(history["valid_loss"], expected, rtol=1e-5)


def small_dim(augment):
    torch.manual_seed(0)
    est = sk_dim.DeepInfoMaxTransformer(embedding_dim=8, augment=augment)
    return est.build_module(load_digits().data[:64].reshape(-1, 1, 8, 8).astype(np.float32))


def test_dim_validation_terms_match_forward_less_the_prior_term():
    module = small_dim(augment=False).eval()
    x = torch.from_numpy(load_digits().data[:32].astype(np.float32)).view(32, 1, 8, 8)
    with torch.no_grad():
        terms = module(x)
        held_out = module.validation_terms(x, torch.arange(32), torch.Generator())
    assert set(held_out) == {"loss", "global_mi", "local_mi"}
    torch.testing.assert_close(held_out["loss"], terms["loss"] - module.gamma * terms["prior"])


def test_dim_augmented_validation_is_the_cross_view_objective_with_fixed_draws():
    module = small_dim(augment=True).eval()
    x = torch.from_numpy(load_digits().data[:32].astype(np.float32)).view(32, 1, 8, 8)

    def held_out(seed):
        torch.manual_seed(seed + 100)  # the global generator must not matter
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return module.validation_terms(x, torch.arange(32), generator)

    first, again, other = held_out(0), held_out(0), held_out(1)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert not torch.equal(first["loss"], other["loss"])

    # By hand: two copies from the generator, each y against the other copy's map.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        copies = [module.augment(x, generator), module.augment(x, generator)]
        (m1, y1), (m2, y2) = (
            (out.local, out.y) for out in map(unpack, map(module.encoder, copies))
        )

        def mi(critic):
            bounds = [mi_bound(critic(m2, y1), "infonce"), mi_bound(critic(m1, y2), "infonce")]
            return (bounds[0] + bounds[1]) / 2

        loss = -(module.alpha * mi(module.global_critic) + module.beta * mi(module.local_critic))
    torch.testing.assert_close(first["loss"], loss, rtol=1e-5, atol=1e-5)


def test_image_augment_draws_only_from_its_generator():
    x = torch.rand(6, 3, 8, 8)
    augment = ImageAugment()
    a = augment(x, torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    b = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# -- the estimators' attributes ------------------------------------------------------------


def test_dim_keeps_the_argmin_of_validation_scores(digits):
    params = dict(**FAST, n_iter_no_change=2, tol=10.0, **STOPPING)
    est = sk_dim.DeepInfoMaxTransformer(max_epochs=6, **params).fit(digits)
    scores = est.validation_scores_
    # tol=10: no improvement after the first epoch, so 1 + 2 epochs.
    assert est.n_iter_ == 3 and len(scores) == 3
    best = int(np.argmin(scores)) + 1
    assert best > 1  # the held-out loss went down: the thresholded "best" was epoch 1
    assert est.best_loss_ == min(scores)
    assert est.net_.restored_epoch() == best
    # The weights of epoch `best`: a fit of exactly that many epochs.
    shorter = sk_dim.DeepInfoMaxTransformer(max_epochs=best, **params).fit(digits)
    np.testing.assert_array_equal(est.transform(digits), shorter.transform(digits))


def test_without_early_stopping_there_is_no_held_out_loss(digits):
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=1).fit(digits)
    assert est.best_loss_ is None and est.validation_scores_ is None
    # A warm fit without early stopping after one with it: the weights are no
    # longer an early-stopped epoch's.
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=1, warm_start=True, **STOPPING)
    est.fit(digits)
    assert est.best_loss_ == est.validation_scores_[0]
    est.set_params(early_stopping=False).fit(digits)
    assert est.best_loss_ is None
    assert len(est.validation_scores_) == 2 and math.isnan(est.validation_scores_[1])


def test_best_loss_and_validation_scores_survive_save_and_pickle(digits, tmp_path):
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=2, gamma=0.0, **STOPPING).fit(digits)
    sk_dim.save(est, tmp_path / "dim.skdim")
    for copy in (sk_dim.load(tmp_path / "dim.skdim"), pickle.loads(pickle.dumps(est))):
        assert copy.best_loss_ == est.best_loss_
        assert copy.validation_scores_ == est.validation_scores_
        assert copy.history_["valid_loss_best"].tolist() == est.history_["valid_loss_best"].tolist()


# -- the batches of an epoch ---------------------------------------------------------------


def batch_sizes(n, batch_size, **options):
    batches = training.DeviceBatches(
        torch.arange(n)[:, None], batch_size=batch_size, device="cpu", **options
    )
    sizes = [len(index) for _, index in batches]
    assert len(batches) == len(sizes)
    return sizes


def test_training_skips_the_last_incomplete_batch():
    assert batch_sizes(100, 32, shuffle=True) == [32, 32, 32]
    assert batch_sizes(96, 32, shuffle=True) == [32, 32, 32]
    assert batch_sizes(20, 32, shuffle=True) == [20]  # no full batch: the rows as one
    assert batch_sizes(1, 32, shuffle=True) == []
    # Held-out scoring keeps every row; a single last row joins the batch before.
    assert batch_sizes(100, 32, shuffle=False, last_batch="merge") == [32, 32, 32, 4]
    assert batch_sizes(97, 32, shuffle=False, last_batch="merge") == [32, 32, 33]
    # transform keeps every row as it comes.
    assert batch_sizes(97, 32, shuffle=False) == [32, 32, 32, 1]


def test_an_epoch_on_100_rows_takes_3_steps_of_32(digits):
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=1).fit(digits[:100])
    assert est.history_["train_batch_count"].tolist() == [3]
    assert est.net_.optimizer_.state_dict()["state"][0]["step"].item() == 3
    assert est.transform(digits[:100]).shape[0] == 100


def test_early_stopping_under_accelerate_matches_plain_and_pickles(digits, capsys):
    pytest.importorskip("accelerate")
    params = dict(FAST, max_epochs=4, n_iter_no_change=1, tol=10.0, verbose=1, **STOPPING)
    plain = sk_dim.DeepInfoMaxTransformer(**params).fit(digits)
    params.pop("device")
    accelerated = sk_dim.DeepInfoMaxTransformer(accelerate={"cpu": True}, **params).fit(digits)
    assert accelerated.validation_scores_ == plain.validation_scores_
    np.testing.assert_allclose(accelerated.transform(digits), plain.transform(digits), atol=1e-6)
    assert capsys.readouterr().out.count("Restoring the weights of epoch") == 2
    # The callback the fitted net keeps holds no accelerator and no weights.
    restored = pickle.loads(pickle.dumps(accelerated))
    assert restored.best_loss_ == plain.best_loss_
