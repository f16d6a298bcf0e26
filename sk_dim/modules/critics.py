"""Critics that score (y, local map) pairs for every pair of samples in a batch.

All critics return ``scores[i, j, l] = T(y_i, M_j at location l)`` of shape
(N, N, L), the layout :mod:`sk_dim.mi` expects (positives on the diagonal).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ResidualMLP(nn.Module):
    """Two-layer network plus a linear shortcut, then layer norm.

    The embedding networks of the DIM code (``MIFCNet``/``MI1x1ConvNet``):
    the shortcut keeps the critic close to linear early in training, which
    makes the dot-product scores well conditioned.
    """

    def __init__(self, n_in: int, n_units: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(n_in, n_units, bias=False),
            nn.BatchNorm1d(n_units),
            nn.ReLU(inplace=True),
            nn.Linear(n_units, n_units),
        )
        self.shortcut = nn.Linear(n_in, n_units, bias=False)
        self.norm = nn.LayerNorm(n_units)

    def forward(self, x: Tensor) -> Tensor:  # (N, n_in) -> (N, n_units)
        return self.norm(self.block(x) + self.shortcut(x))


class Residual1x1(nn.Module):
    """:class:`ResidualMLP` applied at every location with 1x1 convolutions."""

    def __init__(self, n_in: int, n_units: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(n_in, n_units, 1, bias=False),
            nn.BatchNorm2d(n_units),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_units, n_units, 1),
        )
        self.shortcut = nn.Conv2d(n_in, n_units, 1, bias=False)
        self.norm = nn.LayerNorm(n_units)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, n_units, H*W)
        z = (self.block(x) + self.shortcut(x)).flatten(2)
        return self.norm(z.transpose(1, 2)).transpose(1, 2)


class DotLocalCritic(nn.Module):
    """Encode-and-dot-product local critic (the DIM paper's best results).

    Local features and y are embedded into a common space by separate
    networks; every (y_i, M_j[l]) score is then one dot product, so scoring
    all N*N*L pairs costs a single batched matrix product.
    """

    def __init__(self, local_channels: int, n_components: int, n_units: int = 128) -> None:
        super().__init__()
        self.embed_local = Residual1x1(local_channels, n_units)
        self.embed_global = ResidualMLP(n_components, n_units)
        self.scale = math.sqrt(n_units)

    def forward(self, local: Tensor, y: Tensor) -> Tensor:
        m = self.embed_local(local)  # (N, D, L)
        g = self.embed_global(y)  # (N, D)
        # Layer-normed embeddings have norm ~sqrt(D); scaling by 1/sqrt(D) keeps
        # initial scores O(1) so the softplus/exp estimators start unsaturated.
        return torch.einsum("id,jdl->ijl", g, m) / self.scale  # (N, N, L)


class ConcatLocalCritic(nn.Module):
    """Concatenate-and-convolve local critic (the DIM paper's first variant).

    Scores ``[y_i; M_j[l]]`` with 1x1 convolutions for every pair. The first
    layer is linear in the concatenation, so it is computed as
    ``W_M M_j + W_y y_i`` without materialising N*N concatenated maps; the
    hidden layers still hold N*N*L activations, which is what makes this
    critic slow and memory hungry compared with :class:`DotLocalCritic`.
    """

    def __init__(self, local_channels: int, n_components: int, n_units: int = 128) -> None:
        super().__init__()
        self.from_local = nn.Conv1d(local_channels, n_units, 1)
        self.from_global = nn.Linear(n_components, n_units, bias=False)
        self.rest = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(n_units, n_units, 1),
            nn.ReLU(),
            nn.Conv1d(n_units, 1, 1),
        )

    def forward(self, local: Tensor, y: Tensor) -> Tensor:
        n = y.shape[0]
        m = self.from_local(local.flatten(2))  # (N, U, L)
        g = self.from_global(y)  # (N, U)
        hidden = g[:, None, :, None] + m[None]  # (N_y, N_M, U, L)
        scores = self.rest(hidden.flatten(0, 1))  # (N*N, 1, L)
        return scores.view(n, n, -1)  # (N, N, L)


class GlobalCritic(nn.Module):
    """Global critic: the whole local map summarised to one vector, dotted with y.

    As in the DIM code's global objective, the feature map M is reduced by a
    convolution, flattened and embedded; y is embedded by its own network.
    """

    def __init__(
        self, local_shape: tuple[int, int, int], n_components: int, n_units: int = 128
    ) -> None:
        super().__init__()
        channels, height, width = local_shape
        # A 1x1 reduction keeps the flattened map small: the global critic only
        # needs a summary of M, and its cost should not rival the encoder's.
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, 32, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.embed_local = ResidualMLP(32 * height * width, n_units)
        self.embed_global = ResidualMLP(n_components, n_units)
        self.scale = math.sqrt(n_units)

    def forward(self, local: Tensor, y: Tensor) -> Tensor:
        m = self.embed_local(self.reduce(local).flatten(1))  # (N, D)
        g = self.embed_global(y)  # (N, D)
        return (g @ m.T / self.scale).unsqueeze(-1)  # (N, N, 1)


LOCAL_CRITICS = {"dot": DotLocalCritic, "concat": ConcatLocalCritic}
