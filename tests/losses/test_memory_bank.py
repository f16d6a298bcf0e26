"""sk_dim.losses.memory_bank: the memory bank's rows, updates and negatives."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sk_dim.losses import MemoryBank
from sk_dim.losses.memory_bank import check_n_negatives


def _unit(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_memory_bank_init_shape_range_and_determinism():
    dim = 12
    bank = MemoryBank(n_samples=30, dim=dim, n_views=3, generator=torch.Generator().manual_seed(0))
    stdv = 1 / math.sqrt(dim / 3)
    assert bank.memory.shape == (3, 30, dim)
    assert (bank.n_views, bank.n_samples, bank.dim) == (3, 30, dim)
    assert bank.momentum == 0.5
    assert bank.memory.min() >= -stdv and bank.memory.max() <= stdv
    # Spread over the whole interval, not e.g. [0, stdv].
    assert bank.memory.min() < -0.8 * stdv and bank.memory.max() > 0.8 * stdv
    again = MemoryBank(30, dim, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bank.memory, again.memory, rtol=0, atol=0)
    assert "memory" in bank.state_dict()


def test_memory_bank_update_matches_hand_computation():
    bank = MemoryBank(10, 4, n_views=2, momentum=0.3, generator=torch.Generator().manual_seed(1))
    before = bank.memory.clone()
    index = torch.tensor([7, 2])
    emb = _unit(2, 4, seed=6)
    bank.update(1, index, emb)
    for row, i in enumerate(index.tolist()):
        blended = 0.3 * before[1, i].numpy() + 0.7 * emb[row].numpy()
        expected = blended / np.sqrt((blended**2).sum())
        np.testing.assert_allclose(bank.memory[1, i].numpy(), expected, rtol=1e-5, atol=1e-6)
    untouched = [i for i in range(10) if i not in (7, 2)]
    torch.testing.assert_close(bank.memory[1, untouched], before[1, untouched])
    torch.testing.assert_close(bank.memory[0], before[0])  # the other view is left alone


def test_sample_negatives_shape_range_and_seed():
    bank = MemoryBank(25, 4)
    idx = bank.sample_negatives(8, generator=torch.Generator().manual_seed(2))
    assert idx.shape == (8,) and idx.dtype == torch.long
    assert idx.min() >= 0 and idx.max() < 25
    again = bank.sample_negatives(8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(idx, again)


def test_sample_negatives_is_uniform():
    bank, generator = MemoryBank(5, 2), torch.Generator().manual_seed(0)
    idx = torch.cat([bank.sample_negatives(4, generator=generator) for _ in range(10_000)])
    freq = torch.bincount(idx, minlength=5).double() / len(idx)
    torch.testing.assert_close(freq, torch.full((5,), 0.2, dtype=torch.float64), atol=0.01, rtol=0)


def test_weights_gather_rows_without_grad():
    bank = MemoryBank(6, 3, generator=torch.Generator().manual_seed(3))
    idx = torch.tensor([[1, 4], [5, 1]])
    w = bank.weights(0, idx)
    assert w.shape == (2, 2, 3) and not w.requires_grad
    torch.testing.assert_close(w[1, 0], bank.memory[0, 5])


def test_n_negatives_must_leave_a_distinct_row_for_the_positive():
    check_n_negatives(1, 2)
    check_n_negatives(29, 30)
    for bad in (0, -1, 30, 31):
        with pytest.raises(
            ValueError, match=rf"1 <= n_negatives < n_samples=30, got n_negatives={bad}$"
        ):
            check_n_negatives(bad, 30)
