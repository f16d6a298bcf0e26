"""Fixtures of the training engine's tests."""

import pytest
import torch
from skorch.callbacks import Callback
from torch import nn

from sk_dim import training
from sk_dim._runtime import Runtime
from sk_dim.modules.base import SelfSupervisedModule


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


def _scripted_fit(valid_losses, *, n_iter_no_change, tol, verbose=0):
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


@pytest.fixture
def scripted_fit():
    """``scripted_fit(valid_losses, *, n_iter_no_change, tol)``: (net, weights per epoch)."""
    return _scripted_fit
