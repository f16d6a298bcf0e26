"""Losses of adversarial prior matching (Hjelm et al., section 3.4).

Adversarial prior matching (Hjelm et al., section 3.4).

A discriminator learns to tell samples of a prior from encoder outputs y;
the encoder is trained to fool it. The two players have opposite
objectives and separate optimizers: training the encoder on the
discriminator's own loss would *help* the discriminator instead.

For the uniform prior on [0, 1], y goes through a sigmoid before the
discriminator (:func:`prior_input`), as in the reference implementation
(``cortex_DIM/models/prior_matching.py``, ``use_nonlinearity``): a linear
output y could never match a bounded distribution, so the discriminator
would win on the support alone. The features (``layer="y"``) stay the raw y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import at_least_float32

PRIORS = ("uniform", "gaussian")


def prior_input(y: Tensor, squash: bool) -> Tensor:
    """What the discriminator sees of y: ``sigmoid(y)`` when ``squash``, else y."""
    return torch.sigmoid(y) if squash else y  # (N, D)


def sample_prior(name: str, like: Tensor) -> Tensor:
    """Draw as many prior samples as ``like`` has rows, on its device."""
    if name == "uniform":  # the paper's prior: uniform on [0, 1]^D
        return torch.rand_like(like)
    if name == "gaussian":
        return torch.randn_like(like)
    raise ValueError(f"Unknown prior {name!r}; expected one of {PRIORS}")


def discriminator_loss(logits_prior: Tensor, logits_encoded: Tensor) -> Tensor:
    """Binary cross-entropy: prior samples are "real", encoder outputs "fake"."""
    real, fake = at_least_float32(logits_prior), at_least_float32(logits_encoded)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def encoder_prior_loss(logits_encoded: Tensor) -> Tensor:
    """Non-saturating generator loss: the encoder wants y judged "real"."""
    return F.softplus(-at_least_float32(logits_encoded)).mean()
