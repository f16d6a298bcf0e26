"""Mutual information between two samples, estimated by a trained critic.

:mod:`sk_dim.losses` turns critic scores into MI bounds; this module trains the
critic. :func:`mutual_information` fits a small statistics network
``T(x, y)`` on part of the data by maximizing a bound, then reports the bound
on the rows it did not train on (in nats). Evaluating on held-out rows keeps
an over-fitted critic from reporting dependence that is not there.

Only torch, numpy and scikit-learn's validation helpers are imported (no
skorch), so the estimators are usable outside the transformers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real

import numpy as np
import torch
from scipy import sparse
from sklearn.utils import check_array, check_random_state
from torch import Tensor, nn

from ._torch import resolve_device, seeded
from ._training import split_rows, standardize, train_minibatches
from .losses import donsker_varadhan, infonce_bound, log_mean_exp, mi_bound
from .modules.critics import ConcatCritic, SeparableCritic

ESTIMATORS = ("dv", "jsd", "infonce", "mine")
CRITICS = ("auto", "concat", "separable")
# The smallest sample: two rows to train on (in-batch negatives need two)
# and two to evaluate on.
MIN_SAMPLES = 4


def mutual_information(
    x,
    y,
    *,
    estimator: str = "dv",
    critic: str = "auto",
    hidden_units: int = 64,
    n_layers: int = 2,
    max_epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-3,
    test_size: float | int = 0.3,
    ema_rate: float = 0.01,
    device: str = "auto",
    random_state=None,
) -> float:
    """Estimate the mutual information I(x; y) in nats with a trained critic.

    The rows are split into a training and a held-out part. A statistics
    network ``T(x, y)`` is trained with Adam on mini-batches of the
    training part, then the MI estimate is computed on the held-out part,
    in chunks of ``batch_size`` rows where every other row of a chunk
    provides the negative (product of marginals) pairs:

    - ``"dv"``: train and report the Donsker-Varadhan bound
      ``E_P[T] - log E_Q[exp T]``, with all ``N (N - 1)`` in-batch
      negatives per batch.
    - ``"mine"``: MINE (Belghazi et al., 2018). The DV bound with one
      shuffled copy of the batch as negatives, ``(x_perm(i), y_i)``, and the
      paper's bias-corrected gradient: the gradient of ``log E_Q[exp T]``
      is estimated with a moving average of ``E_Q[exp T]`` (rate
      ``ema_rate``) in its denominator, which removes most of the bias of
      mini-batch DV gradients. Reports the DV bound.
    - ``"jsd"``: train with the Jensen-Shannon objective of Deep InfoMax
      (stable gradients), report the DV bound of the trained critic. Its
      optimum is the same log density ratio as DV's, so the DV value is a
      meaningful KL estimate in nats.
    - ``"infonce"``: train and report the InfoNCE bound. It has low
      variance but can never exceed ``log(batch_size)``: it underestimates
      any MI larger than that.

    Both x and y are standardised with statistics of the training part
    (MI is invariant to such invertible maps; optimisation is not).

    Parameters
    ----------
    x : array-like of shape (n_samples,) or (n_samples, n_features_x)
        First variable.
    y : array-like of shape (n_samples,) or (n_samples, n_features_y)
        Second variable, row-aligned with x.
    estimator : {"dv", "mine", "jsd", "infonce"}, default="dv"
        Objective to train the critic with and bound to report (see above).
    critic : {"auto", "concat", "separable"}, default="auto"
        ``"concat"`` scores ``MLP([x, y])`` (:class:`ConcatCritic`, MINE's
        statistics network); ``"separable"`` scores ``g(x) @ h(y)``
        (:class:`SeparableCritic`). ``"auto"`` is ``"concat"`` for
        ``"mine"``, which scores ``2 * batch_size`` pairs per batch, and
        ``"separable"`` for the others, which score all ``batch_size**2``
        pairs (about 10x faster than ``"concat"`` there, on CPU).
    hidden_units : int, default=64
        Width of the critic's hidden layers.
    n_layers : int, default=2
        Number of hidden layers of the critic's networks.
    max_epochs : int, default=50
        Passes over the training part.
    batch_size : int, default=128
        Rows per training batch and per evaluation chunk. Also the upper
        limit ``log(batch_size)`` of the InfoNCE estimate.
    lr : float, default=1e-3
        Adam learning rate.
    test_size : float or int, default=0.3
        Held-out fraction (float in (0, 1)) or number of rows (int).
    ema_rate : float, default=0.01
        Rate of MINE's moving average of ``E_Q[exp T]``; only used when
        ``estimator="mine"``.
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the initialisation and the batches.

    Returns
    -------
    mi : float
        The estimate on the held-out rows, in nats. Near 0 (possibly
        slightly negative) for independent variables.

    Raises
    ------
    ValueError
        If x and y have different numbers of rows, contain NaN or infinity,
        have fewer than 4 rows, or an option is unknown.

    See Also
    --------
    sk_dim.losses.dv_bound : The Donsker-Varadhan bound on critic scores.
    sk_dim.losses.infonce_bound : The InfoNCE bound on critic scores.
    sk_dim.evaluation.mine : MINE between data and its representation.
    sklearn.feature_selection.mutual_info_regression : A k-nearest-neighbour
        estimator for one feature against a target.

    References
    ----------
    .. [1] M. I. Belghazi, A. Baratin, S. Rajeswar, S. Ozair, Y. Bengio,
       A. Courville, R. D. Hjelm, "Mutual Information Neural Estimation",
       ICML 2018.
    .. [2] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.
    .. [3] B. Poole, S. Ozair, A. van den Oord, A. A. Alemi, G. Tucker, "On
       Variational Bounds of Mutual Information", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dim.mi_estimation import mutual_information
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(1000)
    >>> y = 0.8 * x + 0.6 * rng.standard_normal(1000)  # true MI: 0.51 nats
    >>> mi = mutual_information(x, y, max_epochs=20, random_state=0)
    >>> bool(0.35 < mi < 0.65)
    True
    """
    check_option("estimator", estimator, ESTIMATORS)
    check_option("critic", critic, CRITICS)
    check_positive_int("hidden_units", hidden_units)
    check_positive_int("n_layers", n_layers)
    check_positive_int("max_epochs", max_epochs)
    check_positive_int("batch_size", batch_size, minimum=2)
    check_positive_float("lr", lr)
    if not 0 < ema_rate <= 1:
        raise ValueError(f"ema_rate must be in (0, 1], got {ema_rate!r}")
    x, y = check_pair(x, y, names=("x", "y"))
    rng = check_random_state(random_state)
    train, test = split_rows(len(x), test_size, rng)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    device = resolve_device(device)

    x_train, x_test = standardize(x[train], x[test])
    y_train, y_test = standardize(y[train], y[test])
    x_train, x_test, y_train, y_test = (
        torch.as_tensor(a, device=device) for a in (x_train, x_test, y_train, y_test)
    )
    with seeded(seed, device):
        if critic == "auto":
            critic = "concat" if estimator == "mine" else "separable"
        cls = ConcatCritic if critic == "concat" else SeparableCritic
        net = cls(x.shape[1], y.shape[1], hidden_units, n_layers).to(device)
        generator = torch.Generator().manual_seed(seed)
        if estimator == "mine":
            batch_loss = _mine_loss(net, x_train, y_train, generator, ema_rate)
        else:

            def batch_loss(index: Tensor) -> Tensor:
                index = index.to(device)
                return -mi_bound(net.scores(x_train[index], y_train[index]), estimator)

        train_minibatches(
            net,
            batch_loss,
            len(x_train),
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            generator=generator,
        )
        with torch.no_grad():
            return _held_out_estimate(net, x_test, y_test, estimator, batch_size)


def _mine_loss(
    net: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator, rate: float
) -> Callable[[Tensor], Tensor]:
    """MINE's per-batch loss, keeping its moving average from one batch to the next.

    Each batch ``(x_i, y_i)`` is scored against one shuffled copy of itself,
    ``(x_perm(i), y_i)``, the permutation drawn from ``generator``.
    """
    log_ma = None  # log of MINE's moving average of E_Q[exp T]

    def batch_loss(index: Tensor) -> Tensor:
        nonlocal log_ma
        index = index.to(x.device)
        xb, yb = x[index], y[index]
        perm = torch.randperm(len(xb), generator=generator).to(x.device)
        bound, log_ma = _mine_objective(net, xb, yb, perm, log_ma, rate)
        return -bound

    return batch_loss


def _mine_objective(
    net: nn.Module, x: Tensor, y: Tensor, perm: Tensor, log_ma: Tensor | None, rate: float
) -> tuple[Tensor, Tensor]:
    """MINE's DV objective with a moving-average corrected gradient.

    Returns a tensor whose value is the mini-batch DV bound and whose
    gradient is ``grad E_P[T] - grad E_Q[exp T] / ma`` (Belghazi et al.,
    section 3.2), and the updated log moving average.
    """
    joint = net(x, y)
    marginal = net(x[perm], y)
    lme = log_mean_exp(marginal)
    batch = lme.detach()
    # Kept in log space: exp(T) overflows float32 for confident critics.
    if log_ma is None:
        log_ma = batch
    else:
        log_ma = torch.logaddexp(log_ma + math.log1p(-rate), batch + math.log(rate))
    ratio = torch.exp(lme - log_ma)  # E_Q[exp T] / ma, gradient-carrying
    # Value: log E_Q[exp T]; gradient: that of ratio.
    corrected = ratio - ratio.detach() + batch
    return joint.mean() - corrected, log_ma


def _held_out_estimate(net: nn.Module, x: Tensor, y: Tensor, estimator: str, chunk: int) -> float:
    """The reported bound on held-out rows, scored in chunks of ``chunk`` rows."""
    chunks = [
        (x[i : i + chunk], y[i : i + chunk]) for i in range(0, len(x), chunk) if len(x) - i >= 2
    ]
    if estimator == "infonce":
        # Averaged per chunk so the estimate keeps InfoNCE's log(chunk) ceiling.
        values = [infonce_bound(net.scores(xc, yc)).item() for xc, yc in chunks]
        weights = [len(xc) for xc, _ in chunks]
        return float(np.average(values, weights=weights))
    # DV pooled over chunks: the mean of T on every positive, and one
    # log-mean-exp over every in-chunk negative, so the log-mean-exp (whose
    # small-sample bias is upward) sees as many negatives as possible.
    positives, negatives = [], []
    for xc, yc in chunks:
        scores = net.scores(xc, yc)
        eye = torch.eye(len(xc), dtype=torch.bool, device=scores.device)
        positives.append(scores[eye])
        negatives.append(scores[~eye])
    return float(donsker_varadhan(torch.cat(positives), torch.cat(negatives)))


# -- validation shared with sk_dim.evaluation --------------------------------


def check_pair(a, b, *, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Validate two row-aligned sample arrays as finite float32 2-D arrays."""
    a = check_samples(a, names[0], min_samples=1)
    b = check_samples(b, names[1], min_samples=1)
    if len(a) != len(b):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of samples, "
            f"got {len(a)} and {len(b)}"
        )
    if len(a) < MIN_SAMPLES:
        raise ValueError(
            f"Estimating MI needs at least {MIN_SAMPLES} samples (2 to train the critic "
            f"and 2 to evaluate it), got {len(a)}"
        )
    return a, b


def check_samples(a, name: str, *, min_samples: int = MIN_SAMPLES) -> np.ndarray:
    """A finite float32 array of shape (n_samples, n_features); 1-D means one feature."""
    if sparse.issparse(a):  # np.asarray would wrap it in an object array
        raise TypeError(f"{name} is a sparse matrix; pass a dense array (e.g. {name}.toarray())")
    a = np.asarray(a) if not hasattr(a, "iloc") else a.to_numpy()
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    elif a.ndim > 2:
        a = a.reshape(len(a), -1)
    a = check_array(a, dtype=[np.float64, np.float32], input_name=name, ensure_min_samples=0)
    if len(a) < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples, got {len(a)}")
    return a.astype(np.float32, copy=False)


def check_option(name: str, value, options: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {options}")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    """Raise unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_positive_float(name: str, value) -> None:
    """Raise unless ``value`` is a real number (not a bool) above 0."""
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


__all__ = [
    "CRITICS",
    "ESTIMATORS",
    "ConcatCritic",
    "SeparableCritic",
    "mutual_information",
]
