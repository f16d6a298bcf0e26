"""Information measures of representations.

:func:`neural_dependency_measure` estimates how far the factors of a
representation are from independent (using :func:`shuffle_factors` for the
product of their marginals); :func:`mine` estimates the mutual information
between inputs and their representations with
:func:`sk_dim.mi_estimation.mutual_information`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import Tensor, nn

from .._torch import resolve_device, seeded
from .._training import split_rows, standardize, train_minibatches
from ..losses import discriminator_loss
from ..mi_estimation import (
    check_pair,
    check_positive_float,
    check_positive_int,
    check_samples,
    donsker_varadhan,
    mutual_information,
)


def neural_dependency_measure(
    Z,
    *,
    hidden_units: int = 256,
    max_epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-4,
    test_size: float | int = 0.3,
    n_shuffles: int = 10,
    device: str = "auto",
    random_state=None,
) -> float:
    """Neural dependency measure (NDM) between the factors of a representation.

    How far the joint distribution of the representation's factors (its
    columns) is from the product of their marginals, i.e. its total
    correlation ``KL(p(z) || prod_k p(z_k))``, estimated as in Deep
    InfoMax: a discriminator learns to tell rows of Z from rows whose
    columns were each shuffled independently across rows (samples of the
    product of marginals) with the Jensen-Shannon (binary cross-entropy)
    objective, and the Donsker-Varadhan bound of the trained discriminator
    is reported on held-out rows. Independent factors give about 0,
    dependent factors more.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Representations, e.g. the ``layer="y"`` output of a transformer.
        Columns are standardised with training statistics first.
    hidden_units : int, default=256
        Width of the discriminator's two hidden layers.
    max_epochs : int, default=50
        Passes over the training rows; each pass draws new shuffles.
    batch_size : int, default=128
        Mini-batch size (capped at the number of training rows).
    lr : float, default=1e-4
        Adam learning rate (the paper's).
    test_size : float or int, default=0.3
        Held-out fraction (float in (0, 1)) or number of rows (int).
    n_shuffles : int, default=10
        Shuffled copies of the held-out rows the estimate averages over.
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the shuffles, the initialisation and the batches.

    Returns
    -------
    ndm : float
        The KL estimate in nats; near 0 (possibly slightly negative) for
        independent factors.

    Raises
    ------
    ValueError
        If Z has fewer than 4 rows or 2 columns, or contains NaN or
        infinity.

    See Also
    --------
    mine : MI between inputs and representations.
    sk_dim.mi_estimation.mutual_information : MI between two samples.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.
    .. [2] H. Kim, A. Mnih, "Disentangling by Factorising", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dim.evaluation import neural_dependency_measure
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((1000, 1))
    >>> Z = np.hstack([a, a + 0.3 * rng.standard_normal((1000, 1))])
    >>> bool(neural_dependency_measure(Z, max_epochs=10, lr=1e-3, random_state=0) > 0.5)
    True
    """
    check_positive_int("hidden_units", hidden_units)
    check_positive_int("max_epochs", max_epochs)
    check_positive_int("n_shuffles", n_shuffles)
    check_positive_int("batch_size", batch_size, minimum=2)
    check_positive_float("lr", lr)
    Z = check_samples(Z, "Z")
    if Z.shape[1] < 2:
        raise ValueError(
            f"NDM measures dependence between factors: Z needs at least 2 columns, got {Z.shape[1]}"
        )
    rng = check_random_state(random_state)
    train, test = split_rows(len(Z), test_size, rng)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    device = resolve_device(device)
    z_train, z_test = (torch.as_tensor(a, device=device) for a in standardize(Z[train], Z[test]))
    with seeded(seed, device):
        generator = torch.Generator().manual_seed(seed)
        net = nn.Sequential(
            nn.Linear(Z.shape[1], hidden_units), nn.ReLU(),
            nn.Linear(hidden_units, hidden_units), nn.ReLU(),
            nn.Linear(hidden_units, 1),
        ).to(device)  # fmt: skip

        def batch_loss(index: Tensor) -> Tensor:
            real = z_train[index.to(device)]
            # Shuffle within a batch drawn independently of the real one,
            # so real and fake rows never share a sample.
            other = torch.randint(len(z_train), (len(index),), generator=generator)
            fake = shuffle_factors(z_train[other.to(device)], generator)
            # The Jensen-Shannon objective: binary cross-entropy telling real from fake.
            return discriminator_loss(net(real), net(fake))

        train_minibatches(
            net,
            batch_loss,
            len(z_train),
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            generator=generator,
        )
        with torch.no_grad():
            negative = torch.cat(
                [net(shuffle_factors(z_test, generator)) for _ in range(n_shuffles)]
            )
            return float(donsker_varadhan(net(z_test), negative))


def shuffle_factors(Z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Permute each column of Z independently across rows.

    The result is a sample of the product of the columns' marginals.

    Parameters
    ----------
    Z : Tensor of shape (n_samples, n_factors)
        Samples.
    generator : torch.Generator or None, default=None
        Source of the permutations.

    Returns
    -------
    Z_shuffled : Tensor of shape (n_samples, n_factors)
        Each column holds the same values as in Z, in a new order.

    See Also
    --------
    neural_dependency_measure : Uses these shuffles as negative samples.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.
    .. [2] H. Kim, A. Mnih, "Disentangling by Factorising", ICML 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.evaluation import shuffle_factors
    >>> Z = torch.arange(12.0).view(4, 3)
    >>> torch.equal(shuffle_factors(Z).sort(0).values, Z)
    True
    """
    n, k = Z.shape
    keys = torch.rand(n, k, generator=generator).to(Z.device)
    return torch.gather(Z, 0, keys.argsort(0))


def mine(X, Z, **params) -> float:
    """MINE estimate of the MI between inputs and their representations.

    A statistics network ``T(x, z) = MLP([x, z])`` is trained on pairs
    ``(x_i, z_i)`` against shuffled pairs ``(x_perm(i), z_i)`` with the
    Donsker-Varadhan bound and MINE's moving-average gradient correction,
    and the bound is reported on held-out rows (in nats). This is
    :func:`~sk_dim.mi_estimation.mutual_information` with
    ``estimator="mine"``.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Inputs, flattened to vectors (e.g. images).
    Z : array-like of shape (n_samples, n_components)
        Their representations, e.g. ``transformer.transform(X)``.
    **params
        Parameters of :func:`~sk_dim.mi_estimation.mutual_information`
        (``hidden_units``, ``max_epochs``, ``batch_size``, ``lr``,
        ``ema_rate``, ``test_size``, ``random_state``, ...).

    Returns
    -------
    mi : float
        The held-out estimate in nats.

    See Also
    --------
    sk_dim.mi_estimation.mutual_information : The estimator used.
    neural_dependency_measure : Dependence between a representation's factors.

    References
    ----------
    .. [1] M. I. Belghazi et al., "Mutual Information Neural Estimation",
       ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dim.evaluation import mine
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 4))
    >>> Z = X[:, :1] + 0.5 * rng.standard_normal((1000, 1))  # true MI: 0.80 nats
    >>> bool(0.6 < mine(X, Z, max_epochs=30, random_state=0) < 1.0)
    True
    """
    if "estimator" in params:
        raise TypeError("mine() always uses estimator='mine'; call mutual_information instead")
    X, Z = check_pair(X, Z, names=("X", "Z"))  # errors name X and Z, not x and y
    return mutual_information(X, Z, estimator="mine", **params)


__all__ = ["mine", "neural_dependency_measure", "shuffle_factors"]
