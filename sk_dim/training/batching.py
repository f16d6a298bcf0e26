"""Mini-batches for training and inference, and reading a memmap's rows from its file.

Batches are sliced from one tensor already on the device, or read one
batch at a time from a numpy array (a memmap), and reshuffled every epoch
(in-batch negatives need shuffling; per-row ``Dataset.__getitem__`` calls
are slow). Only numpy and torch are imported.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor


class DeviceBatches:
    """Mini-batches of ``(rows, row indices)`` sliced from one tensor or array.

    A tensor is moved to the device once when it fits comfortably in its
    memory; otherwise each batch is gathered on the host into pinned memory
    and copied without blocking. A numpy array (e.g. a ``numpy.memmap`` of
    images on disk, already shaped ``(n, *row_shape)``) is read one batch at
    a time and never copied whole: float64 rows become float32 per batch,
    and a memmap's rows are read from its file (see :class:`FileRows`), so
    memory does not grow with the data set.

    The order is reshuffled every epoch with a seeded generator. What
    happens to a last incomplete batch depends on ``last_batch``:

    - ``"drop"`` (training, the default when shuffling): skipped when there
      is at least one full batch, as the reference implementations do (a
      few rows would take a full optimizer step with batch-norm statistics
      of a few samples and as few in-batch negatives; the rows left out
      change every epoch); a lone batch of one row is skipped too;
    - ``"merge"`` (held-out scoring): every row is kept, and a trailing batch
      of one row joins the previous one (in-batch negatives need two);
    - ``"keep"`` (transform, the default otherwise): every batch as it comes.

    With ``num_shards`` > 1 (one shard per process of a distributed fit),
    every process draws the same order from an identically seeded
    generator and iterates over its own ``shard``: every ``num_shards``-th
    row of the order, cut to ``n // num_shards`` rows so that all processes
    take the same number of steps (up to ``num_shards - 1`` rows sit out
    each epoch, different ones every epoch). The indices yielded are the
    rows' positions in the whole data set.
    """

    def __init__(
        self,
        data: Tensor | np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        device: torch.device | str,
        generator: torch.Generator | None = None,
        num_shards: int = 1,
        shard: int = 0,
        last_batch: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.num_shards = num_shards
        self.shard = shard
        if last_batch is None:
            last_batch = "drop" if shuffle else "keep"
        if last_batch not in ("drop", "merge", "keep"):
            raise ValueError(f"last_batch must be 'drop', 'merge' or 'keep', got {last_batch!r}")
        self.last_batch = last_batch
        if isinstance(data, np.ndarray):
            self.data = data
            self.file = FileRows.of(data)
        else:
            self.data = _to_device_if_it_fits(data, self.device)

    def __len__(self) -> int:
        return len(self._bounds(self._n_rows()))

    def _n_rows(self) -> int:
        return len(self.data) // self.num_shards

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of each batch of ``n`` rows, after ``last_batch``'s rule."""
        size = self.batch_size
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        if not bounds:
            return bounds
        start, stop = bounds[-1]
        if self.last_batch == "drop":
            incomplete = stop - start < self.batch_size
            if (incomplete and len(bounds) > 1) or stop - start < 2:
                bounds.pop()
        elif self.last_batch == "merge" and stop - start == 1 and len(bounds) > 1:
            bounds.pop()
            bounds[-1] = (bounds[-1][0], stop)
        return bounds

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.num_shards > 1:
            # Equal shares: a process with one step more would wait forever for
            # the others to synchronise its gradients.
            order = order[self.shard :: self.num_shards][: self._n_rows()]
        on_device = isinstance(self.data, Tensor) and self.data.device == self.device
        if on_device:  # one copy of the order per epoch rather than two per batch
            order = order.to(self.device)
        for start, stop in self._bounds(len(order)):
            index = order[start:stop]
            if on_device:
                yield self.data[index], index
                continue
            yield self._gather(index), index.to(self.device)

    def _read(self, rows: np.ndarray | slice) -> np.ndarray:
        if self.file is not None:
            return self.file.read(rows)
        return np.array(self.data[rows])

    def _gather(self, index: Tensor) -> Tensor:
        """Rows ``index`` (on the host) of host data, copied to the device."""
        if isinstance(self.data, np.ndarray):
            if self.shuffle:
                rows = self._read(index.numpy())
            else:  # in order: a slice, read sequentially (and copied: it may be read-only)
                rows = self._read(slice(int(index[0]), int(index[-1]) + 1))
            if rows.dtype == np.float64:
                rows = rows.astype(np.float32)
            rows = torch.from_numpy(np.ascontiguousarray(rows))
        else:
            rows = self.data[index]
        if self.device.type == "cuda":
            rows = rows.pin_memory()
        return rows.to(self.device, non_blocking=True)


