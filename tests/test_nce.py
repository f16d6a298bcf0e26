"""Tests for sk_dim.losses: memory bank, NCE / softmax losses and the multiview objective."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sk_dim.losses import (
    MemoryBank,
    MultiviewContrast,
    NCELoss,
    contrast_scores,
    estimate_log_z,
    nce_loss,
    softmax_loss,
    view_pairs,
)


def _unit(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


# ------------------------------------------------------------------ reference formulas


def _reference_nce(logits: np.ndarray, n_samples: int, z: float) -> float:
    """NCECriterion written out with explicit loops."""
    eps = 1e-7
    batch, k1 = logits.shape
    k = k1 - 1
    pn = 1.0 / n_samples
    total = 0.0
    for b in range(batch):
        p_pos = math.exp(logits[b, 0]) / z
        total += math.log(p_pos / (p_pos + k * pn + eps))
        for n in range(1, k1):
            p_neg = math.exp(logits[b, n]) / z
            total += math.log(k * pn / (p_neg + k * pn + eps))
    return -total / batch


def _reference_softmax(logits: np.ndarray) -> float:
    total = 0.0
    for row in logits:
        total += -(row[0] - math.log(sum(math.exp(v) for v in row)))
    return total / len(logits)


def test_nce_loss_matches_reference():
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    n_samples, z = 50, 37.5
    expected = _reference_nce(logits.numpy(), n_samples, z)
    got = nce_loss(logits, n_samples, z)
    assert got.dtype == torch.float64  # float64 stays float64: a reference for float32
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # A tensor Z gives the same value as a float Z.
    assert nce_loss(logits, n_samples, torch.tensor(z)).item() == pytest.approx(expected, rel=1e-12)
    float32 = nce_loss(logits.float(), n_samples, z)
    assert float32.dtype == torch.float32
    assert float32.item() == pytest.approx(expected, rel=1e-5)


def test_nce_loss_bf16_logits_are_upcast():
    logits = (torch.randn(3, 5, generator=torch.Generator().manual_seed(1)) * 14).bfloat16()
    got = nce_loss(logits, 100, 80.0)
    expected = _reference_nce(logits.double().numpy(), 100, 80.0)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_softmax_loss_matches_reference():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(2))
    expected = _reference_softmax(logits.double().numpy())
    assert softmax_loss(logits).item() == pytest.approx(expected, rel=1e-5)


def test_contrast_scores_are_dot_products_over_temperature():
    emb, pos, neg = _unit(3, 4, seed=3), _unit(3, 4, seed=5), _unit(5, 4, seed=4)
    got = contrast_scores(emb, pos, neg, 0.5)
    e, p, n = emb.double().numpy(), pos.double().numpy(), neg.double().numpy()
    expected = np.array([[e[b] @ p[b]] + [e[b] @ n[k] for k in range(5)] for b in range(3)]) / 0.5
    assert got.shape == (3, 6) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ normalising constant


def test_estimate_log_z_hand_computation():
    # Z = mean(exp(logits)) * N, as NCEAverage's ``Z = out.mean() * nLem``.
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    expected = (1 + math.e + math.e**2 + math.exp(-1)) / 4 * 10
    assert estimate_log_z(logits, 10).exp().item() == pytest.approx(expected, rel=1e-6)


def test_estimate_log_z_does_not_overflow_where_exp_would():
    logits = torch.tensor([[800.0, 800.0]])  # exp(800) overflows float32 and float64
    assert estimate_log_z(logits, 10).item() == pytest.approx(800 + math.log(10), rel=1e-6)


def test_nce_loss_module_fixes_z_on_first_batch():
    crit = NCELoss(n_samples=20)
    assert not crit.is_estimated and math.isnan(crit.z)
    first = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    loss = crit(first)
    z = estimate_log_z(first, 20).exp().item()
    assert crit.z == pytest.approx(z, rel=1e-6)
    assert loss.item() == pytest.approx(_reference_nce(first.double().numpy(), 20, z), rel=1e-5)

    second = first * 3 + 2
    crit(second)
    assert crit.z == pytest.approx(z, rel=1e-6)  # unchanged by later batches

    # Z is training state: it travels with the state_dict.
    restored = NCELoss(n_samples=20)
    restored.load_state_dict(crit.state_dict())
    assert restored.z == pytest.approx(z, rel=1e-6)


# ------------------------------------------------------------------------- memory bank


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


# ------------------------------------------------------------------ multiview objective


def _contrast(n_views=2, loss="nce", graph="core", n_samples=40, dim=8, k=10):
    bank = MemoryBank(n_samples, dim, n_views, generator=torch.Generator().manual_seed(0))
    return MultiviewContrast(bank, n_negatives=k, temperature=0.1, loss=loss, graph=graph)


def test_gradients_reach_embeddings_not_memory():
    contrast = _contrast()
    raw = [torch.randn(5, 8, requires_grad=True) for _ in range(2)]
    embeddings = [F.normalize(r, dim=1) for r in raw]
    loss, terms = contrast(embeddings, torch.arange(5), generator=torch.Generator().manual_seed(0))
    loss.backward()
    for r in raw:
        assert r.grad is not None and r.grad.abs().sum() > 0
    assert not contrast.bank.memory.requires_grad and contrast.bank.memory.grad is None
    assert set(terms) == {"0_1", "1_0"}
    assert loss.item() == pytest.approx(sum(terms.values()), rel=1e-5)


def test_softmax_contrast_matches_reference_with_shared_negatives():
    contrast = _contrast(loss="softmax", k=6)
    bank = contrast.bank.memory.clone().double().numpy()  # (V, N, D) before the update
    embeddings = [_unit(4, 8, seed=20), _unit(4, 8, seed=21)]
    index = torch.tensor([3, 9, 0, 31])
    loss, terms = contrast(embeddings, index, generator=torch.Generator().manual_seed(5))
    noise = contrast.bank.sample_negatives(6, generator=torch.Generator().manual_seed(5)).numpy()
    expected = {}
    for q, b in ((0, 1), (1, 0)):
        e = embeddings[q].double().numpy()
        logits = (
            np.stack(
                [
                    [e[r] @ bank[b, i]] + [e[r] @ bank[b, n] for n in noise]
                    for r, i in enumerate(index)
                ]
            )
            / 0.1
        )
        expected[f"{q}_{b}"] = _reference_softmax(logits)
    assert terms == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(sum(expected.values()), rel=1e-5)


@pytest.mark.parametrize("kind", ["nce", "softmax"])
def test_identical_views_score_lower_than_independent(kind):
    index = torch.arange(0, 16, 2)
    view_a = _unit(8, 8, seed=10)
    view_b = _unit(8, 8, seed=11)

    def loss_for(second_view):
        contrast = _contrast(loss=kind, n_samples=64, k=32)
        contrast.eval()  # keep the pre-filled banks as they are
        contrast.bank.memory[0, index] = view_a
        contrast.bank.memory[1, index] = second_view
        loss, _ = contrast([view_a, second_view], index, torch.Generator().manual_seed(3))
        return loss.item()

    assert loss_for(view_a) < loss_for(view_b)


def test_banks_update_after_scoring_in_training_only():
    contrast = _contrast()
    index = torch.tensor([1, 5, 9])
    embeddings = [_unit(3, 8, seed=20), _unit(3, 8, seed=21)]
    before = contrast.bank.memory.clone()

    contrast.eval()
    contrast(embeddings, index)
    torch.testing.assert_close(contrast.bank.memory, before)

    contrast.train()
    gen_seed = 4
    loss, _ = contrast(embeddings, index, torch.Generator().manual_seed(gen_seed))
    # The loss was computed from the banks before this step's update.
    fresh = _contrast()
    fresh.load_state_dict({**contrast.state_dict(), "bank.memory": before})
    loss_before, _ = fresh(embeddings, index, torch.Generator().manual_seed(gen_seed))
    assert loss.item() == pytest.approx(loss_before.item(), rel=1e-6)
    # Each view's bank moved towards that view's embeddings.
    for v in range(2):
        expected = F.normalize(0.5 * before[v, index] + 0.5 * embeddings[v], dim=1)
        torch.testing.assert_close(contrast.bank.memory[v, index], expected)


def test_each_direction_keeps_its_own_z():
    contrast = _contrast(n_views=3, graph="full")
    embeddings = [_unit(4, 8, seed=30 + v) for v in range(3)]
    contrast(embeddings, torch.arange(4))
    zs = {key: crit.z for key, crit in contrast.nce.items()}
    assert set(zs) == {"0_1", "1_0", "0_2", "2_0", "1_2", "2_1"}
    assert all(z > 0 for z in zs.values())
    assert len(set(zs.values())) == 6
    assert {f"nce.{key}.log_z" for key in zs} <= set(contrast.state_dict())


def test_core_vs_full_graph_terms():
    assert view_pairs(3, "core") == [(0, 1), (0, 2)]
    assert view_pairs(3, "full") == [(0, 1), (0, 2), (1, 2)]
    embeddings = [_unit(4, 8, seed=40 + v) for v in range(3)]
    for graph, n_pairs in (("core", 2), ("full", 3)):
        contrast = _contrast(n_views=3, graph=graph, loss="softmax")
        assert len(contrast.pairs) == n_pairs
        _, terms = contrast(embeddings, torch.arange(4))
        assert len(terms) == 2 * n_pairs


def test_bad_options_raise():
    bank = MemoryBank(10, 4)
    with pytest.raises(ValueError, match="n_negatives"):
        MultiviewContrast(bank, n_negatives=10)
    with pytest.raises(ValueError, match="n_negatives"):
        bank.sample_negatives(0)
    with pytest.raises(ValueError, match="nce"):
        MultiviewContrast(bank, n_negatives=3, loss="infonce")
    with pytest.raises(ValueError, match="core"):
        MultiviewContrast(bank, n_negatives=3, graph="star")
    with pytest.raises(ValueError, match="2 views"):
        MultiviewContrast(MemoryBank(10, 4, n_views=1), n_negatives=3)
    contrast = MultiviewContrast(bank, n_negatives=3)
    with pytest.raises(ValueError, match="views"):
        contrast([_unit(2, 4, seed=0)], torch.arange(2))
    with pytest.raises(ValueError, match="shape"):
        contrast([_unit(2, 4, seed=0), _unit(2, 5, seed=1)], torch.arange(2))


def test_eval_mode_takes_positives_from_the_other_view_and_a_queue_its_keys():
    """Held-out rows have no bank entry: the positive is the other view's embedding."""
    contrast = _contrast().eval()
    index = torch.tensor([1, 5, 9])
    embeddings = [_unit(3, 8, seed=40), _unit(3, 8, seed=41)]
    noise_seed = 7
    loss, terms = contrast(embeddings, index, torch.Generator().manual_seed(noise_seed))
    noise = contrast.bank.sample_negatives(
        contrast.n_negatives, generator=torch.Generator().manual_seed(noise_seed)
    )
    logits = contrast_scores(
        embeddings[0], embeddings[1], contrast.bank.weights(1, noise), contrast.temperature
    )
    assert terms["0_1"] == pytest.approx(contrast.nce["0_1"](logits).item(), rel=1e-6)

    # A queue takes the keys as positives and stores them, not the embeddings.
    keys = [_unit(3, 8, seed=42), _unit(3, 8, seed=43)]
    bank = MemoryBank(4, 8, 2, momentum=0.0, generator=torch.Generator().manual_seed(0))
    queue = MultiviewContrast(bank, n_negatives=4, temperature=0.1, queue=True).train()
    for step in range(2):  # 3 + 3 rows into a queue of 4: the write position wraps around
        before = queue.bank.memory.clone()
        _, terms = queue(embeddings, index, keys=keys)
        logits = contrast_scores(embeddings[0], keys[1], before[1], queue.temperature)
        assert terms["0_1"] == pytest.approx(queue.nce["0_1"](logits).item(), rel=1e-6)
        rows = (3 * step + torch.arange(3)) % 4
        for v in range(2):
            torch.testing.assert_close(queue.bank.memory[v, rows], keys[v])
    assert queue.queue_head.item() == 6 % 4
