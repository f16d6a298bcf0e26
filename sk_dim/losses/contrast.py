"""CMC's multi-view contrast: which pairs of views score against which memory banks.

With V views, the "core" graph contrasts view 0 with every other view and the
"full" graph every pair (Tian, Krishnan & Isola, 2019, section 3.2); each pair
is scored in both directions, view i's embedding against view j's bank, with the
losses of :mod:`sk_dim.losses.nce`, and the banks are updated after scoring.

Shape letters used in the comments: B batch size, K number of negatives, D embedding
dimension, N number of training samples, V number of views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .memory_bank import MemoryBank, check_n_negatives
from .nce import LOSS_KINDS, NCELoss, contrast_scores, softmax_loss
from .precision import at_least_float32

GRAPHS = ("core", "full")


def _check_choice(name: str, value: str, options: Sequence[str]) -> None:
    """Raise a ValueError listing the valid options when ``value`` is not one of them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


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
        Negatives K per embedding, ``1 <= K < n_samples``; with ``queue``, the
        queue's length ``n_samples`` (every entry is scored).
    temperature : float, default=0.07
        Divides the scores.
    loss : {"nce", "softmax"}, default="nce"
        The loss of each direction.
    graph : {"core", "full"}, default="core"
        Pairs of views contrasted (:func:`view_pairs`).
    queue : bool, default=False
        Use the bank as MoCo's first-in first-out queue of recent keys rather
        than one entry per training sample (give it ``momentum=0``): ``forward``
        then takes ``keys``, the embeddings of a momentum key encoder per view;
        view i's embedding is scored against view j's key of the same sample
        (the positive) and against every entry of view j's queue (the
        negatives: ``n_negatives`` must be the queue's length), and the keys
        replace the oldest entries. Training on data seen once, batch by batch
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
        if queue:
            # MoCo scores every queue entry: sampling K of them with replacement
            # would leave a third of the queue unused and score others twice.
            if n_negatives != bank.n_samples:
                raise ValueError(
                    f"with queue=True every entry is a negative: n_negatives must be the "
                    f"queue length {bank.n_samples}, got {n_negatives}"
                )
        else:
            check_n_negatives(n_negatives, bank.n_samples)
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

    def _check_inputs(self, embeddings: Sequence[torch.Tensor], batch: int) -> None:
        if len(embeddings) != self.bank.n_views:
            raise ValueError(f"expected {self.bank.n_views} views, got {len(embeddings)}")
        expected = (batch, self.bank.dim)
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
        keys: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss () and per-direction losses for logging.

        ``embeddings``: V tensors (B, D), L2-normalised; ``index``: (B,) the samples'
        positions in the training set (their bank rows). The dict maps "i_j" (view i's
        embedding scored against view j's bank) to that term's loss as a float.

        With ``queue``, ``keys`` (V tensors (B, D), L2-normalised) are the positives and
        every queue entry a negative; in training mode the keys then enter the queue.
        Otherwise, in eval mode (held-out samples, which have no bank rows) the positive
        of view i's embedding is view j's embedding of the same sample.
        """
        index = index.reshape(-1).long()  # (B,)
        self._check_inputs(embeddings, len(index))
        if self.queue:
            if keys is None:
                raise ValueError("a queue contrast needs the keys of the batch")
            self._check_inputs(keys, len(index))
            noise = None
        else:
            # One draw of negatives for the batch, shared by all directions as in the
            # paper's code.
            noise = self.bank.sample_negatives(
                self.n_negatives, generator=generator, device=index.device
            )  # (K,)

        losses: dict[str, torch.Tensor] = {}
        for i, j in self.pairs:
            for q, b in ((i, j), (j, i)):
                key = _direction_key(q, b)
                if self.queue:
                    positive = keys[b].detach()  # (B, D)
                    # A copy: the enqueue below writes the queue in place, which
                    # backward (through the logits' matmul) must not see.
                    negatives = self.bank.memory[b].detach().clone()  # (K, D): the whole queue
                else:
                    if self.training:
                        positive = self.bank.weights(b, index)  # (B, D)
                    else:
                        positive = embeddings[b].detach()  # (B, D)
                    negatives = self.bank.weights(b, noise)  # (K, D)
                logits = contrast_scores(
                    embeddings[q], positive, negatives, self.temperature
                )  # (B, 1+K)
                losses[key] = self._direction_loss(key, logits)  # ()
        stacked = torch.stack(list(losses.values()))  # (2 * n_pairs,)
        total = stacked.sum()
        # One device sync for all logged values instead of one per term.
        terms = dict(zip(losses, stacked.detach().tolist(), strict=False))

        if self.training:
            written = keys if self.queue else embeddings
            gather = self.gather_across_processes
            if gather is not None:
                index = gather(index)
                written = [gather(emb.detach()) for emb in written]
            if self.queue:
                self._enqueue(written)
            else:
                for v, emb in enumerate(written):
                    self.bank.update(v, index, emb)
        return total, terms

    @torch.no_grad()
    def _enqueue(self, keys: Sequence[torch.Tensor]) -> None:
        """Replace the oldest queue entries by ``keys`` (V tensors (B, D)), first in first out."""
        n, batch = self.bank.n_samples, len(keys[0])
        rows = (self.queue_head + torch.arange(batch, device=keys[0].device)) % n  # (B,)
        # A batch longer than the queue: its last n keys are what a FIFO keeps, and the
        # rows stay distinct (index_copy_ leaves the winner of a repeated row unspecified).
        rows = rows[-n:]
        self.queue_head.copy_((self.queue_head + batch) % n)
        for v, k in enumerate(keys):
            self.bank.update(v, rows, k[-n:])

    def in_batch(self, embeddings: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Softmax (InfoNCE) loss with in-batch negatives, and per-direction losses.

        For each direction (i, j) of the graph, view i's embedding of sample b is
        scored against view j's embeddings of the whole batch, its own sample's being
        the positive: ``-mean_b log softmax_c(e_i[b] . e_j[c] / T)[b]``. No bank is
        read or written, so it measures held-out rows without drifting with training
        (for early stopping), whatever ``loss`` trains.

        ``embeddings``: V tensors (B, D), L2-normalised, B >= 2. Returns the total ()
        and a dict "i_j" -> float, as :meth:`forward` does.
        """
        self._check_inputs(embeddings, len(embeddings[0]))
        losses: dict[str, torch.Tensor] = {}
        for i, j in self.pairs:
            for q, b in ((i, j), (j, i)):
                with torch.autocast(embeddings[q].device.type, enabled=False):
                    query = at_least_float32(embeddings[q])  # (B, D)
                    logits = query @ embeddings[b].to(query.dtype).T / self.temperature  # (B, B)
                target = torch.arange(len(logits), device=logits.device)  # (B,)
                losses[_direction_key(q, b)] = F.cross_entropy(logits, target)
        stacked = torch.stack(list(losses.values()))  # (2 * n_pairs,)
        return stacked.sum(), dict(zip(losses, stacked.detach().tolist(), strict=False))
