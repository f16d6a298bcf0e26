"""sk_dim.losses.mi_bounds: JSD, DV and InfoNCE against loops over pairs."""

import math

import numpy as np
import pytest
import torch

import sk_dim
import sk_dim.mi_estimation
from sk_dim.losses import (
    BOUNDS,
    donsker_varadhan,
    dv_bound,
    infonce_bound,
    jsd_bound,
    log_mean_exp,
    mi_bound,
)


def softplus(v):
    return math.log1p(math.exp(v))


def reference(scores: np.ndarray, estimator: str) -> float:
    """The bounds written out with loops over positive and negative pairs."""
    n, _, n_loc = scores.shape
    pos = [scores[i, i, l] for i in range(n) for l in range(n_loc)]
    neg = [scores[i, j, l] for i in range(n) for j in range(n) if i != j for l in range(n_loc)]
    if estimator == "jsd":  # the "JSD" measure of the reference code (cortex_DIM gan_losses)
        log_2 = math.log(2)
        e_pos = np.mean([log_2 - softplus(-p) for p in pos])
        e_neg = np.mean([softplus(-q) + q - log_2 for q in neg])
        return e_pos - e_neg
    if estimator == "dv":
        return np.mean(pos) - math.log(np.mean([math.exp(q) for q in neg]))
    total = 0.0
    for i in range(n):
        row_neg = [scores[i, j, l] for j in range(n) if j != i for l in range(n_loc)]
        for l in range(n_loc):
            p = scores[i, i, l]
            total += p - math.log(math.exp(p) + sum(math.exp(q) for q in row_neg))
    return total / (n * n_loc) + math.log(1 + (n - 1) * n_loc)


@pytest.mark.parametrize("estimator", BOUNDS)
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


@pytest.mark.parametrize("estimator", BOUNDS)
def test_correlated_pair_ranks_above_independent(estimator):
    dependent = mi_bound(critic_scores(0.9), estimator).item()
    independent = mi_bound(critic_scores(0.0), estimator).item()
    assert dependent > independent + 0.3


def test_dv_close_to_true_mi_with_optimal_critic():
    true_mi = -0.5 * math.log(1 - 0.8**2)
    assert dv_bound(critic_scores(0.8, n=512)).item() == pytest.approx(true_mi, rel=0.15)


def test_one_dv_bound_the_plain_formula_in_float64():
    g = torch.Generator().manual_seed(2)
    positive = torch.randn(7, dtype=torch.float64, generator=g)
    negative = 3 * torch.randn(5, 11, dtype=torch.float64, generator=g)
    plain = positive.mean() - torch.log(torch.exp(negative).mean())
    bound = donsker_varadhan(positive, negative)
    assert bound.dtype == torch.float64
    assert bound.item() == pytest.approx(plain.item(), rel=1e-13, abs=1e-13)
    # The matrix form is the same bound on the diagonal and off-diagonal scores.
    scores = torch.randn(6, 6, 3, dtype=torch.float64, generator=g)
    eye = torch.eye(6, dtype=torch.bool)
    assert dv_bound(scores).item() == pytest.approx(
        donsker_varadhan(scores[eye], scores[~eye]).item(), rel=1e-13, abs=1e-13
    )
    # Stable where the plain formula overflows.
    assert log_mean_exp(torch.tensor([1000.0, 1000.0], dtype=torch.float64)).item() == 1000.0
    # mutual_information (and MINE) report this bound, not a copy of it.
    assert sk_dim.mi_estimation.donsker_varadhan is donsker_varadhan
    assert sk_dim.mi_estimation.log_mean_exp is log_mean_exp


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


@pytest.mark.parametrize("estimator", BOUNDS)
@pytest.mark.parametrize("n_loc", [1, 4])
def test_uninformative_critic_scores_zero_nats(estimator, n_loc):
    # history_ reports these estimates: 0, not a negative constant, for no information.
    # A critic's optimum for independent variables is T = 0 (any constant for DV and InfoNCE).
    for value in [0.0] if estimator == "jsd" else [0.0, 0.7]:
        scores = torch.full((6, 6, n_loc), value)
        assert mi_bound(scores, estimator).item() == pytest.approx(0.0, abs=1e-6)


def test_jsd_is_capped_at_two_log_two_and_keeps_the_papers_gradients():
    perfect = 50 * (2 * torch.eye(8) - 1)  # positives +50, negatives -50
    assert jsd_bound(perfect).item() == pytest.approx(2 * math.log(2), abs=1e-6)
    scores = torch.randn(7, 7, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    (grad,) = torch.autograd.grad(jsd_bound(scores), scores)
    # The paper's eq. 4 without the constant, written out.
    eye = torch.eye(7, dtype=torch.bool)[:, :, None].expand(7, 7, 3)
    paper = -torch.nn.functional.softplus(-scores[eye]).mean()
    paper = paper - torch.nn.functional.softplus(scores[~eye]).mean()
    (paper_grad,) = torch.autograd.grad(paper, scores)
    torch.testing.assert_close(grad, paper_grad)
    assert jsd_bound(scores).item() == pytest.approx(paper.item() + 2 * math.log(2), abs=1e-6)


@pytest.mark.parametrize("estimator", BOUNDS)
def test_mi_bounds_are_float32_under_autocast(estimator):
    scores = torch.randn(6, 6, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bound = mi_bound(scores, estimator)
    assert bound.dtype == torch.float32
    expected = mi_bound(scores.float(), estimator)
    torch.testing.assert_close(bound, expected)
