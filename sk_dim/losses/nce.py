"""CMC's contrastive losses on memory-bank scores: NCE and softmax (InfoNCE).

Follows Tian, Krishnan & Isola (2019), "Contrastive Multiview Coding", and their official
code (``NCE/NCEAverage.py``, ``NCE/NCECriterion.py``): each embedding of a batch is
scored against its own sample's entry in another view's bank (the positive) and against
K entries drawn uniformly at random (the negatives); the NCE loss treats the positive as
data and the negatives as noise, the softmax loss as a (1+K)-way classification.

Shape letters used in the comments: B batch size, K number of negatives, D embedding
dimension, N number of training samples.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .precision import at_least_float32

# Added to the NCE posterior's denominator, as NCECriterion does, so a vanishing
# model probability never divides by zero.
NCE_EPS = 1e-7

LOSS_KINDS = ("nce", "softmax")


def contrast_scores(
    embedding: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Logits (B, 1+K): dot products with the positive, then the K negatives, over T.

    Computed in float32 with autocast off: dividing by a small T (0.07) magnifies the
    rounding error a bf16 dot product would carry by ~14x.

    Parameters
    ----------
    embedding : Tensor of shape (B, D)
        Query embeddings.
    positive : Tensor of shape (B, D)
        The bank row of each query's own sample (in the other view's bank).
    negatives : Tensor of shape (K, D)
        Bank rows shared as negatives by every query of the batch.
    temperature : float
        Divides the dot products.

    Returns
    -------
    Tensor of shape (B, 1+K)
        The logits, float32; column 0 holds the positives.

    See Also
    --------
    MemoryBank.sample_negatives, MemoryBank.weights : The bank rows.
    nce_loss, softmax_loss : Losses on these logits.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import contrast_scores
    >>> emb = torch.tensor([[1.0, 0.0]])
    >>> contrast_scores(emb, emb, torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), temperature=0.5)
    tensor([[ 2.,  0., -2.]])
    """
    with torch.autocast(device_type=embedding.device.type, enabled=False):
        embedding = at_least_float32(embedding)
        pos = (embedding * positive.to(embedding.dtype)).sum(1, keepdim=True)  # (B, 1)
        neg = embedding @ negatives.to(embedding.dtype).T  # (B, K)
    return torch.cat([pos, neg], dim=1) / temperature  # (B, 1+K)


def estimate_log_z(logits: torch.Tensor, n_samples: int) -> torch.Tensor:
    """log Z with Z = mean(exp(logits)) * N, as a 0-d float32 tensor without gradient.

    The paper's code takes this Monte-Carlo estimate of the partition function
    sum_n exp(s_n) from the first batch (``Z = out.mean() * nLem`` in NCEAverage);
    working with logsumexp avoids overflowing exp.

    Parameters
    ----------
    logits : Tensor
        Scores of any shape (typically (B, K+1)).
    n_samples : int
        Number of training samples N.

    Returns
    -------
    Tensor of shape ()
        log Z, float32.

    See Also
    --------
    NCELoss : Fixes Z from its first batch.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import estimate_log_z
    >>> round(estimate_log_z(torch.zeros(4, 5), n_samples=100).exp().item(), 3)
    100.0
    """
    logits = at_least_float32(logits.detach())
    return (
        torch.logsumexp(logits.reshape(-1), dim=0) - math.log(logits.numel()) + math.log(n_samples)
    )


