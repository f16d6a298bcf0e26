"""sk_dim.evaluation.dependency: NDM and MINE."""

import math

import numpy as np
import pytest
import torch

from sk_dim.evaluation import (
    mine,
    neural_dependency_measure,
    shuffle_factors,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shuffle_factors_keeps_marginals_and_breaks_dependence():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 1, generator=g)
    Z = torch.cat([a, a], 1)
    shuffled = shuffle_factors(Z, g)
    torch.testing.assert_close(shuffled.sort(0).values, Z.sort(0).values)
    assert abs(torch.corrcoef(shuffled.T)[0, 1]) < 0.1


def ndm_data(rho: float, n: int = 1500, seed: int = 0):
    """Four factors; the first two correlated by rho (total correlation -log(1 - rho^2)/2)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, 1))
    b = rho * a + math.sqrt(1 - rho**2) * rng.standard_normal((n, 1))
    return np.hstack([a, b, rng.standard_normal((n, 2))])


def test_ndm_grows_with_dependence():
    ndm = [
        neural_dependency_measure(ndm_data(rho), lr=1e-3, max_epochs=20, random_state=0)
        for rho in (0.0, 0.5, 0.8)
    ]
    assert abs(ndm[0]) < 0.05
    assert ndm[0] < ndm[1] < ndm[2]
    assert ndm[2] == pytest.approx(-0.5 * math.log(1 - 0.8**2), rel=0.15)


def test_ndm_of_learned_representations(fitted, digits):
    Z = fitted.transform(digits[0])
    rng = np.random.default_rng(0)
    independent = np.column_stack([rng.permutation(column) for column in Z.T])
    # The local features of neighbouring locations share pixels: far from independent.
    assert neural_dependency_measure(Z, max_epochs=5, random_state=0) > 0.3
    # The same marginals, each column shuffled on its own: no dependence left.
    assert abs(neural_dependency_measure(independent, max_epochs=5, random_state=0)) < 0.05


def test_ndm_bad_input():
    with pytest.raises(ValueError, match="at least 2 columns"):
        neural_dependency_measure(np.zeros((50, 1)))
    with pytest.raises(ValueError, match="at least 4 samples"):
        neural_dependency_measure(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="Input Z contains NaN"):
        neural_dependency_measure(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="n_shuffles"):
        neural_dependency_measure(np.zeros((10, 2)), n_shuffles=0)


def test_mine_between_inputs_and_a_noisy_code():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 6))
    noise = rng.standard_normal((2000, 2))
    Z = X[:, :2] + noise  # two channels with SNR 1: MI = log 2
    assert mine(X, Z, max_epochs=30, random_state=0) == pytest.approx(math.log(2), rel=0.15)
    independent = mine(X, noise, max_epochs=10, random_state=0)
    assert -0.1 < independent < 0.03


def test_mine_bad_input():
    with pytest.raises(ValueError, match="X and Z must have the same number of samples"):
        mine(np.zeros((10, 2)), np.zeros((9, 2)))
    with pytest.raises(TypeError, match="estimator='mine'"):
        mine(np.zeros((10, 2)), np.zeros((10, 2)), estimator="dv")
