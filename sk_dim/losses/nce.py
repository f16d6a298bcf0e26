"""Memory-bank noise-contrastive estimation for Contrastive Multiview Coding (CMC).

Follows Tian, Krishnan & Isola (2019), "Contrastive Multiview Coding", and their official
code (``NCE/NCEAverage.py``, ``NCE/NCECriterion.py``): every view keeps a bank holding one
slowly updated embedding per training sample, and each embedding of a batch is scored
against its own sample's entry in another view's bank (the positive) and against K
entries drawn uniformly at random (the negatives).

Shape letters used in the comments: B batch size, K number of negatives, D embedding
dimension, N number of training samples, V number of views.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "GRAPHS",
    "LOSS_KINDS",
    "MemoryBank",
    "MultiviewContrast",
    "NCELoss",
    "contrast_scores",
    "estimate_log_z",
    "estimate_z",
    "nce_loss",
    "softmax_loss",
    "view_pairs",
]

# Added to the NCE posterior's denominator, as NCECriterion does, so a vanishing
# model probability never divides by zero.
NCE_EPS = 1e-7

LOSS_KINDS = ("nce", "softmax")
GRAPHS = ("core", "full")


def _check_choice(name: str, value: str, options: Sequence[str]) -> None:
    """Raise a ValueError listing the valid options when ``value`` is not one of them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


def _check_n_negatives(n_negatives: int, n_samples: int) -> None:
    """K must be positive and below N: the bank can't offer more distinct negatives."""
    if not 1 <= n_negatives < n_samples:
        raise ValueError(
            f"n_negatives must satisfy 1 <= n_negatives < n_samples={n_samples}, "
            f"got n_negatives={n_negatives}"
        )


# --------------------------------------------------------------------------- memory bank