class FileRows:
    """Rows of an array that views a ``numpy.memmap``, read from its file with ``os.pread``.

    Reading through the mapping leaves every page it touches resident in
    the process (a random row maps the whole page-cache folio around it), so
    a pass over a file larger than memory would look, and under memory
    limits act, like loading it. Reading the file leaves nothing mapped:
    memory holds the rows asked for, and the page cache the rest.
    """

    def __init__(self, path: str, offset: int, row_bytes: int, dtype, row_shape) -> None:
        self.path, self.offset, self.row_bytes = path, offset, row_bytes
        self.dtype, self.row_shape = np.dtype(dtype), tuple(row_shape)

    @classmethod
    def of(cls, data: np.ndarray) -> FileRows | None:
        """The file reader of ``data``, or None if it is not a plain view of a memmap's file."""
        memmap = memmap_of(data)
        if (
            memmap is None
            or getattr(memmap, "filename", None) is None
            or memmap.mode == "c"  # copy-on-write: the file may not hold what the array does
            or not isinstance(getattr(memmap, "_mmap", None), mmap.mmap)
            or not data.flags.c_contiguous
            or len(data) == 0
        ):
            return None
        mapped_from = memmap.offset - memmap.offset % mmap.ALLOCATIONGRANULARITY
        mapping_start = np.frombuffer(memmap._mmap, dtype=np.uint8).ctypes.data
        offset = mapped_from + data.ctypes.data - mapping_start
        return cls(memmap.filename, offset, data[:1].nbytes, data.dtype, data.shape[1:])

    def read(self, rows: np.ndarray | slice) -> np.ndarray:
        """Rows ``rows`` (an index array, or a slice of consecutive rows) as a new array."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if isinstance(rows, slice):
                n = rows.stop - rows.start
                out = np.empty((n, *self.row_shape), self.dtype)
                _pread_into(fd, out, self.offset + rows.start * self.row_bytes)
                return out
            out = np.empty((len(rows), *self.row_shape), self.dtype)
            for i, row in enumerate(rows.tolist()):
                _pread_into(fd, out[i], self.offset + row * self.row_bytes)
            return out
        finally:
            os.close(fd)


def memmap_of(data: np.ndarray) -> np.memmap | None:
    """The ``numpy.memmap`` that ``data`` is (or views), or None."""
    while data is not None and not isinstance(data, np.memmap):
        data = getattr(data, "base", None)
    return data


def _pread_into(fd: int, out: np.ndarray, offset: int) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8))
    while len(view):
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise EOFError(f"the memmap's file ended at byte {offset}")
        view, offset = view[n:], offset + n


def _to_device_if_it_fits(data: Tensor, device: torch.device) -> Tensor:
    if device.type != "cuda":
        return data.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    # Leave most of the memory to activations.
    return data.to(device) if data.nbytes < 0.25 * free else data


def iter_row_chunks(data: np.ndarray, chunk_bytes: int = 32 * 2**20) -> Iterator[np.ndarray]:
    """``data`` in consecutive chunks of rows (a memmap's read from its file)."""
    rows = max(1, chunk_bytes // max(1, data[:1].nbytes))
    reader = FileRows.of(data)
    for start in range(0, len(data), rows):
        stop = min(start + rows, len(data))
        yield data[start:stop] if reader is None else reader.read(slice(start, stop))
