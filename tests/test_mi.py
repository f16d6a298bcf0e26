import math

import numpy as np
import pytest
import torch

from sk_dim.mi import ESTIMATORS, dv_bound, infonce_bound, jsd_bound, mi_bound


def softplus(v):
    return math.log1p(math.exp(v))


def reference(scores: np.ndarray, estimator: str) -> float:
    """The bounds written out with loops over positive and negative pairs."""
    n, _, n_loc = scores.shape
    pos = [scores[i, i, l] for i in range(n) for l in range(n_loc)]
    neg = [scores[i, j, l] for i in range(n) for j in range(n) if i != j for l in range(n_loc)]
    if estimator == "jsd":
        return np.mean([-softplus(-p) for p in pos]) - np.mean([softplus(q) for q in neg])
    if estimator == "dv":
        return np.mean(pos) - math.log(np.mean([math.exp(q) for q in neg]))
    total = 0.0
    for i in range(n):
        row_neg = [scores[i, j, l] for j in range(n) if j != i for l in range(n_loc)]
        for l in range(n_loc):
            p = scores[i, i, l]
            total += p - math.log(math.exp(p) + sum(math.exp(q) for q in row_neg))
    return total / (n * n_loc) + math.log(1 + (n - 1) * n_loc)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("n_loc", [1, 3])
def test_bounds_match_reference(estimator, n_loc):
    scores = torch.randn(
        5, 5, n_loc, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    got = mi_bound(scores, estimator).item()
    assert got == pytest.approx(reference(scores.numpy(), estimator), rel=1e-10)


def test_two_dimensional_scores_are_global():
    scores = torch.randn(6, 6)
    assert jsd_bound(scores) == pytest.approx(jsd_bound(scores[..., None]).item())


def critic_scores(rho: float, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Scores of the optimal critic for a correlated Gaussian pair: log p(x,y)/p(x)p(y)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, generator=g, dtype=torch.float64)
    xi, yj = x[:, None], y[None, :]
    return (
        -0.5 * math.log(1 - rho**2)
        - (rho**2 * (xi**2 + yj**2) - 2 * rho * xi * yj) / (2 * (1 - rho**2))
    ).T  # scores[i, j] = T(y_i, x_j)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_correlated_pair_ranks_above_independent(estimator):
    dependent = mi_bound(critic_scores(0.9), estimator).item()
    independent = mi_bound(critic_scores(0.0), estimator).item()
    assert dependent > independent + 0.3


def test_dv_close_to_true_mi_with_optimal_critic():
    true_mi = -0.5 * math.log(1 - 0.8**2)
    assert dv_bound(critic_scores(0.8, n=512)).item() == pytest.approx(true_mi, rel=0.15)


def test_infonce_never_above_log_batch_size():
    scores = torch.eye(8) * 1e4  # a perfect critic
    assert infonce_bound(scores).item() == pytest.approx(math.log(8))


def test_bad_input():
    with pytest.raises(ValueError, match="Unknown MI estimator 'mine'"):
        mi_bound(torch.zeros(3, 3), "mine")
    with pytest.raises(ValueError, match="at least 2 samples"):
        mi_bound(torch.zeros(1, 1), "jsd")
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        mi_bound(torch.zeros(3, 4), "jsd")
