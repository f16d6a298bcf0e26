"""Lower bounds on mutual information, computed from critic scores.

Every function takes a score tensor laid out the same way::

    scores[i, j, l] = T(y_i, x_j at location l)      # (N, N, L)

so the diagonal ``i == j`` holds the *positive* pairs (drawn from the joint
distribution) and every off-diagonal entry is a *negative* pair (drawn from
the product of marginals). Using every other sample of the batch as a
negative, rather than one shifted copy of the batch, gives N - 1 negatives
per positive at no extra critic cost. ``L`` is 1 for global MI and the number
of locations of the local feature map for local MI.

Each function returns a scalar estimate in nats to *maximize*; a training
loss is its negative. All three are 0 for the optimal critic of independent
variables (``T = 0``; any constant for DV and InfoNCE). Only torch is
imported, so the bounds can be reused outside the estimators.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import at_least_float32

BOUNDS = ("jsd", "dv", "infonce")


def _split(scores: Tensor) -> tuple[Tensor, Tensor]:
    """Return positive (N, L) and negative (N, N - 1, L) scores."""
    if scores.dim() == 2:
        scores = scores.unsqueeze(-1)
    n = scores.shape[0]
    if scores.dim() != 3 or scores.shape[1] != n:
        raise ValueError(f"scores must be (N, N) or (N, N, L), got {tuple(scores.shape)}")
    if n < 2:
        raise ValueError("MI bounds need at least 2 samples: negatives are the other samples")
    # Critics may score in bfloat16/float16 under autocast; softplus and
    # logsumexp over N*N*L scores need float32 (float64 stays float64).
    scores = at_least_float32(scores)
    positive = scores.diagonal(dim1=0, dim2=1).T  # (N, L)
    # The off-diagonal entries in row-major order without a boolean mask (whose
    # indexing waits for the device and breaks torch.compile graphs): in the
    # flattened (N*N, L) scores the diagonal entries are N + 1 apart.
    flat = scores.flatten(0, 1)[1:].view(n - 1, n + 1, -1)[:, :-1]  # (N-1, N, L)
    negative = flat.reshape(n, n - 1, -1)  # (N, N - 1, L)
    return positive, negative


def jsd_bound(scores: Tensor) -> Tensor:
    """Jensen-Shannon MI estimator, softplus form (Hjelm et al., eq. 4), in nats.

    ``2 log 2 + E_P[-softplus(-T)] - E_Q[softplus(T)]``: the paper's estimator
    plus the constant ``2 log 2`` that the reference implementation adds (its
    ``"JSD"`` measure), so that an uninformative critic scores 0. It is a
    lower bound on twice the Jensen-Shannon divergence between the joint and
    the product of the marginals, not on the KL mutual information: it is at
    most ``2 log 2`` (about 1.386 nats) however dependent the variables are,
    but it is monotone in the JS divergence and has well-behaved gradients,
    which is why the paper prefers it. The constant does not change the
    gradients.

    Parameters
    ----------
    scores : Tensor of shape (N, N) or (N, N, L)
        Critic scores, positives on the diagonal (see the module docstring).

    Returns
    -------
    Tensor of shape ()
        The estimate, to maximize: 0 for an uninformative critic scoring 0
        everywhere, at most ``2 log 2``; negative only for a critic worse
        than uninformative.

    See Also
    --------
    dv_bound : Donsker-Varadhan bound, a true lower bound with noisier gradients.
    infonce_bound : InfoNCE bound, capped at ``log N``.
    mi_bound : Dispatch by name.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.
    .. [2] S. Nowozin, B. Cseke, R. Tomioka, "f-GAN: Training generative
       neural samplers using variational divergence minimization", NeurIPS 2016.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import jsd_bound
    >>> abs(jsd_bound(torch.zeros(4, 4)).item()) < 1e-6
    True
    >>> round(jsd_bound(100 * (2 * torch.eye(4) - 1)).item(), 4)  # 2 log 2
    1.3863
    """
    positive, negative = _split(scores)
    return 2 * math.log(2) - F.softplus(-positive).mean() - F.softplus(negative).mean()


def dv_bound(scores: Tensor) -> Tensor:
    """Donsker-Varadhan bound: ``E_P[T] - log E_Q[exp T]``.

    A lower bound on the KL mutual information (the MINE objective). The
    ``log E_Q[exp T]`` term is estimated from the batch's negatives, which
    makes its gradients high-variance.

    Parameters
    ----------
    scores : Tensor of shape (N, N) or (N, N, L)
        Critic scores, positives on the diagonal.

    Returns
    -------
    Tensor of shape ()
        The bound in nats, to maximize.

    See Also
    --------
    donsker_varadhan : The same bound from positive and negative scores apart.
    jsd_bound : Jensen-Shannon estimator, more stable.
    infonce_bound : InfoNCE bound.
    sk_dim.mi_estimation.mutual_information : MI of two samples with a trained critic.

    References
    ----------
    .. [1] M. D. Donsker, S. R. S. Varadhan, "Asymptotic evaluation of certain
       Markov process expectations for large time, IV", Comm. Pure Appl.
       Math., 1983.
    .. [2] M. I. Belghazi et al., "Mutual information neural estimation",
       ICML 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import dv_bound
    >>> dv_bound(torch.zeros(4, 4)).item()
    0.0
    >>> round(dv_bound(torch.eye(4)).item(), 4)
    1.0
    """
    return donsker_varadhan(*_split(scores))


def donsker_varadhan(positive: Tensor, negative: Tensor) -> Tensor:
    """The Donsker-Varadhan bound ``E_P[T] - log E_Q[exp T]`` from separate scores.

    :func:`dv_bound` takes a critic's ``(N, N)`` or ``(N, N, L)`` score
    matrix and calls this with its diagonal and off-diagonal entries; this
    form takes positive and negative scores as they come (pooled chunks,
    shuffled copies), in any shape and number.

    Parameters
    ----------
    positive : Tensor
        Scores of pairs drawn from the joint distribution P.
    negative : Tensor
        Scores of pairs drawn from the product of the marginals Q.

    Returns
    -------
    Tensor of shape ()
        The bound in nats, in the scores' dtype.

    See Also
    --------
    dv_bound : The bound from a score matrix, positives on its diagonal.
    log_mean_exp : The ``log E_Q[exp T]`` term.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import donsker_varadhan
    >>> donsker_varadhan(torch.ones(3), torch.zeros(6)).item()
    1.0
    """
    return positive.mean() - log_mean_exp(negative)


def log_mean_exp(scores: Tensor) -> Tensor:
    """``log mean exp`` of all the scores, computed stably (a logsumexp).

    Parameters
    ----------
    scores : Tensor
        Any shape; every entry counts once.

    Returns
    -------
    Tensor of shape ()
        ``log(exp(scores).mean())``, without overflow for large scores.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import log_mean_exp
    >>> round(log_mean_exp(torch.tensor([1000.0, 1000.0])).item(), 3)  # exp(1000) overflows
    1000.0
    """
    return torch.logsumexp(scores.flatten(), 0) - math.log(scores.numel())


def infonce_bound(scores: Tensor) -> Tensor:
    """InfoNCE bound (van den Oord et al., 2018), as used in DIM.

    Each positive ``(i, l)`` is classified against every negative of its
    row, ``scores[i, j != i, :]`` (all locations of all other samples), so
    the bound is at most ``log(1 + (N - 1) * L)``; ``log N`` for global MI.

    Parameters
    ----------
    scores : Tensor of shape (N, N) or (N, N, L)
        Critic scores, positives on the diagonal.

    Returns
    -------
    Tensor of shape ()
        The bound in nats, to maximize; 0 for an uninformative critic.

    See Also
    --------
    jsd_bound : Jensen-Shannon estimator.
    dv_bound : Donsker-Varadhan bound, not capped by the batch size.

    References
    ----------
    .. [1] A. van den Oord, Y. Li, O. Vinyals, "Representation learning with
       contrastive predictive coding", arXiv:1807.03748, 2018.
    .. [2] B. Poole et al., "On variational bounds of mutual information",
       ICML 2019.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> from sk_dim.losses import infonce_bound
    >>> abs(infonce_bound(torch.zeros(8, 8)).item()) < 1e-6
    True
    >>> round(infonce_bound(100 * torch.eye(8)).item(), 4) == round(math.log(8), 4)
    True
    """
    positive, negative = _split(scores)
    n, n_neg, n_loc = negative.shape
    # Negatives are shared by all L positives of a row: logsumexp them once.
    negative_lse = torch.logsumexp(negative.reshape(n, -1), dim=1, keepdim=True)  # (N, 1)
    log_partition = torch.logaddexp(positive, negative_lse)  # (N, L)
    return (positive - log_partition).mean() + math.log(1 + n_neg * n_loc)


_BOUNDS = {"jsd": jsd_bound, "dv": dv_bound, "infonce": infonce_bound}


def mi_bound(scores: Tensor, estimator: str) -> Tensor:
    """Dispatch to the bound named ``estimator`` (one of ``BOUNDS``).

    Parameters
    ----------
    scores : Tensor of shape (N, N) or (N, N, L)
        Critic scores, positives on the diagonal.
    estimator : {"jsd", "dv", "infonce"}
        The bound to compute.

    Returns
    -------
    Tensor of shape ()
        The bound, to maximize.

    See Also
    --------
    jsd_bound, dv_bound, infonce_bound : The bounds.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import mi_bound
    >>> scores = torch.randn(6, 6, 4, generator=torch.Generator().manual_seed(0))
    >>> mi_bound(scores, "infonce").shape
    torch.Size([])
    """
    try:
        bound = _BOUNDS[estimator]
    except KeyError:
        raise ValueError(f"Unknown MI estimator {estimator!r}; expected one of {BOUNDS}") from None
    return bound(scores)
