"""The Deep InfoMax objective as one torch module."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..mi import mi_bound
from .critics import LOCAL_CRITICS, GlobalCritic
from .encoders import unpack
from .prior import PriorDiscriminator, discriminator_loss, encoder_prior_loss, sample_prior


class DeepInfoMax(nn.Module):
    """Encoder, critics and prior discriminator of Deep InfoMax.

    ``forward(x)`` returns the encoder's loss,
    ``-(alpha * global MI + beta * local MI) + gamma * prior loss``, and its
    terms. A term whose weight is 0 has no critic and costs nothing.
    The prior discriminator is trained separately by
    :meth:`discriminator_step_loss` with its own optimizer.
    """

    def __init__(
        self,
        encoder: nn.Module,
        input_shape: tuple[int, ...],
        *,
        alpha: float,
        beta: float,
        gamma: float,
        mi_estimator: str,
        local_critic: str,
        prior: str,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.mi_estimator, self.prior = mi_estimator, prior
        local, _, y = self._probe(input_shape)
        local_shape, n_components = tuple(local.shape[1:]), y.shape[1]
        self.global_critic = GlobalCritic(local_shape, n_components) if alpha else None
        self.local_critic = (
            LOCAL_CRITICS[local_critic](local_shape[0], n_components) if beta else None
        )
        self.discriminator = PriorDiscriminator(n_components) if gamma else None

    @torch.no_grad()
    def _probe(self, input_shape: tuple[int, ...]):
        # Eval mode so the dry run leaves batch-norm statistics untouched.
        was_training = self.encoder.training
        self.encoder.eval()
        out = unpack(self.encoder(torch.zeros(2, *input_shape)))
        self.encoder.train(was_training)
        return out

    def forward(self, x: Tensor, index: Tensor | None = None) -> dict[str, Tensor]:
        # index (the rows' positions in the training set) is unused: DIM has no memory bank.
        out = unpack(self.encoder(x))
        terms: dict[str, Tensor] = {"y": out.y}
        # float32 whatever autocast made y: the terms are float32 (see sk_dim.mi).
        loss = out.y.new_zeros((), dtype=torch.float32)
        if self.global_critic is not None:
            terms["global_mi"] = mi_bound(self.global_critic(out.local, out.y), self.mi_estimator)
            loss = loss - self.alpha * terms["global_mi"]
        if self.local_critic is not None:
            terms["local_mi"] = mi_bound(self.local_critic(out.local, out.y), self.mi_estimator)
            loss = loss - self.beta * terms["local_mi"]
        if self.discriminator is not None:
            terms["prior"] = encoder_prior_loss(self.discriminator(out.y))
            loss = loss + self.gamma * terms["prior"]
        terms["loss"] = loss
        return terms

    def discriminator_step_loss(self, y: Tensor) -> Tensor:
        """Loss of the prior discriminator on encoder outputs ``y`` (detached)."""
        # float32 so that prior samples are not drawn in y's autocast precision.
        y = y.detach().float()
        prior_samples = sample_prior(self.prior, y)
        return discriminator_loss(self.discriminator(prior_samples), self.discriminator(y))

    def encoder_parameters(self):
        """Parameters trained by the encoder's optimizer (all but the discriminator)."""
        skip = (
            set() if self.discriminator is None else set(map(id, self.discriminator.parameters()))
        )
        return [p for p in self.parameters() if id(p) not in skip]
