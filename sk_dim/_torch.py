"""Small torch helpers shared by the estimators and the code beside them.

Device choice, seeding and thread counts; no sklearn, no skorch. What a
network computes in (precision, layout, accelerator) is :mod:`sk_dim._runtime`'s.
"""

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
