"""The prior discriminator of Deep InfoMax (section 3.4); its losses are in
:mod:`sk_dim.losses.prior`."""

from __future__ import annotations

from torch import Tensor, nn


class PriorDiscriminator(nn.Module):
    """MLP of the DIM paper (1000 and 200 hidden units) returning one logit."""

    def __init__(self, n_components: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_components, 1000),
            nn.ReLU(inplace=True),
            nn.Linear(1000, 200),
            nn.ReLU(inplace=True),
            nn.Linear(200, 1),
        )

    def forward(self, y: Tensor) -> Tensor:  # (N, D) -> (N,)
        return self.net(y).squeeze(-1)
