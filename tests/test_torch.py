"""sk_dim._torch: device choice, seeding and thread counts."""

import os
import threading

import pytest
import torch

from sk_dim._torch import resolve_device, seeded, torch_threads


def test_resolve_device_auto_is_cuda_only_where_available():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"  # other names are passed through unchecked


def test_seeded_draws_as_manual_seed_and_restores_the_global_stream():
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(0)
    expected_inside = torch.rand(3)

    torch.manual_seed(123)
    with seeded(0, "cpu"):
        inside = torch.rand(3)
    assert torch.equal(inside, expected_inside)
    assert torch.equal(torch.rand(3), expected_after)  # the caller's stream, untouched


def test_seeded_blocks_in_threads_do_not_mix_their_streams():
    torch.manual_seed(5)
    alone = torch.rand(1000)
    results = {}

    def draw(name):
        with seeded(5, "cpu"):
            results[name] = torch.rand(1000)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(values, alone) for values in results.values())


def test_torch_threads_sets_then_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_torch_threads_is_capped_at_the_cpu_count():
    before = torch.get_num_threads()
    with torch_threads(10_000):
        assert torch.get_num_threads() == (os.cpu_count() or 1)
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error_and_after_nested_blocks():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(1):
        with torch_threads(2):
            pass
        # The outer block is still running: the count is restored only when it ends.
        assert torch.get_num_threads() == min(2, os.cpu_count() or 1)
    assert torch.get_num_threads() == before
