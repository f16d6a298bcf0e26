"""sk_dim.training.net: the skorch net: its held-out pass, seeds and pickles."""

import pickle

import pytest
import torch

from sk_dim import training
from sk_dim.training.net import TRAINING_STATE, HeldOut

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_held_out_draws_are_the_same_every_epoch(scripted_fit):
    net, _ = scripted_fit([3.0, 2.0, 1.0], n_iter_no_change=5, tol=0.0)
    draws = net.history[:, "valid_draw"]
    expected = torch.rand((), generator=torch.Generator().manual_seed(training.validation_seed(0)))
    assert draws == [expected.item()] * 3
    # ... and not the training epochs' stream.
    assert training.validation_seed(0) not in {training.epoch_seed(0, e) for e in range(10)}


# -- seeds, held-out data and pickles --------------------------------------------------------


def test_epoch_seeds_depend_on_the_seed_and_the_epoch_only():
    seeds = {training.epoch_seed(s, e) for s in range(3) for e in range(5)}
    assert len(seeds) == 15  # every (seed, epoch) its own stream
    assert training.epoch_seed(7, 2) == training.epoch_seed(7, 2)
    assert training.validation_seed(7) == training.validation_seed(7)
    assert training.validation_seed(7) != training.validation_seed(8)
    assert all(0 <= s < 2**32 for s in seeds)  # valid for torch.manual_seed


def test_held_out_split_returns_the_training_data_and_the_fixed_held_out_rows():
    held_out = torch.randn(3, 2)
    split = HeldOut(held_out)
    dataset = object()
    train, valid = split(dataset, y=None)
    assert train is dataset and valid is held_out


def test_a_lean_copy_pickles_without_the_optimizers_and_the_module_once(scripted_fit):
    net, _ = scripted_fit([3.0, 2.0], n_iter_no_change=5, tol=0.0)
    full = pickle.loads(pickle.dumps(net))
    assert hasattr(full, "optimizer_")
    assert full.module is full.module_  # stored once, the same object again
    lean = training.without_training_state(net)
    assert lean is not net and lean.module_ is net.module_
    restored = pickle.loads(pickle.dumps(lean))
    assert not any(hasattr(restored, key) for key in TRAINING_STATE)
    assert torch.equal(restored.module_.w, net.module_.w)
    assert hasattr(net, "optimizer_")  # the live net keeps its optimizer
    net.drop_optimizers()
    assert not hasattr(net, "optimizer_")