def nce_loss(logits: torch.Tensor, n_samples: int, z: torch.Tensor | float) -> torch.Tensor:
    """The paper's NCE loss (Eq. 12 / NCECriterion) for ``logits`` (B, K+1), positive first.

    With P = exp(logits) / Z the model's probability and Pn = 1 / N the uniform noise,
    a data sample is told apart from noise with posterior D = P / (P + K*Pn + eps):

        loss = -mean_b [ log D(pos) + sum_neg log(K*Pn / (P_neg + K*Pn + eps)) ].

    Evaluated in log space (log P = logits - log Z, and logaddexp for log(P + c)), which
    is the same quantity as the official code's but cannot overflow or hit log(0).

    Parameters
    ----------
    logits : Tensor of shape (B, K+1)
        Scores, the positive in column 0.
    n_samples : int
        Number of training samples N (the noise distribution is uniform over them).
    z : Tensor or float
        The normalising constant Z (see :func:`estimate_log_z`).

    Returns
    -------
    Tensor of shape ()
        The loss, to minimize.

    See Also
    --------
    NCELoss : This loss with Z fixed from the first batch.
    softmax_loss : The InfoNCE alternative, which needs no Z.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).
    .. [3] M. Gutmann, A. Hyvarinen, "Noise-contrastive estimation: A new
       estimation principle for unnormalized statistical models", AISTATS 2010.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import nce_loss
    >>> logits = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    >>> bool(nce_loss(logits, n_samples=100, z=10.0) > 0)
    True
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (B, K+1) with K >= 1, got {tuple(logits.shape)}")
    logits = at_least_float32(logits)  # bf16 would round log Z (~ log N, ~14) too coarsely
    k = logits.shape[1] - 1
    log_z = torch.as_tensor(z, dtype=logits.dtype, device=logits.device).log()
    log_p = logits - log_z  # (B, K+1)
    noise_mass = k / n_samples  # K * Pn
    log_denominator = torch.logaddexp(log_p, log_p.new_tensor(math.log(noise_mass + NCE_EPS)))
    log_d_pos = log_p[:, 0] - log_denominator[:, 0]  # (B,)
    log_d_neg = math.log(noise_mass) - log_denominator[:, 1:]  # (B, K)
    return -(log_d_pos + log_d_neg.sum(dim=1)).mean()


def softmax_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the K+1 candidates with the positive at index 0 (NCESoftmaxLoss).

    Parameters
    ----------
    logits : Tensor of shape (B, K+1)
        Scores, the positive in column 0.

    Returns
    -------
    Tensor of shape ()
        The mean cross-entropy, to minimize.

    See Also
    --------
    nce_loss : The paper's NCE loss.
    sk_dim.losses.infonce_bound : The same objective as an MI bound.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import softmax_loss
    >>> round(softmax_loss(torch.zeros(2, 4)).item(), 4)  # log 4
    1.3863
    """
    logits = at_least_float32(logits)  # (B, K+1)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # (B,)
    return F.cross_entropy(logits, target)


class NCELoss(nn.Module):
    """NCE loss that owns its normalising constant Z.

    Z is estimated once, from the first batch it sees, and then held fixed (as the paper's
    code does with ``params[2]``), so that the loss does not chase a moving target.
    It is training state: it lives in the ``log_z`` buffer, so ``state_dict`` saves it and
    a resumed run keeps the same constant. The buffer is NaN until estimated. Storing
    log Z rather than Z keeps the value finite even if the module is cast to float16.

    Parameters
    ----------
    n_samples : int
        Number of training samples N.

    Attributes
    ----------
    log_z : Tensor of shape ()
        log Z, NaN until the first forward.

    See Also
    --------
    nce_loss : The loss computed.
    estimate_log_z : How Z is estimated.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import NCELoss
    >>> loss = NCELoss(n_samples=100)
    >>> loss.is_estimated
    False
    >>> _ = loss(torch.zeros(4, 11))
    >>> round(loss.z, 3)
    100.0
    """

    log_z: torch.Tensor  # () float32

    def __init__(self, n_samples: int) -> None:
        super().__init__()
        self.n_samples = int(n_samples)
        self.register_buffer("log_z", torch.tensor(float("nan")))

    @property
    def is_estimated(self) -> bool:
        return bool(torch.isfinite(self.log_z))

    @property
    def z(self) -> float:
        """The constant Z (NaN until the first forward)."""
        return math.exp(self.log_z.item()) if self.is_estimated else float("nan")

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Loss () for ``logits`` (B, K+1); the first call also fixes Z from these logits."""
        if not self.is_estimated:
            with torch.no_grad():
                self.log_z.copy_(estimate_log_z(logits, self.n_samples))
        return nce_loss(logits, self.n_samples, self.log_z.exp())
