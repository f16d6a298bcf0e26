"""Small torch helpers shared by the estimators (no sklearn, no skorch)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def resolve_device(device: str) -> str:
    """``"auto"`` means CUDA when available, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch for one fit without touching the caller's global RNG state."""
    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        torch.manual_seed(seed)
        yield
