"""sk_dim.training.engine: building a net, training it (divergence kept or raised), embedding."""

import numpy as np
import pytest
import torch
from torch import nn

from sk_dim import training
from sk_dim._runtime import Runtime
from sk_dim.modules.base import SelfSupervisedModule
from sk_dim.training.callbacks import LowestValidLoss
from sk_dim.training.engine import fused_adam

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = Runtime("cpu", "float32", False)


class Linear(SelfSupervisedModule):
    """y = W x; loss: y's mean square. ``blow_up_at``: the loss becomes NaN from that call on."""

    def __init__(self, blow_up_at=None):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.calls = 0
        self.blow_up_at = blow_up_at

    def forward(self, x, index):
        self.calls += 1
        loss = self.linear(x).pow(2).mean()
        if self.blow_up_at is not None and self.calls >= self.blow_up_at:
            loss = loss * float("nan")
        return {"loss": loss}

    def features(self, x, layer, pool_size):
        return self.linear(x)


def net_of(module, **params):
    return training.build_net(
        module,
        CPU,
        **{"lr": 0.01, "max_epochs": 2, "batch_size": 4, "verbose": 0, "seed": 0} | params,
    )


def test_build_net_sets_adam_the_runtime_and_the_training_options():
    net = net_of(Linear(), weight_decay=0.5, max_epochs=3)
    assert type(net) is training.SelfSupervisedNet
    assert net.optimizer is torch.optim.Adam and net.optimizer__weight_decay == 0.5
    assert (net.lr, net.max_epochs, net.batch_size, net.device) == (0.01, 3, 4, "cpu")
    assert net.runtime is CPU and net.train_split is None
    assert not any(isinstance(cb, LowestValidLoss) for _, cb in net.callbacks)
    net.initialize()
    assert isinstance(net.optimizer_, torch.optim.Adam)
    assert net.optimizer_.param_groups[0]["weight_decay"] == 0.5


def test_early_stopping_needs_held_out_data_and_a_patience():
    held_out = torch.randn(4, 3)
    scored = net_of(Linear(), validation_data=held_out)
    assert scored.train_split(None) == (None, held_out)  # every epoch scores the held-out rows
    assert not any(isinstance(cb, LowestValidLoss) for _, cb in scored.callbacks)
    stopping = net_of(Linear(), validation_data=held_out, n_iter_no_change=3, tol=0.5)
    (callback,) = [cb for _, cb in stopping.callbacks if isinstance(cb, LowestValidLoss)]
    assert (callback.n_iter_no_change, callback.tol) == (3, 0.5)


def test_fused_adam_on_cpu_and_cuda_and_torchs_choice_elsewhere():
    new_torch = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
    assert fused_adam("cpu") is (True if new_torch else None)
    assert fused_adam("cuda:1") is True
    assert fused_adam("meta") is None


def test_train_fits_and_then_forgets_the_held_out_data():
    module = Linear()
    net = net_of(module, max_epochs=3, validation_data=torch.randn(4, 3))
    before = module.linear.weight.detach().clone()
    training.train(net, torch.randn(16, 3), None)
    assert len(net.history) == 3 and net.train_split is None
    assert not torch.equal(net.module_.linear.weight, before)
    training.train(net, torch.randn(16, 3), 1, continuing=True)  # one epoch more
    assert len(net.history) == 4


def test_divergence_raises_or_keeps_the_last_finite_epoch():
    data = torch.randn(8, 3)  # two batches an epoch: the loss is NaN from epoch 2 on
    with pytest.raises(training.TrainingDiverged, match="epoch 2: the 'loss' term became nan"):
        training.train(net_of(Linear(blow_up_at=3)), data, None)

    torch.manual_seed(0)
    kept = net_of(Linear(blow_up_at=3), keep_last_finite=True)
    with pytest.warns(UserWarning, match="keeping the weights from the end of epoch 1"):
        training.train(kept, data, None, on_divergence="keep_last")
    assert len(kept.history) == 1  # the diverged epoch's row is dropped
    assert "last_finite_state_" not in kept.__dict__
    # The kept weights are epoch 1's: what one epoch of the same fit gives.
    torch.manual_seed(0)
    one = net_of(Linear(blow_up_at=3), max_epochs=1)
    training.train(one, data, None)
    torch.testing.assert_close(kept.module_.linear.weight, one.module_.linear.weight)
    torch.manual_seed(0)
    assert not torch.equal(kept.module_.linear.weight, Linear().linear.weight)  # it did train


def test_embed_applies_fn_batch_by_batch_in_eval_mode_as_float32_numpy():
    module = Linear()
    module.linear.register_forward_hook(lambda m, i, o: seen.append((m.training, len(i[0]))))
    net = net_of(module).initialize()
    seen = []
    data = np.random.default_rng(0).standard_normal((10, 3))  # float64 rows
    out = training.embed(net, data, lambda m, x: m.features(x, "y", 1), batch_size=4)
    assert out.dtype == np.float32 and out.shape == (10, 2)
    assert seen == [(False, 4), (False, 4), (False, 2)]  # eval mode, every row, in order
    with torch.no_grad():
        expected = module.linear(torch.as_tensor(data, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
