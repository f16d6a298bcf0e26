"""sk_dim.losses.contrast: CMC's multiview objective, against a memory bank or a queue."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sk_dim.losses import (
    MemoryBank,
    MultiviewContrast,
    contrast_scores,
    view_pairs,
)


def _unit(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def _reference_softmax(logits: np.ndarray) -> float:
    total = 0.0
    for row in logits:
        total += -(row[0] - math.log(sum(math.exp(v) for v in row)))
    return total / len(logits)


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


# -- a queue of keys (CMC's partial_fit, as MoCo) ---------------------------------------


def test_every_queue_entry_is_scored_and_the_positive_is_the_key():
    """The loss of a queue contrast against the plain MoCo formula, both directions."""
    K, B, D, T = 5, 3, 4, 0.2
    bank = MemoryBank(K, D, momentum=0.0, generator=torch.Generator().manual_seed(0))
    queue = bank.memory.clone()  # (V, K, D)
    contrast = MultiviewContrast(bank, K, temperature=T, loss="softmax", queue=True).train()
    queries = [_unit(B, D, seed=1), _unit(B, D, seed=2)]
    keys = [_unit(B, D, seed=3), _unit(B, D, seed=4)]
    total, terms = contrast(queries, torch.arange(B), keys=keys)
    for q, b in ((0, 1), (1, 0)):
        logits = torch.cat(
            [(queries[q] * keys[b]).sum(1, keepdim=True), queries[q] @ queue[b].T], 1
        )
        assert logits.shape == (B, K + 1)
        expected = -torch.log_softmax(logits / T, dim=1)[:, 0].mean()
        assert terms[f"{q}_{b}"] == pytest.approx(expected.item(), rel=1e-5)
    assert total.item() == pytest.approx(terms["0_1"] + terms["1_0"], rel=1e-6)
    with pytest.raises(ValueError, match="queue length"):
        MultiviewContrast(MemoryBank(K, D, momentum=0.0), K - 1, queue=True)
    with pytest.raises(ValueError, match="keys"):
        contrast(queries, torch.arange(B))


def test_a_batch_longer_than_the_queue_keeps_its_last_keys():
    bank = MemoryBank(4, 3, momentum=0.0, generator=torch.Generator().manual_seed(0))
    contrast = MultiviewContrast(bank, 4, loss="softmax", queue=True).train()
    contrast.queue_head.fill_(1)
    keys = [_unit(6, 3, seed=7), _unit(6, 3, seed=8)]
    contrast([_unit(6, 3, seed=9), _unit(6, 3, seed=10)], torch.arange(6), keys=keys)
    # Written in order from row 1: keys 0..5 to rows 1, 2, 3, 0, 1, 2; the last 4 stay.
    for v in range(2):
        torch.testing.assert_close(contrast.bank.memory[v, [3, 0, 1, 2]], keys[v][2:])
    assert contrast.queue_head.item() == (1 + 6) % 4


# -- held-out terms ----------------------------------------------------------------------


def test_in_batch_loss_against_the_plain_formula():
    B, D, T = 6, 4, 0.3
    contrast = MultiviewContrast(MemoryBank(10, D), 3, temperature=T)
    embeddings = [_unit(B, D, seed=5), _unit(B, D, seed=6)]
    total, terms = contrast.in_batch(embeddings)
    for q, b in ((0, 1), (1, 0)):
        logits = embeddings[q] @ embeddings[b].T / T  # (B, B), positives on the diagonal
        expected = -(torch.diagonal(logits) - torch.logsumexp(logits, dim=1)).mean()
        assert terms[f"{q}_{b}"] == pytest.approx(expected.item(), rel=1e-5)
    assert total.item() == pytest.approx(sum(terms.values()), rel=1e-6)
