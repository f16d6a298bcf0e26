"""Losses as plain torch functions and small modules: no scikit-learn, no skorch.

- :mod:`~sk_dim.losses.mi_bounds`: the JSD, DV and InfoNCE bounds on a critic's scores
  (Deep InfoMax's global and local terms, and :mod:`sk_dim.mi_estimation`).
- :mod:`~sk_dim.losses.prior`: adversarial prior matching (Deep InfoMax's ``gamma`` term).
- :mod:`~sk_dim.losses.memory_bank`: CMC's memory bank of per-sample embeddings.
- :mod:`~sk_dim.losses.nce`: CMC's NCE and softmax (InfoNCE) losses on bank scores.
- :mod:`~sk_dim.losses.contrast`: CMC's multi-view contrast ("core" and "full" graphs).
"""

from .contrast import GRAPHS, MultiviewContrast, view_pairs
from .memory_bank import MemoryBank
from .mi_bounds import (
    BOUNDS,
    donsker_varadhan,
    dv_bound,
    infonce_bound,
    jsd_bound,
    log_mean_exp,
    mi_bound,
)
from .nce import LOSS_KINDS, NCELoss, contrast_scores, estimate_log_z, nce_loss, softmax_loss
from .prior import (
    PRIORS,
    discriminator_loss,
    encoder_prior_loss,
    gradient_penalty,
    prior_input,
    sample_prior,
)

__all__ = [
    "BOUNDS",
    "GRAPHS",
    "LOSS_KINDS",
    "PRIORS",
    "MemoryBank",
    "MultiviewContrast",
    "NCELoss",
    "contrast_scores",
    "discriminator_loss",
    "donsker_varadhan",
    "dv_bound",
    "encoder_prior_loss",
    "estimate_log_z",
    "gradient_penalty",
    "infonce_bound",
    "jsd_bound",
    "log_mean_exp",
    "mi_bound",
    "nce_loss",
    "prior_input",
    "sample_prior",
    "softmax_loss",
    "view_pairs",
]
