"""The one training loop of the small networks beside the estimators.

The probes and fine-tuning of :mod:`sk_dim.evaluation`, its neural dependency
measure and :func:`sk_dim.mi_estimation.mutual_information` all train a small
torch network the same way: Adam over shuffled mini-batches of row indices
drawn from a seeded generator, minimising a per-batch loss. The loop, its
batches and the standardisation of their inputs live here, once.

Constant columns follow the package's one rule
(:data:`sk_dim.views.makers.RELATIVE_CONSTANT_STD`, as the networks' own input
scaling): see :func:`column_scale`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from numbers import Integral, Real

import numpy as np
import torch
from torch import Tensor, nn

from .views.makers import RELATIVE_CONSTANT_STD


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled row indices in batches; a trailing batch of one row is dropped.

    Batch norm and in-batch negatives both need at least two rows. The
    permutation is drawn from ``generator`` when the first batch is taken.

    Parameters
    ----------
    n : int
        Number of rows.
    batch_size : int
        Rows per batch (the last batch may have fewer).
    generator : torch.Generator
        Source of the permutation.

    Yields
    ------
    index : torch.Tensor of int64
        The rows of one batch, at least two.
    """
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        if len(index) >= 2:
            yield index


def train_minibatches(
    module: nn.Module,
    batch_loss: Callable[[Tensor], Tensor],
    n_samples: int,
    *,
    max_epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    weight_decay: float = 0.0,
    params: Iterable | None = None,
) -> list[float]:
    """Train ``module`` with Adam on shuffled mini-batches of ``n_samples`` rows.

    Every epoch draws a new permutation from ``generator`` (see
    :func:`batches`; ``batch_size`` is capped at ``n_samples``) and, for each
    batch of row indices (a CPU ``LongTensor``), takes one Adam step on
    ``batch_loss(index)``. ``batch_loss`` indexes its own data and may draw
    from the same generator (negatives, shuffles) or keep state between
    steps (MINE's moving average); the draws interleave with the
    permutations in the order the loop calls it. The module is in training
    mode during the loop and in eval mode after it.

    Parameters
    ----------
    module : torch.nn.Module
        The network trained (its mode is switched).
    batch_loss : callable
        ``batch_loss(index) -> Tensor``: the scalar loss of the rows ``index``.
    n_samples : int
        Number of training rows.
    max_epochs : int
        Passes over the rows.
    batch_size : int
        Rows per batch.
    lr : float
        Adam learning rate (of the groups that set none).
    generator : torch.Generator
        Source of the batch order.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    params : iterable of parameters or of parameter groups, default=None
        What Adam trains; None means ``module.parameters()``.

    Returns
    -------
    loss_curve : list of float
        The mean loss of each epoch, weighted by batch size.
    """
    if n_samples < 2:
        raise ValueError(f"Training needs at least 2 rows, got {n_samples}")
    params = module.parameters() if params is None else params
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    size = min(batch_size, n_samples)
    loss_curve = []
    module.train()
    for _ in range(max_epochs):
        losses, sizes = [], []
        for index in batches(n_samples, size, generator):
            loss = batch_loss(index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            sizes.append(len(index))
        # One transfer per epoch, not one device sync per step.
        total = 0.0
        for value, count in zip(torch.stack(losses).tolist(), sizes, strict=True):
            total += value * count
        loss_curve.append(total / sum(sizes))
    module.eval()
    return loss_curve


def column_scale(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The divisor that standardises each column: its standard deviation, or 1 if constant.

    A column is constant when its standard deviation is at most
    ``RELATIVE_CONSTANT_STD`` (1e-8) times the largest absolute column mean (at
    least 1): the rule of the networks' input scaling
    (:func:`sk_dim.views.makers.nonzero_std`). Dividing it by its standard
    deviation would blow rounding noise up; with a scale of 1, standardising only
    centres it (to zeros).

    Parameters
    ----------
    std : ndarray
        Standard deviations of the columns, computed in float64 in two passes
        (the mean first), so that a column of identical values has exactly 0.
    mean : ndarray
        The column means.

    Returns
    -------
    scale : ndarray of float64, shaped like ``std``
    """
    floor = RELATIVE_CONSTANT_STD * max(1.0, float(np.abs(mean).max(initial=0.0)))
    return np.where(std > floor, std, 1.0)


def standardization(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and scale of ``train`` in float64; constant columns get scale 1.

    Parameters
    ----------
    train : ndarray of shape (n_samples, n_features)
        The training rows whose statistics standardise every set.

    Returns
    -------
    mean : ndarray of shape (n_features,)
        Column means, float64.
    scale : ndarray of shape (n_features,)
        :func:`column_scale` of the column standard deviations, float64.
    """
    mean = train.mean(0, dtype=np.float64)
    return mean, column_scale(train.std(0, dtype=np.float64), mean)


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale columns with the training part's :func:`standardization`, as float32.

    Parameters
    ----------
    train : ndarray of shape (n_samples, n_features)
        The rows whose statistics are used.
    *others : ndarray of shape (n, n_features)
        More sets (held-out rows), scaled with the same statistics.

    Returns
    -------
    scaled : tuple of ndarray of float32
        ``train`` and then each of ``others``, standardised.
    """
    mean, scale = standardization(train)
    return tuple(((a - mean) / scale).astype(np.float32) for a in (train, *others))


def split_rows(n: int, test_size: float | int, rng: np.random.RandomState):
    """Shuffled (train, test) row indices, each with at least 2 rows.

    Parameters
    ----------
    n : int
        Number of rows.
    test_size : float in (0, 1) or int
        Fraction or number of rows held out.
    rng : numpy.random.RandomState
        Source of the shuffle.

    Returns
    -------
    train, test : ndarray of int
        Row indices of the two parts.

    Raises
    ------
    ValueError
        If ``test_size`` is neither, or leaves fewer than 2 rows in a part.
    """
    if isinstance(test_size, Integral) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, Real) and 0 < test_size < 1:
        n_test = round(test_size * n)
    else:
        raise ValueError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if not 2 <= n_test <= n - 2:
        raise ValueError(
            f"test_size={test_size!r} leaves {n_test} of {n} samples for evaluation; "
            "both the training and the held-out part need at least 2"
        )
    order = rng.permutation(n)
    return order[n_test:], order[:n_test]
