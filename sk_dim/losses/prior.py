"""Losses of adversarial prior matching (Hjelm et al., section 3.4).

A discriminator learns to tell samples of a prior from encoder outputs y;
the encoder is trained to fool it. The two players have opposite
objectives and separate optimizers: training the encoder on the
discriminator's own loss would *help* the discriminator instead.

For the uniform prior on [0, 1], y goes through a sigmoid before the
discriminator (:func:`prior_input`), as in the reference implementation
(``cortex_DIM/models/prior_matching.py``, ``use_nonlinearity``): a linear
output y could never match a bounded distribution, so the discriminator
would win on the support alone. The features (``layer="y"``) stay the raw y.

The discriminator also pays the reference's gradient penalty
(:func:`gradient_penalty`, weight 1, on the prior samples and on y).
"""

from __future__ import annotations

from collections.abc import Callable

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


def gradient_penalty(discriminator: Callable[[Tensor], Tensor], inputs: Tensor) -> Tensor:
    """Mean squared norm of the discriminator's gradient with respect to its inputs.

    ``E_x[ ||grad_x D(x)||^2 ]`` over the rows of ``inputs``: the gradient
    penalty of the reference implementation
    (``cortex_DIM/functions/gradient_penalty.py``, after Mescheder et al.,
    ICML 2018), which Deep InfoMax's prior discriminator adds to its loss on
    the prior samples and on the encoded y. It keeps the discriminator
    smooth around the data, so that it cannot win by a steep boundary and
    the encoder keeps a useful gradient. The graph is kept (a
    double-backward): the penalty trains the discriminator's weights.

    Parameters
    ----------
    discriminator : callable
        Maps ``(N, D)`` inputs to ``(N,)`` logits, e.g. a
        :class:`~sk_dim.modules.prior.PriorDiscriminator`.
    inputs : Tensor of shape (N, D)
        Where the gradient is taken; detached here (no gradient flows back to
        whatever produced them).

    Returns
    -------
    Tensor
        A scalar, at least float32.

    Examples
    --------
    A linear discriminator ``x @ w`` has the gradient ``w`` everywhere:

    >>> import torch
    >>> from sk_dim.losses.prior import gradient_penalty
    >>> w = torch.tensor([3.0, 4.0])
    >>> gradient_penalty(lambda x: x @ w, torch.randn(5, 2))
    tensor(25.)
    """
    inputs = inputs.detach().requires_grad_(True)  # (N, D)
    # Enabled even under no_grad: the penalty is a loss to train on.
    with torch.enable_grad():
        logits = discriminator(inputs)  # (N,)
        # Each row's logit depends on that row only: the gradient of the sum is
        # every row's own gradient.
        (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)  # (N, D)
        return at_least_float32(grad).flatten(1).pow(2).sum(1).mean()


def encoder_prior_loss(logits_encoded: Tensor) -> Tensor:
    """Non-saturating generator loss: the encoder wants y judged "real"."""
    return F.softplus(-at_least_float32(logits_encoded)).mean()