class MemoryBank(nn.Module):
    """One bank of per-sample embeddings for each view, updated by a momentum average.

    The bank is a buffer (not a parameter): it is saved in ``state_dict`` and moved by
    ``.to()``, but no gradient ever flows into it; the optimiser only sees the encoders.

    Parameters
    ----------
    n_samples : int
        Number of training samples N (rows of each bank).
    dim : int
        Embedding size D.
    n_views : int, default=2
        Number of views V (one bank each).
    momentum : float, default=0.5
        Weight of the old entry in :meth:`update`, in ``[0, 1]``.
    generator : torch.Generator, optional
        Seeds the initial entries (uniform, rows of about unit norm).

    Attributes
    ----------
    memory : Tensor of shape (V, N, D)
        The banks, a buffer.

    See Also
    --------
    MultiviewContrast : Scores embeddings against the banks and updates them.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import MemoryBank
    >>> bank = MemoryBank(n_samples=10, dim=4, generator=torch.Generator().manual_seed(0))
    >>> bank.memory.shape
    torch.Size([2, 10, 4])
    >>> noise = bank.sample_negatives(k=5)
    >>> noise.shape, bank.weights(0, noise).shape
    (torch.Size([5]), torch.Size([5, 4]))
    >>> bank.update(0, torch.tensor([3]), torch.ones(1, 4))
    >>> round(bank.memory[0, 3].norm().item(), 4)  # entries stay unit length
    1.0
    """

    memory: torch.Tensor  # (V, N, D)

    def __init__(
        self,
        n_samples: int,
        dim: int,
        n_views: int = 2,
        momentum: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_samples < 1 or dim < 1 or n_views < 1:
            raise ValueError(
                f"n_samples, dim and n_views must be positive, got n_samples={n_samples}, "
                f"dim={dim}, n_views={n_views}"
            )
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.register_buffer("memory", self._initial_memory(n_views, n_samples, dim, generator))

    @staticmethod
    def _initial_memory(
        n_views: int, n_samples: int, dim: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Uniform in [-a, a] with a = 1/sqrt(D/3), so that E[||row||^2] = D * a^2 / 3 = 1.

        Rows then start with roughly unit norm, like the L2-normalised embeddings that
        will replace them, so the first scores are on the right scale.
        """
        stdv = 1.0 / math.sqrt(dim / 3)
        u = torch.rand(n_views, n_samples, dim, generator=generator)  # (V, N, D) in [0, 1)
        return u.mul_(2 * stdv).sub_(stdv)

    @property
    def n_views(self) -> int:
        return self.memory.shape[0]

    @property
    def n_samples(self) -> int:
        return self.memory.shape[1]

    @property
    def dim(self) -> int:
        return self.memory.shape[2]

    def sample_negatives(
        self,
        k: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.LongTensor:
        """Indices (K,) of ``k`` bank rows drawn uniformly with replacement.

        The official code draws K noise indices per positive with an alias table built on
        uniform probabilities, i.e. uniform sampling with replacement. Here one draw of K
        is shared by every positive of the batch (as MoCo's queue is): each positive still
        meets K uniform negatives, so the loss and its gradient keep their expectation,
        but the bank is read K times per batch instead of B x K times, which made the
        gather and the scoring cost more than the encoders. A negative may coincide with
        a positive, as in the paper's code.
        """
        _check_n_negatives(k, self.n_samples)
        # Draw on the generator's device (randint requires it), then move to the batch's.
        draw_device = generator.device if generator is not None else device
        noise = torch.randint(self.n_samples, (k,), generator=generator, device=draw_device)
        return noise.to(device) if device is not None else noise  # (K,)

    def weights(self, view: int, idx: torch.Tensor) -> torch.Tensor:
        """Bank rows ``(*idx.shape, D)`` of ``view`` at ``idx``, cut from the graph."""
        rows = torch.index_select(self.memory[view], 0, idx.reshape(-1).long())  # (numel, D)
        return rows.view(*idx.shape, self.dim).detach()

    @torch.no_grad()
    def update(self, view: int, index: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Blend rows ``index`` (B,) of ``view`` towards ``embeddings`` (B, D), in place.

        new = m * old + (1 - m) * embedding, re-normalised to unit length so that bank
        entries stay on the same sphere as the embeddings they are compared with.
        If ``index`` repeats a sample, which of the duplicates is written is unspecified.
        """
        bank = self.memory[view]  # (N, D), a view sharing storage with the buffer
        index = index.reshape(-1).long()  # (B,); index_copy_ wants int64
        old = torch.index_select(bank, 0, index)  # (B, D)
        new = old.mul(self.momentum).add_(
            embeddings.detach().to(old.dtype), alpha=1 - self.momentum
        )
        new = F.normalize(new, dim=1, eps=1e-12)  # (B, D)
        bank.index_copy_(0, index, new)


# ---------------------------------------------------------------------------- scoring


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
        embedding = embedding.float()
        pos = (embedding * positive.float()).sum(1, keepdim=True)  # (B, 1)
        neg = embedding @ negatives.float().T  # (B, K)
    return torch.cat([pos, neg], dim=1) / temperature  # (B, 1+K)


# ------------------------------------------------------------------ normalising constant


def estimate_log_z(logits: torch.Tensor, n_samples: int) -> torch.Tensor:
    """log Z with Z = mean(exp(logits)) * N, as a 0-d float32 tensor without gradient.

    The paper's code takes this Monte-Carlo estimate of the partition function
    sum_n exp(s_n) from the first batch; working with logsumexp avoids overflowing exp.

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
    estimate_z : The same, exponentiated, as a float.
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
    logits = logits.detach().float()
    return (
        torch.logsumexp(logits.reshape(-1), dim=0) - math.log(logits.numel()) + math.log(n_samples)
    )


def estimate_z(logits: torch.Tensor, n_samples: int) -> float:
    """Z = mean(exp(logits)) * N (``Z = out.mean() * nLem`` in NCEAverage), as a float.

    Parameters
    ----------
    logits : Tensor
        Scores of any shape (typically (B, K+1)).
    n_samples : int
        Number of training samples N.

    Returns
    -------
    float
        The normalising constant Z.

    See Also
    --------
    estimate_log_z : The same in log space, as a tensor.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.losses import estimate_z
    >>> round(estimate_z(torch.zeros(2, 3), n_samples=10), 6)
    10.0
    """
    return math.exp(estimate_log_z(logits, n_samples).item())


# ----------------------------------------------------------------------------- losses


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
        The normalising constant Z (see :func:`estimate_z`).

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
    logits = logits.float()  # bf16 would round log Z (~ log N, around 14) too coarsely
    k = logits.shape[1] - 1
    log_z = torch.as_tensor(z, dtype=torch.float32, device=logits.device).log()
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
    logits = logits.float()  # (B, K+1)
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
        return nce_loss(logits, self.n_samples, self.log_z.float().exp())


# -------------------------------------------------------------------- multiview contrast


def view_pairs(n_views: int, graph: str) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, that the objective contrasts.

    "core": view 0 against each other view, L = sum_j L(V0, Vj), which prioritises
    what view 0 shares with the rest; "full": every pair, L = sum over i < j of L(Vi, Vj).

    Parameters
    ----------
    n_views : int
        Number of views V.
    graph : {"core", "full"}
        Which pairs.

    Returns
    -------
    list of (int, int)
        V - 1 pairs for ``"core"``, V (V - 1) / 2 for ``"full"``.

    See Also
    --------
    MultiviewContrast : Contrasts these pairs in both directions.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> from sk_dim.losses import view_pairs
    >>> view_pairs(3, "core")
    [(0, 1), (0, 2)]
    >>> view_pairs(3, "full")
    [(0, 1), (0, 2), (1, 2)]
    """
    _check_choice("graph", graph, GRAPHS)
    if graph == "core":
        return [(0, j) for j in range(1, n_views)]
    return [(i, j) for i in range(n_views) for j in range(i + 1, n_views)]


def _direction_key(query_view: int, bank_view: int) -> str:
    """Name of the term where ``query_view``'s embedding is scored against ``bank_view``'s bank."""
    return f"{query_view}_{bank_view}"


class MultiviewContrast(nn.Module):
    """CMC objective over a graph of view pairs, with a memory bank per view.

    For each pair (i, j) the loss is symmetric: view i's embeddings against bank j plus
    view j's embeddings against bank i. One set of indices (positive + K negatives) is
    drawn per step and shared by every term, as the official code does. Scores use the
    banks as they were before this step; the banks are updated only afterwards, and only
    in training mode.

    Parameters
    ----------
    bank : MemoryBank
        The banks, one per view (at least 2).
    n_negatives : int
        Negatives K per embedding, ``1 <= K < n_samples``.
    temperature : float, default=0.07
        Divides the scores.
    loss : {"nce", "softmax"}, default="nce"
        The loss of each direction.
    graph : {"core", "full"}, default="core"
        Pairs of views contrasted (:func:`view_pairs`).
    queue : bool, default=False
        Use the bank as a first-in first-out queue of recent embeddings, as
        MoCo does, rather than one entry per training sample: positives are
        then the other views' embeddings of the same batch (detached, as bank
        entries are), and each step overwrites the oldest entries (give the
        bank ``momentum=0``). Training on data seen once, batch by batch
        (``partial_fit``), needs it: there is no per-sample entry to look up.

    Attributes
    ----------
    pairs : list of (int, int)
        The contrasted pairs.
    nce : torch.nn.ModuleDict
        One :class:`NCELoss` per direction ``"i_j"`` (empty for ``"softmax"``).

    See Also
    --------
    sk_dim.CMCTransformer : The estimator built on this objective.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised feature learning via
       non-parametric instance discrimination", CVPR 2018 (memory bank, NCE).

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from sk_dim.losses import MemoryBank, MultiviewContrast
    >>> g = torch.Generator().manual_seed(0)
    >>> contrast = MultiviewContrast(MemoryBank(20, 8, generator=g), n_negatives=5)
    >>> views = [F.normalize(torch.randn(4, 8, generator=g), dim=1) for _ in range(2)]
    >>> total, terms = contrast(views, torch.arange(4), generator=g)
    >>> total.shape, sorted(terms)
    (torch.Size([]), ['0_1', '1_0'])
    """

    # Set during a fit spread over several processes (each with its own batches)
    # to a function concatenating a tensor across them, e.g.
    # ``accelerate.Accelerator.gather``: each process then applies every process's
    # bank updates, and the banks stay identical.
    gather_across_processes: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(
        self,
        bank: MemoryBank,
        n_negatives: int,
        temperature: float = 0.07,
        loss: str = "nce",
        graph: str = "core",
        queue: bool = False,
    ) -> None:
        super().__init__()
        _check_choice("loss", loss, LOSS_KINDS)
        _check_choice("graph", graph, GRAPHS)
        if bank.n_views < 2:
            raise ValueError(f"contrasting needs at least 2 views, the bank has {bank.n_views}")
        _check_n_negatives(n_negatives, bank.n_samples)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.bank = bank
        self.n_negatives = int(n_negatives)
        self.temperature = float(temperature)
        self.loss_kind = loss
        self.graph = graph
        self.pairs = view_pairs(bank.n_views, graph)
        self.queue = bool(queue)
        # Where the next embeddings go when the bank is a queue.
        self.register_buffer("queue_head", torch.zeros((), dtype=torch.long))
        # One Z per scoring direction, as the official code keeps Z_l and Z_ab apart:
        # the two directions score different encoders against different banks.
        self.nce = nn.ModuleDict()
        if loss == "nce":
            for i, j in self.pairs:
                for q, b in ((i, j), (j, i)):
                    self.nce[_direction_key(q, b)] = NCELoss(bank.n_samples)

    def _check_inputs(self, embeddings: Sequence[torch.Tensor], index: torch.Tensor) -> None:
        if len(embeddings) != self.bank.n_views:
            raise ValueError(f"expected {self.bank.n_views} views, got {len(embeddings)}")
        expected = (index.shape[0], self.bank.dim)
        for v, emb in enumerate(embeddings):
            if tuple(emb.shape) != expected:
                raise ValueError(
                    f"embedding of view {v} must have shape (B, D)={expected}, "
                    f"got {tuple(emb.shape)}"
                )

    def _direction_loss(self, key: str, logits: torch.Tensor) -> torch.Tensor:
        """Loss () of one direction from its logits (B, K+1)."""
        if self.loss_kind == "nce":
            return self.nce[key](logits)
        return softmax_loss(logits)

    def forward(
        self,
        embeddings: Sequence[torch.Tensor],
        index: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss () and per-direction losses for logging.

        ``embeddings``: V tensors (B, D), L2-normalised; ``index``: (B,) the samples'
        positions in the training set (their bank rows). The dict maps "i_j" (view i's
        embedding scored against view j's bank) to that term's loss as a float.

        In eval mode (held-out samples, which have no bank rows) and with ``queue``,
        the positive of view i's embedding is view j's embedding of the same sample.
        """
        index = index.reshape(-1).long()  # (B,)
        self._check_inputs(embeddings, index)
        # One draw of negatives for the batch, shared by all directions as in the paper's code.
        noise = self.bank.sample_negatives(
            self.n_negatives, generator=generator, device=index.device
        )  # (K,)

        losses: dict[str, torch.Tensor] = {}
        for i, j in self.pairs:
            for q, b in ((i, j), (j, i)):
                key = _direction_key(q, b)
                if self.queue or not self.training:
                    positive = embeddings[b].detach()  # (B, D)
                else:
                    positive = self.bank.weights(b, index)  # (B, D)
                logits = contrast_scores(
                    embeddings[q],
                    positive,
                    self.bank.weights(b, noise),  # (K, D)
                    self.temperature,
                )  # (B, 1+K)
                losses[key] = self._direction_loss(key, logits)  # ()
        stacked = torch.stack(list(losses.values()))  # (2 * n_pairs,)
        total = stacked.sum()
        # One device sync for all logged values instead of one per term.
        terms = dict(zip(losses, stacked.detach().tolist(), strict=False))

        if self.training:
            gather = self.gather_across_processes
            if gather is not None:
                index = gather(index)
                embeddings = [gather(emb.detach()) for emb in embeddings]
            if self.queue:  # overwrite the oldest entries
                rows = torch.arange(len(index), device=index.device)
                index = (self.queue_head + rows) % self.bank.n_samples
                self.queue_head.copy_((self.queue_head + len(rows)) % self.bank.n_samples)
            for v, emb in enumerate(embeddings):
                self.bank.update(v, index, emb)
        return total, terms
