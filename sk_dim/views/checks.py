"""Argument checks shared by the view functions: clear errors before any work."""

from __future__ import annotations

from torch import Tensor


def check_image_batch(x: Tensor, name: str, channels: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a float ``(N, C, H, W)`` tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    c = "3" if channels == 3 else "C"
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (N, {c}, H, W), got {x.ndim}-D shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (N, {channels}, H, W) (RGB channels first), "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        # Integer images (e.g. uint8 0..255) would silently be clamped to {0, 1}.
        raise TypeError(
            f"{name} must be a floating point tensor with values in [0, 1], got dtype {x.dtype}"
        )


def check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a pair lo < min <= max <= hi."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (min, max), got {value!r}") from None
    if not (lo < a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} < min <= max <= {hi}, got {value!r}")
