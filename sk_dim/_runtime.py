"""Where and how a network computes: device, precision, memory layout, accelerator.

The estimators' ``device``, ``precision``, ``channels_last`` and ``accelerate``
parameters are resolved here, and only here, by :func:`resolve_runtime`: once
per fit, and once per transform or load for inference. The resulting
:class:`Runtime` is handed to the training engine, which applies it
(:meth:`Runtime.autocast`, :meth:`Runtime.memory_format`) and never resolves
anything again. Only torch (and accelerate, when asked for) is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch

from ._torch import resolve_device

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# accelerate's names for the precisions (see the estimators' ``precision_``).
_ACCELERATE_PRECISIONS = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The resolved device, precision and layout of one fit or one inference.

    Parameters
    ----------
    device : str
        A torch device (never ``"auto"``).
    precision : {"float32", "bfloat16", "float16"}
        The arithmetic of the run (never ``"auto"``); under accelerate, the
        accelerator's mixed precision.
    channels_last : bool
        Whether image batches and 4-D weights use the channels_last layout.
    accelerator : accelerate.Accelerator or None, default=None
        The accelerator that trains the network, or None for plain skorch.
    """

    device: str
    precision: str
    channels_last: bool
    accelerator: Any = None

    @property
    def autocast_precision(self) -> str:
        """The precision the net autocasts to: float32 where the accelerator autocasts itself."""
        return "float32" if self.accelerator is not None else self.precision

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to :attr:`autocast_precision` on the device; nothing for float32."""
        return autocast(self.device, self.autocast_precision)

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch (4-D) in channels_last when the runtime asks for it."""
        return to_memory_format(x, self.channels_last)

    def without_accelerator(self) -> Runtime:
        """This runtime for a net that trained under accelerate and now runs without it."""
        return dataclasses.replace(self, precision=self.autocast_precision, accelerator=None)

    def shared_seed(self, seed: int) -> int:
        """``seed``, or process 0's under a distributed accelerator.

        Every process must draw the same order each epoch to take disjoint
        shards of it, even with ``random_state=None``.
        """
        if self.accelerator is None or self.accelerator.num_processes == 1:
            return seed
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([seed])[0]


def resolve_runtime(
    device: str,
    precision: str,
    channels_last: bool | str,
    accelerate: bool | dict | None = None,
    *,
    training: bool = True,
) -> Runtime:
    """The :class:`Runtime` that the estimator parameters mean on this machine.

    Parameters
    ----------
    device : str
        The ``device`` parameter (``"auto"``: CUDA when available) for
        training; for inference, the device the network is on.
    precision : {"auto", "float32", "bfloat16", "float16"}
        The ``precision`` parameter (see :func:`resolve_precision`).
    channels_last : bool or "auto"
        The ``channels_last`` parameter (see :func:`resolve_channels_last`).
    accelerate : bool, dict or None, default=None
        The ``accelerate`` parameter: True or a dict of ``Accelerator``
        options trains through Hugging Face Accelerate, whose device and
        mixed precision then apply.
    training : bool, default=True
        True checks that the device exists and refuses float16 off CUDA;
        False (inference) takes the network's device as it is and falls back
        to float32 where float16 cannot run, as a model trained on a GPU and
        loaded on a CPU does.

    Returns
    -------
    runtime : Runtime
    """
    accelerator = build_accelerator(accelerate, precision) if training else None
    if training:
        device = checked_device(device, accelerator)
    resolved = resolve_precision(precision, device, strict=training)
    if accelerator is not None:  # then the accelerator's mixed precision applies
        mixed = accelerator.mixed_precision
        resolved = _ACCELERATE_PRECISIONS.get(mixed, str(mixed))
    return Runtime(device, resolved, resolve_channels_last(channels_last, device), accelerator)


def build_accelerator(accelerate: bool | dict | None, precision: str):
    """The ``accelerate.Accelerator`` of one fit, or None to train with plain skorch.

    Built per fit from plain options, so that clones and pickles of the
    transformer never carry an accelerator and the modules it prepared.
    """
    if accelerate is None or accelerate is False:
        return None
    if precision not in ("auto", "float32"):
        raise ValueError(
            f"precision={precision!r} cannot be combined with accelerate: set the "
            "accelerator's instead, e.g. accelerate={'mixed_precision': 'bf16'}"
        )
    try:
        from accelerate import Accelerator
    except ImportError:
        raise ImportError(
            "accelerate=... needs Hugging Face Accelerate: pip install accelerate (or "
            "pip install -e '.[accelerate]' from a source checkout)"
        ) from None
    accelerator = Accelerator(**({} if accelerate is True else accelerate))
    if accelerator.gradient_accumulation_steps > 1:
        # Skipped zero_grad calls would add the encoder's loss gradients to
        # those of DIM's discriminator.
        raise ValueError(
            "accelerate: gradient accumulation is not supported; raise batch_size or "
            "train on more processes"
        )
    return accelerator


def checked_device(device: str, accelerator=None) -> str:
    """The torch device that the ``device`` parameter names, checked to exist here."""
    if accelerator is not None:
        # accelerate places the module (e.g. on this process's GPU under
        # `accelerate launch`); the batches must go to the same device.
        placed = accelerator.device
        wanted = torch.device(resolve_device(device))
        if wanted.type != placed.type or wanted.index not in (None, placed.index):
            raise ValueError(
                f"device={device!r} differs from the accelerator's device {str(placed)!r}; "
                "leave device='auto' with accelerate (choose devices through accelerate, "
                "e.g. accelerate={'cpu': True} or `accelerate launch`)"
            )
        return str(placed)
    resolved = resolve_device(device)
    try:
        parsed = torch.device(resolved)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} needs CUDA, which is not available; use device='cpu' or 'auto'"
        )
    if parsed.type not in ("cpu", "cuda"):
        try:
            torch.empty(1, device=parsed)
        except (RuntimeError, AssertionError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
            raise ValueError(
                f"device={device!r} is not available here ({reason}); use device='cpu' or 'auto'"
            ) from None
    return resolved


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
