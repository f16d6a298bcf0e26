"""sk_dim._runtime: device, precision and channels_last, resolved once into a Runtime."""

import contextlib

import pytest
import torch

from sk_dim import _runtime
from sk_dim._runtime import (
    Runtime,
    autocast,
    checked_device,
    resolve_channels_last,
    resolve_precision,
    resolve_runtime,
    to_memory_format,
)


@pytest.mark.parametrize("native", [False, True])
def test_auto_precision_on_cpu_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch, native):
    monkeypatch.setattr(_runtime, "cpu_computes_bfloat16", lambda: native)
    assert resolve_precision("auto", "cpu") == ("bfloat16" if native else "float32")


def test_explicit_precisions_and_float16_off_cuda():
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="precision='float16' needs a CUDA device"):
        resolve_precision("float16", "cpu")
    assert resolve_precision("float16", "cpu", strict=False) == "float32"  # inference
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'float8'"):
        resolve_precision("float8", "cpu")


def test_channels_last_auto_means_cuda_only():
    assert resolve_channels_last("auto", "cpu") is False
    assert resolve_channels_last("auto", "cuda:0") is True
    assert resolve_channels_last(True, "cpu") is True
    assert resolve_channels_last(False, "cuda") is False


def test_checked_device_refuses_what_this_machine_lacks():
    assert checked_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device='gpu0' is not a torch device"):
        checked_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' needs CUDA, which is not available"):
            checked_device("cuda")


def test_autocast_is_a_no_op_for_float32_and_casts_otherwise():
    assert isinstance(autocast("cpu", "float32"), contextlib.nullcontext)
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("cpu", "bfloat16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("cpu", "float32"):
        assert (a @ b).dtype == torch.float32


def test_to_memory_format_touches_only_4d_batches():
    x = torch.randn(2, 3, 4, 5)
    y = to_memory_format(x, True)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    assert to_memory_format(x, False) is x
    vectors = torch.randn(2, 3)
    assert to_memory_format(vectors, True) is vectors


def test_resolve_runtime_for_training_and_inference():
    runtime = resolve_runtime("cpu", "float32", "auto")
    assert runtime == Runtime("cpu", "float32", False, None)
    assert runtime.autocast_precision == "float32" and runtime.shared_seed(7) == 7
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_runtime("cpu", "float16", False)
    # Inference: a float16 model loaded on a CPU runs in float32.
    assert resolve_runtime("cpu", "float16", True, training=False).precision == "float32"


class FakeAccelerator:
    num_processes = 1


def test_a_runtime_without_its_accelerator_keeps_the_arithmetic_it_trained_in():
    runtime = Runtime("cpu", "bfloat16", False, FakeAccelerator())
    # Under accelerate the accelerator autocasts; the net itself does not.
    assert runtime.autocast_precision == "float32"
    assert isinstance(runtime.autocast(), contextlib.nullcontext)
    plain = runtime.without_accelerator()
    assert plain == Runtime("cpu", "float32", False, None)
    assert runtime.shared_seed(11) == 11  # one process: its own seed
