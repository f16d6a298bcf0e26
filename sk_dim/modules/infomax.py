"""The Deep InfoMax objective as one torch module."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..losses import (
    discriminator_loss,
    encoder_prior_loss,
    mi_bound,
    prior_input,
    sample_prior,
)
from ..losses.precision import at_least_float32
from ..losses.prior import gradient_penalty
from .base import SelfSupervisedModule
from .critics import LOCAL_CRITICS, GlobalCritic
from .encoders import EncoderFeatures, encoder_features, unpack
from .prior import PriorDiscriminator

# Weight of the prior discriminator's gradient penalty: the reference
# implementation's (cortex_DIM's Discriminator.routine, gradient_penalty=1.0).
GRADIENT_PENALTY = 1.0


class DeepInfoMax(SelfSupervisedModule):
    """Encoder, critics and prior discriminator of Deep InfoMax.

    ``forward(x)`` returns the encoder's loss,
    ``-(alpha * global MI + beta * local MI) + gamma * prior loss``, and its
    terms. A term whose weight is 0 has no critic and costs nothing.
    The prior discriminator is trained separately by
    :meth:`discriminator_step_loss` with its own optimizer; both players see
    y through :func:`~sk_dim.losses.prior_input` (a sigmoid for the
    uniform prior, as in the reference implementation).

    With an ``augment`` module (``augment(x)``: raw batch -> augmented raw
    batch; held-out scoring calls ``augment(x, generator)``), training
    encodes two augmented copies of every input and pairs the global vector
    of each copy with the local map of the other (AMDIM, Bachman et al.
    2019): the MI terms are the mean of the two directions. Evaluation mode
    never augments ``forward`` and ``features`` (``transform``);
    :meth:`validation_terms` always does, to score what training maximizes.
    """

    LAYERS = ("local", "blocks", "conv", "fc", "y")

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
        augment: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.augment = augment
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.mi_estimator, self.prior = mi_estimator, prior
        self.squash_prior = prior == "uniform"
        out = self._probe(input_shape)
        local_shape, n_components = tuple(out.local.shape[1:]), out.y.shape[1]
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
        y, pairs = self._encode(x, augment=self.training)
        mi_terms, loss = self._mi_terms(pairs)
        terms = {"y": y, **mi_terms}
        if self.discriminator is not None:
            logits = self.discriminator(prior_input(y, self.squash_prior))
            terms["prior"] = encoder_prior_loss(logits)
            loss = loss + self.gamma * terms["prior"]
        terms["loss"] = loss
        return terms

    def validation_terms(
        self, x: Tensor, index: Tensor, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """The MI objective ``-(alpha * global MI + beta * local MI)`` on held-out rows.

        The prior term is left out: it scores y against a discriminator that
        changes every epoch, so it would not measure the same thing twice.
        With ``augment``, the cross-view objective that training maximizes,
        on copies drawn from ``generator`` (the same copies every epoch).
        """
        _, pairs = self._encode(x, augment=True, generator=generator)
        terms, loss = self._mi_terms(pairs)
        terms["loss"] = loss
        return terms

    def _encode(
        self, x: Tensor, *, augment: bool, generator: torch.Generator | None = None
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """The batch's y (all copies) and the (local map, y) pairs its MI terms score.

        With ``augment`` and an ``augment`` module, two augmented copies of
        every input, each y paired with the other copy's local map (AMDIM):
        positives share the image, not the pixels.
        """
        if not augment or self.augment is None:
            out = unpack(self.encoder(x))
            return out.y, [(out.local, out.y)]
        n = len(x)
        # Augmentation is preprocessing: float32 even under autocast.
        with torch.autocast(x.device.type, enabled=False):
            # Training calls augment(x): it draws from torch's generator.
            draw = [x] if generator is None else [x, generator]
            copies = torch.cat([self.augment(*draw), self.augment(*draw)])
        # copies: (2N, C, H, W)
        if x.is_contiguous(memory_format=torch.channels_last):  # keep channels_last=True's layout
            copies = copies.contiguous(memory_format=torch.channels_last)
        # One pass over both copies: batch norm sees them together.
        out = unpack(self.encoder(copies))
        local1, local2 = out.local[:n], out.local[n:]
        y1, y2 = out.y[:n], out.y[n:]
        return out.y, [(local2, y1), (local1, y2)]

    def _mi_terms(self, pairs: list[tuple[Tensor, Tensor]]) -> tuple[dict[str, Tensor], Tensor]:
        """The MI terms of (local map, y) pairs and ``-(alpha * global + beta * local)``."""
        terms: dict[str, Tensor] = {}
        # At least float32 whatever autocast made y, as the terms are (see sk_dim.losses).
        loss = at_least_float32(pairs[0][1].new_zeros(()))
        if self.global_critic is not None:
            terms["global_mi"] = self._mi(self.global_critic, pairs)
            loss = loss - self.alpha * terms["global_mi"]
        if self.local_critic is not None:
            terms["local_mi"] = self._mi(self.local_critic, pairs)
            loss = loss - self.beta * terms["local_mi"]
        return terms, loss

    def _mi(self, critic: nn.Module, pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
        bounds = [mi_bound(critic(local, y), self.mi_estimator) for local, y in pairs]
        return sum(bounds) / len(bounds)

    def discriminator_step_loss(self, terms: dict[str, Tensor]) -> Tensor:
        """Loss of the prior discriminator on the batch's encoder outputs ``terms["y"]``.

        The cross-entropy of :func:`~sk_dim.losses.discriminator_loss` plus
        the reference implementation's gradient penalty, with its weight
        ``GRADIENT_PENALTY`` (1): the mean squared norm of the
        discriminator's input gradient on the prior samples and on the
        encoded y, averaged (:func:`~sk_dim.losses.prior.gradient_penalty`). Both
        parts are added to ``terms`` to be logged, as ``"discriminator"``
        and ``"gradient_penalty"``.
        """
        # Detached, and at least float32 so that prior samples are not drawn in y's
        # autocast precision.
        y = prior_input(at_least_float32(terms["y"].detach()), self.squash_prior)
        prior_samples = sample_prior(self.prior, y)
        cross_entropy = discriminator_loss(self.discriminator(prior_samples), self.discriminator(y))
        penalty = 0.5 * (
            gradient_penalty(self.discriminator, prior_samples)
            + gradient_penalty(self.discriminator, y)
        )
        terms["discriminator"] = cross_entropy.detach()
        terms["gradient_penalty"] = penalty.detach()
        return cross_entropy + GRADIENT_PENALTY * penalty

    def features(self, x: Tensor, layer: str, pool_size: int) -> Tensor:  # (N, ...) -> (N, D)
        return encoder_features(self.encoder, x, layer, pool_size, self.LAYERS)

    def inference_copy(self) -> EncoderFeatures:
        # Only the encoder computes features: the critics and the discriminator stay behind.
        return EncoderFeatures(copy.deepcopy(self.encoder), self.LAYERS)
