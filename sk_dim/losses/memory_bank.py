"""CMC's memory bank: one slowly updated embedding per training sample and view.

Follows Tian, Krishnan & Isola (2019), "Contrastive Multiview Coding", and their official
code (``NCE/NCEAverage.py``): every view keeps a bank holding one slowly updated
embedding per training sample, from which the negatives of the contrastive losses
(:mod:`sk_dim.losses.nce`) are drawn.

Shape letters used in the comments: B batch size, K number of negatives, D embedding
dimension, N number of training samples, V number of views.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def check_n_negatives(n_negatives: int, n_samples: int) -> None:
    """K must be positive and below N: the bank can't offer more distinct negatives."""
    if not 1 <= n_negatives < n_samples:
        raise ValueError(
            f"n_negatives must satisfy 1 <= n_negatives < n_samples={n_samples}, "
            f"got n_negatives={n_negatives}"
        )


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
        check_n_negatives(k, self.n_samples)
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
