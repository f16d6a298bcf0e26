"""The arithmetic the losses run in, whatever autocast gave them."""

from __future__ import annotations

import torch
from torch import Tensor


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 when it is in a lower precision; float64 stays float64.

    Critics and encoders may score in bfloat16 or float16 under autocast, where a
    logsumexp over many scores, or a division by a small temperature, loses too much.
    float64 inputs stay float64, so that every loss can be checked against a float64
    reference computed by the same code.
    """
    return x.to(torch.promote_types(x.dtype, torch.float32))
