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
from collections.abc import Sequence

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
        self, index: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.LongTensor:
        """Indices (B, K+1): column 0 is each sample's own index, columns 1..K are noise.

        The official code draws noise with an alias table built on uniform probabilities,
        which is exactly uniform sampling with replacement; ``torch.randint`` does the same.
        A negative may thus coincide with the positive, as in the paper's code.
        """
        _check_n_negatives(k, self.n_samples)
        index = index.reshape(-1)  # (B,)
        # Draw on the generator's device (randint requires it), then move to the batch's.
        device = generator.device if generator is not None else index.device
        noise = torch.randint(
            self.n_samples, (index.shape[0], k), generator=generator, device=device
        ).to(index.device)  # (B, K)
        return torch.cat([index.long().unsqueeze(1), noise], dim=1)  # (B, K+1)

    def weights(self, view: int, idx: torch.Tensor) -> torch.Tensor:
        """Bank rows (B, K+1, D) of ``view`` at ``idx`` (B, K+1), cut from the graph."""
        batch, k1 = idx.shape
        rows = torch.index_select(self.memory[view], 0, idx.reshape(-1))  # (B*(K+1), D)
        return rows.view(batch, k1, self.dim).detach()

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
    embedding: torch.Tensor, weights: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Logits (B, K+1) = <bank row, embedding> / T; ``embedding`` (B, D), ``weights`` (B, K+1, D).

    Computed in float32 with autocast off: dividing by a small T (0.07) magnifies the
    rounding error a bf16 dot product would carry by ~14x.
    """
    with torch.autocast(device_type=embedding.device.type, enabled=False):
        scores = torch.bmm(weights.float(), embedding.float().unsqueeze(2))  # (B, K+1, 1)
    return scores.squeeze(2) / temperature  # (B, K+1)


# ------------------------------------------------------------------ normalising constant


def estimate_log_z(logits: torch.Tensor, n_samples: int) -> torch.Tensor:
    """log Z with Z = mean(exp(logits)) * N, as a 0-d float32 tensor without gradient.

    The paper's code takes this Monte-Carlo estimate of the partition function
    sum_n exp(s_n) from the first batch; working with logsumexp avoids overflowing exp.
    """
    logits = logits.detach().float()
    return (
        torch.logsumexp(logits.reshape(-1), dim=0) - math.log(logits.numel()) + math.log(n_samples)
    )


def estimate_z(logits: torch.Tensor, n_samples: int) -> float:
    """Z = mean(exp(logits)) * N (``Z = out.mean() * nLem`` in NCEAverage), as a float."""
    return math.exp(estimate_log_z(logits, n_samples).item())


# ----------------------------------------------------------------------------- losses


def nce_loss(logits: torch.Tensor, n_samples: int, z: torch.Tensor | float) -> torch.Tensor:
    """The paper's NCE loss (Eq. 12 / NCECriterion) for ``logits`` (B, K+1), positive first.

    With P = exp(logits) / Z the model's probability and Pn = 1 / N the uniform noise,
    a data sample is told apart from noise with posterior D = P / (P + K*Pn + eps):

        loss = -mean_b [ log D(pos) + sum_neg log(K*Pn / (P_neg + K*Pn + eps)) ].

    Evaluated in log space (log P = logits - log Z, and logaddexp for log(P + c)), which
    is the same quantity as the official code's but cannot overflow or hit log(0).
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
    """Cross-entropy over the K+1 candidates with the positive at index 0 (NCESoftmaxLoss)."""
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
    what view 0 shares with the rest; "full": every pair, L = sum_{i<j} L(Vi, Vj).
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
    """

    def __init__(
        self,
        bank: MemoryBank,
        n_negatives: int,
        temperature: float = 0.07,
        loss: str = "nce",
        graph: str = "core",
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
        """
        index = index.reshape(-1).long()  # (B,)
        self._check_inputs(embeddings, index)
        idx = self.bank.sample_negatives(index, self.n_negatives, generator)  # (B, K+1)

        losses: dict[str, torch.Tensor] = {}
        for i, j in self.pairs:
            for q, b in ((i, j), (j, i)):
                key = _direction_key(q, b)
                logits = contrast_scores(embeddings[q], self.bank.weights(b, idx), self.temperature)
                losses[key] = self._direction_loss(key, logits)  # ()
        stacked = torch.stack(list(losses.values()))  # (2 * n_pairs,)
        total = stacked.sum()
        # One device sync for all logged values instead of one per term.
        terms = dict(zip(losses, stacked.detach().tolist(), strict=False))

        if self.training:
            for v, emb in enumerate(embeddings):
                self.bank.update(v, index, emb)
        return total, terms
