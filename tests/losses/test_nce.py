"""sk_dim.losses.nce: NCE and softmax losses, scores and the normalising constant."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sk_dim.losses import (
    NCELoss,
    contrast_scores,
    estimate_log_z,
    nce_loss,
    softmax_loss,
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
