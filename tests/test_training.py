"""sk_dim._training: the loop of the small networks beside the estimators, their standardisation."""

import numpy as np
import pytest
import torch

from sk_dim._training import batches, column_scale, standardize, train_minibatches
from sk_dim.views.makers import nonzero_std

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_shared_loop_is_adam_over_seeded_shuffled_batches():
    """train_minibatches draws and steps exactly as the hand-written loops it replaced."""
    data = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
    target = data @ torch.tensor([1.0, -2.0, 0.5])

    def make():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 1)

    def batch_loss(net, generator):
        def loss(index):
            noise = torch.randn(len(index), generator=generator)  # a draw inside the loss
            return ((net(data[index]).squeeze(1) - target[index] - 0.01 * noise) ** 2).mean()

        return loss

    net, generator = make(), torch.Generator().manual_seed(3)
    curve = train_minibatches(
        net, batch_loss(net, generator), 50, max_epochs=3, batch_size=16, lr=0.1,
        generator=generator,
    )  # fmt: skip

    reference, generator = make(), torch.Generator().manual_seed(3)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.1)
    loss_of = batch_loss(reference, generator)
    expected = []
    for _ in range(3):
        total, count = 0.0, 0
        order = torch.randperm(50, generator=generator)
        for start in range(0, 50, 16):  # the last batch (row 48, 49) has two rows
            index = order[start : start + 16]
            loss = loss_of(index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(index), count + len(index)
        expected.append(total / count)
    assert curve == expected and curve[-1] < curve[0]
    for a, b in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not net.training


def test_batches_drop_a_trailing_single_row():
    sizes = [len(b) for b in batches(33, 16, torch.Generator().manual_seed(0))]
    assert sizes == [16, 16]
    rows = torch.cat(list(batches(32, 16, torch.Generator().manual_seed(0))))
    assert sorted(rows.tolist()) == list(range(32))


def test_standardize_uses_training_statistics_and_keeps_constant_columns():
    train = np.array([[0.0, 5.0], [2.0, 5.0]])
    scaled, other = standardize(train, np.array([[4.0, 6.0]]))
    np.testing.assert_array_equal(scaled, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(other, [[3.0, 1.0]])
    assert scaled.dtype == other.dtype == np.float32


def test_column_scale_is_the_networks_constant_column_rule():
    """One rule, relative to the data's magnitude, on the numpy and the torch side."""
    mean = np.array([1e4, 1e4, 0.5, 3.0])
    std = np.array([5e-5, 2e-4, 5e-9, 0.0])  # floor: 1e-8 * 1e4 = 1e-4
    np.testing.assert_array_equal(column_scale(std, mean), [1.0, 2e-4, 1.0, 1.0])
    torch_side = nonzero_std(torch.from_numpy(std), torch.from_numpy(mean)).numpy()
    np.testing.assert_array_equal(column_scale(std, mean), torch_side)
    # Data near 0 keeps a floor of 1e-8: a std of 5e-9 is constant, 2e-8 is not.
    np.testing.assert_array_equal(column_scale(np.array([5e-9, 2e-8]), np.zeros(2)), [1, 2e-8])
