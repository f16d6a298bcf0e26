import math

import numpy as np
import pytest
import torch

from sk_dim.mi_estimation import (
    ESTIMATORS,
    ConcatCritic,
    SeparableCritic,
    mutual_information,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def correlated_gaussians(d: int, rho: float, n: int, seed: int = 0):
    """x, y in R^d, each pair (x_k, y_k) correlated by rho, the pairs independent."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x, y


def true_mi(d: int, rho: float) -> float:
    return -d / 2 * math.log(1 - rho**2)


@pytest.mark.parametrize("critic", [ConcatCritic, SeparableCritic])
def test_critic_scores_lay_positives_on_the_diagonal(critic):
    net = critic(3, 2, hidden_units=8)
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    scores = net.scores(x, y)
    assert scores.shape == (5, 5)
    torch.testing.assert_close(torch.diagonal(scores), net(x, y))
    # scores[i, j] = T(x_j, y_i), the layout of sk_dim.losses
    torch.testing.assert_close(scores[1, 3], net(x[3:4], y[1:2])[0])


@pytest.mark.parametrize("estimator", ["dv", "mine"])
@pytest.mark.parametrize(("d", "rho"), [(1, 0.8), (2, 0.7)])
def test_dv_and_mine_within_ten_percent_of_the_truth(estimator, d, rho):
    x, y = correlated_gaussians(d, rho, n=3000)
    mi = mutual_information(x, y, estimator=estimator, max_epochs=30, random_state=0)
    assert mi == pytest.approx(true_mi(d, rho), rel=0.10)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimates_increase_with_correlation(estimator):
    estimates = [
        mutual_information(
            *correlated_gaussians(1, rho, n=1500), estimator=estimator, max_epochs=20,
            random_state=0,
        )
        for rho in (0.3, 0.6, 0.9)
    ]  # fmt: skip
    assert estimates[0] < estimates[1] < estimates[2]
    assert estimates[0] < 0.15 and estimates[2] > 0.6  # truths: 0.05, 0.22, 0.83


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_independent_variables_have_no_mi(estimator):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1500, 2)), rng.standard_normal((1500, 3))
    mi = mutual_information(x, y, estimator=estimator, max_epochs=20, random_state=0)
    # An over-fitted critic scores held-out rows below 0; it never finds MI that is not there.
    assert -0.1 < mi < 0.03


def test_infonce_never_above_log_batch_size():
    # True MI is 5 * 1.96 = 9.8 nats, far above log(16) = 2.77.
    x, y = correlated_gaussians(5, 0.99, n=1000)
    mi = mutual_information(x, y, estimator="infonce", batch_size=16, max_epochs=10, random_state=0)
    assert 2.0 < mi <= math.log(16) + 1e-6


def test_same_seed_same_estimate_and_global_rng_untouched():
    x, y = correlated_gaussians(1, 0.5, n=400)
    state = torch.random.get_rng_state()
    a = mutual_information(x, y, max_epochs=3, random_state=0)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == mutual_information(x, y, max_epochs=3, random_state=0)
    assert a != mutual_information(x, y, max_epochs=3, random_state=1)


def test_inputs_of_any_shape_and_type():
    x, y = correlated_gaussians(1, 0.8, n=200)
    for kw in ({}, {"critic": "concat"}, {"critic": "separable", "estimator": "mine"}):
        mi = mutual_information(x.ravel(), y.tolist(), max_epochs=2, random_state=0, **kw)
        assert mi == mutual_information(x, y, max_epochs=2, random_state=0, **kw)
    # Even 200 rows give the MI of the correlated pair (0.51 nats) to within 15%.
    mi = mutual_information(x.ravel(), y.tolist(), max_epochs=30, random_state=0)
    assert mi == pytest.approx(true_mi(1, 0.8), rel=0.15)
    images = np.random.default_rng(0).random((200, 1, 4, 4)).astype(np.float32)
    mi = mutual_information(images, y, max_epochs=1, test_size=50, random_state=0)
    flat = mutual_information(
        images.reshape(200, 16), y, max_epochs=1, test_size=50, random_state=0
    )
    assert mi == flat and -0.1 < mi < 0.1  # random pixels say nothing about y


def test_bad_input():
    x, y = correlated_gaussians(1, 0.5, n=20)
    with pytest.raises(ValueError, match="same number of samples, got 20 and 19"):
        mutual_information(x, y[:19])
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="Input x contains NaN"):
        mutual_information(bad, y)
    with pytest.raises(ValueError, match="Input y contains infinity"):
        mutual_information(x, np.full_like(y, np.inf))
    with pytest.raises(ValueError, match="at least 4 samples"):
        mutual_information(x[:3], y[:3])
    with pytest.raises(ValueError, match="Unknown estimator 'nwj'"):
        mutual_information(x, y, estimator="nwj")
    with pytest.raises(ValueError, match="Unknown critic 'bilinear'"):
        mutual_information(x, y, critic="bilinear")
    with pytest.raises(ValueError, match="test_size"):
        mutual_information(x, y, test_size=19)
    with pytest.raises(ValueError, match="batch_size must be an int >= 2"):
        mutual_information(x, y, batch_size=1)
    with pytest.raises(ValueError, match="ema_rate"):
        mutual_information(x, y, estimator="mine", ema_rate=0)
