"""Small torch helpers shared by the estimators (no sklearn, no skorch)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import torch


def resolve_device(device: str) -> str:
    """``"auto"`` means CUDA when available, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# torch's random state is one per process: two seeded blocks running at once in
# threads would draw from each other's stream.
_RANDOM_STATE_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch for one fit without touching the caller's global RNG state.

    Blocks in other threads wait: a fit in a thread then draws exactly what
    it draws alone, and the caller's state is restored unmixed.
    """
    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    with _RANDOM_STATE_LOCK, torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        torch.manual_seed(seed)
        yield


# torch's thread count is one setting for the whole process: blocks that set it
# in several threads at once must restore it only when the last one ends.
_THREADS_LOCK = threading.Lock()
_threads_users = 0
_threads_before: int | None = None


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch CPU threads, then restore the setting.

    At most ``os.cpu_count()`` threads are used: more only add contention. None
    leaves torch's setting alone: it already honours ``OMP_NUM_THREADS``, which
    joblib's process workers (loky) and dask's workers set to their share of the
    cores. The setting is process-wide: blocks running at once in several threads
    share the count set last, and the count from before the first of them is
    restored when the last one ends.
    """
    global _threads_users, _threads_before
    if n_threads is None:
        yield
        return
    with _THREADS_LOCK:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
        _threads_users += 1
        torch.set_num_threads(min(n_threads, os.cpu_count() or 1))
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX).

    Elsewhere CPU autocast emulates bfloat16 and runs slower than float32.
    """
    # Private torch helpers (torch >= 2.1); a torch without them answers False.
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device: str, *, strict: bool = True) -> str:
    """The precision ``precision`` means on ``device``: "float32", "bfloat16" or "float16".

    ``"auto"`` is bfloat16 where the hardware computes it (a CUDA device
    that supports it, a CPU with AVX512-BF16 or AMX: 1.5x faster training on
    such a CPU) and float32 elsewhere. float16 needs CUDA (its gradient
    scaler is CUDA's); ``strict`` raises otherwise, else falls back to
    float32, as inference does for a model trained on a GPU and loaded on a
    CPU.
    """
    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        else:
            native = kind == "cpu" and cpu_computes_bfloat16()
        return "bfloat16" if native else "float32"
    if precision == "float16" and kind != "cuda":
        if strict:
            raise ValueError(
                f"precision='float16' needs a CUDA device, got device={device!r}; use "
                "precision='bfloat16' (CPU autocast supports it) or 'float32'"
            )
        return "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def resolve_channels_last(channels_last: bool | str, device: str) -> bool:
    """``"auto"`` means channels_last on CUDA (tensor cores want NHWC), not on CPU."""
    if channels_last == "auto":
        return torch.device(device).type == "cuda"
    return bool(channels_last)


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` (already resolved) on ``device``; nothing for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_AUTOCAST_DTYPES[precision])


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Image batches (4-D) in channels_last when asked; anything else unchanged."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
