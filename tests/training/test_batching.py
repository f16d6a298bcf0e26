"""sk_dim.training.batching: the batches an epoch takes, and rows read from a memmap's file."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import sk_dim
from sk_dim import training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(embedding_dim=8, batch_size=32, device="cpu", precision="float32", random_state=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:160].astype(np.float32)


def batch_sizes(n, batch_size, **options):
    batches = training.DeviceBatches(
        torch.arange(n)[:, None], batch_size=batch_size, device="cpu", **options
    )
    sizes = [len(index) for _, index in batches]
    assert len(batches) == len(sizes)
    return sizes


def test_training_skips_the_last_incomplete_batch():
    assert batch_sizes(100, 32, shuffle=True) == [32, 32, 32]
    assert batch_sizes(96, 32, shuffle=True) == [32, 32, 32]
    assert batch_sizes(20, 32, shuffle=True) == [20]  # no full batch: the rows as one
    assert batch_sizes(1, 32, shuffle=True) == []
    # Held-out scoring keeps every row; a single last row joins the batch before.
    assert batch_sizes(100, 32, shuffle=False, last_batch="merge") == [32, 32, 32, 4]
    assert batch_sizes(97, 32, shuffle=False, last_batch="merge") == [32, 32, 33]
    # transform keeps every row as it comes.
    assert batch_sizes(97, 32, shuffle=False) == [32, 32, 32, 1]


def test_an_epoch_on_100_rows_takes_3_steps_of_32(digits):
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=1).fit(digits[:100])
    assert est.history_["train_batch_count"].tolist() == [3]
    assert est.net_.optimizer_.state_dict()["state"][0]["step"].item() == 3
    assert est.transform(digits[:100]).shape[0] == 100


# -- sharding, and rows read from a memmap's file -------------------------------------------


def test_shards_take_disjoint_equal_shares_of_one_order():
    data = torch.arange(10)[:, None]
    shards = [
        training.DeviceBatches(
            data,
            batch_size=2,
            shuffle=True,
            device="cpu",
            generator=torch.Generator().manual_seed(0),
            num_shards=3,
            shard=s,
            last_batch="keep",
        )
        for s in range(3)
    ]
    rows = [torch.cat([index for _, index in shard]).tolist() for shard in shards]
    assert [len(r) for r in rows] == [3, 3, 3]  # 10 // 3 each: the same number of steps
    assert len(set(sum(rows, []))) == 9  # disjoint
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    assert rows == [order[s::3][:3] for s in range(3)]
    with pytest.raises(ValueError, match="last_batch must be 'drop', 'merge' or 'keep'"):
        training.DeviceBatches(data, batch_size=2, shuffle=False, device="cpu", last_batch="all")


@pytest.fixture
def memmap(tmp_path):
    values = np.arange(7 * 2 * 3, dtype=np.float64).reshape(7, 2, 3)
    header = 24  # the rows start after a few bytes of something else
    path = tmp_path / "rows.f8"
    written = np.memmap(path, dtype=np.float64, mode="w+", offset=header, shape=values.shape)
    written[:] = values
    written.flush()
    return np.memmap(path, dtype=np.float64, mode="r", offset=header, shape=values.shape), values


def test_file_rows_read_the_rows_a_memmap_holds(memmap):
    data, values = memmap
    view = np.asarray(data)[1:]  # a plain array viewing the memmap: its offset is found
    assert isinstance(training.memmap_of(view), np.memmap)
    assert training.memmap_of(values) is None
    reader = training.FileRows.of(view)
    np.testing.assert_array_equal(reader.read(slice(0, 3)), values[1:4])
    np.testing.assert_array_equal(reader.read(np.array([5, 0, 5])), values[[6, 1, 6]])
    # Not plain views of a file: read through numpy instead.
    assert training.FileRows.of(values) is None
    assert training.FileRows.of(data[:, :, ::2]) is None  # not contiguous
    assert training.FileRows.of(data[:0]) is None
    copy_on_write = np.memmap(data.filename, dtype=np.float64, mode="c", offset=24, shape=(7, 2, 3))
    assert training.FileRows.of(copy_on_write) is None


def test_batches_of_a_memmap_are_its_rows_as_float32(memmap):
    data, values = memmap
    for shuffle in (False, True):
        batches = training.DeviceBatches(
            data, batch_size=3, shuffle=shuffle, device="cpu", last_batch="keep"
        )
        assert batches.file is not None
        for x, index in batches:
            assert x.dtype == torch.float32
            np.testing.assert_array_equal(x.numpy(), values[index.numpy()].astype(np.float32))


def test_row_chunks_cover_the_rows_in_order(memmap):
    data, values = memmap
    row_bytes = 2 * 3 * 8
    for array in (data, values):
        chunks = list(training.iter_row_chunks(array, chunk_bytes=3 * row_bytes))
        assert [len(c) for c in chunks] == [3, 3, 1]
        np.testing.assert_array_equal(np.concatenate(chunks), values)
    assert [len(c) for c in training.iter_row_chunks(values, chunk_bytes=1)] == [1] * 7
