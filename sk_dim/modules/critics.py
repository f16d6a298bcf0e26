"""Critics: networks that score every pair of samples of a batch.

Deep InfoMax's critics score (y, local map) pairs: ``scores[i, j, l] = T(y_i, M_j at
location l)`` of shape (N, N, L). The pair critics of :mod:`sk_dim.mi_estimation`
score (x, y) vectors: ``scores[i, j] = T(x_j, y_i)`` of shape (N, N). Both are the
layout :mod:`sk_dim.losses` expects (positives on the diagonal).
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


# -- pair critics of vectors (sk_dim.mi_estimation) ---------------------------


def mlp(n_in: int, hidden: int, n_layers: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n_layers):
        layers += [nn.Linear(n_in, hidden), nn.ReLU()]
        n_in = hidden
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class ConcatCritic(nn.Module):
    """Statistics network ``T(x, y) = MLP([x, y])``, as in MINE.

    The most flexible critic: it can model any interaction between x and
    y, at the cost of one network evaluation per scored pair, so an
    ``N x N`` score matrix costs ``N**2`` evaluations.

    Parameters
    ----------
    x_dim, y_dim : int
        Sizes of x and y.
    hidden_units : int, default=64
        Width of the hidden layers.
    n_layers : int, default=2
        Number of hidden layers (ReLU).

    Attributes
    ----------
    net : torch.nn.Sequential
        The MLP from ``x_dim + y_dim`` inputs to one score.

    See Also
    --------
    SeparableCritic : A cheaper critic for all-pairs score matrices.
    mutual_information : Trains a critic and reports an MI bound.

    References
    ----------
    .. [1] M. I. Belghazi et al., "Mutual Information Neural Estimation",
       ICML 2018.
    .. [2] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sk_dim.mi_estimation import ConcatCritic
    >>> rng = np.random.default_rng(0)
    >>> x = torch.as_tensor(rng.standard_normal((40, 3)), dtype=torch.float32)
    >>> y = torch.as_tensor(rng.standard_normal((40, 2)), dtype=torch.float32)
    >>> critic = ConcatCritic(3, 2, hidden_units=8)
    >>> critic(x, y).shape, critic.scores(x, y).shape
    (torch.Size([40]), torch.Size([40, 40]))
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_units: int = 64, n_layers: int = 2):
        super().__init__()
        self.net = mlp(x_dim + y_dim, hidden_units, n_layers, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores ``T(x_i, y_i)`` of row-aligned pairs, shape ``(N,)``."""
        return self.net(torch.cat([x, y], dim=1)).squeeze(1)

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        """All pairs: ``scores[i, j] = T(x_j, y_i)``, shape ``(N, N)``."""
        n = len(x)
        pairs = torch.cat([x.unsqueeze(0).expand(n, -1, -1), y.unsqueeze(1).expand(-1, n, -1)], 2)
        return self.net(pairs.flatten(0, 1)).view(n, n)


class SeparableCritic(nn.Module):
    """Separable critic ``T(x, y) = g(x) @ h(y)`` (as in CPC and CMC).

    Each sample is embedded once, so an ``N x N`` score matrix costs ``2N``
    network evaluations and one matrix product: much cheaper than
    :class:`ConcatCritic` for large batches, and enough for quadratic log
    density ratios such as those of Gaussians.

    Parameters
    ----------
    x_dim, y_dim : int
        Sizes of x and y.
    hidden_units : int, default=64
        Width of the hidden layers and of the embeddings.
    n_layers : int, default=2
        Number of hidden layers (ReLU) of each embedding network.

    Attributes
    ----------
    g : torch.nn.Sequential
        Embedding network of x, from ``x_dim`` to ``hidden_units``.
    h : torch.nn.Sequential
        Embedding network of y, from ``y_dim`` to ``hidden_units``.

    See Also
    --------
    ConcatCritic : MINE's more flexible, costlier critic.
    mutual_information : Trains a critic and reports an MI bound.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       2019.
    .. [2] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sk_dim.mi_estimation import SeparableCritic
    >>> rng = np.random.default_rng(0)
    >>> x = torch.as_tensor(rng.standard_normal((40, 3)), dtype=torch.float32)
    >>> y = torch.as_tensor(rng.standard_normal((40, 2)), dtype=torch.float32)
    >>> critic = SeparableCritic(3, 2, hidden_units=8)
    >>> critic(x, y).shape, critic.scores(x, y).shape
    (torch.Size([40]), torch.Size([40, 40]))
    >>> torch.allclose(critic.scores(x, y).diagonal(), critic(x, y), atol=1e-5)
    True
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_units: int = 64, n_layers: int = 2):
        super().__init__()
        self.g = mlp(x_dim, hidden_units, n_layers, hidden_units)
        self.h = mlp(y_dim, hidden_units, n_layers, hidden_units)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores ``T(x_i, y_i)`` of row-aligned pairs, shape ``(N,)``."""
        return (self.g(x) * self.h(y)).sum(1)

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        """All pairs: ``scores[i, j] = T(x_j, y_i)``, shape ``(N, N)``."""
        return self.h(y) @ self.g(x).T
