"""The MNIST loader: the official idx files, gzipped or plain."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .home import check_label_range, data_home_hint, find_files, get_data_home, subset_splits

# Official file names, without the optional ".gz" suffix; (images, labels) per split.
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# idx magic: two zero bytes, a type code (0x08 = unsigned byte), then the number of dims.
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"

_N_CLASSES = 10

_MNIST_DESCR = """\
MNIST handwritten digits
------------------------
70,000 grayscale images of the handwritten digits 0-9, 28x28 pixels each
(60,000 training and 10,000 test images), with uint8 pixel values in 0..255
where 0 is the background. Source: Y. LeCun, C. Cortes and C. J. C. Burges,
"The MNIST database of handwritten digits", http://yann.lecun.com/exdb/mnist/.
Citation: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
learning applied to document recognition", Proceedings of the IEEE 86(11),
2278-2324, 1998.
"""


def _read_maybe_gzipped(path: Path) -> bytes:
    """Read a file's bytes, decompressing it when it is gzip data.

    Compression is detected from the content, not the '.gz' suffix, because
    browsers often decompress MNIST downloads on the fly but keep the name.
    """
    with path.open("rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not is_gzip:
            return f.read()
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return gz.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{path} is not a readable gzip file ({exc}); it may be truncated or corrupt."
            ) from exc


def _parse_idx(raw: bytes, path: Path, *, expected_magic: int) -> np.ndarray:
    """Parse an unsigned-byte idx file; return a read-only view of its payload."""
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    kind = "images" if expected_magic == _IDX_IMAGES_MAGIC else "labels"
    # Check the magic number first (it needs only 4 bytes), so that a wrong
    # kind of file is reported as such rather than as a short header.
    magic = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if magic is not None and magic != expected_magic:
        raise ValueError(
            f"{path} is not an MNIST {kind} file: its magic number is 0x{magic:08X}, "
            f"expected 0x{expected_magic:08X}."
        )
    if len(raw) < header_size:
        raise ValueError(
            f"{path} holds only {len(raw)} bytes, fewer than the {header_size}-byte "
            f"header of an idx {kind} file; it is truncated or not an idx file."
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_size])
    # math.prod on Python ints cannot overflow, unlike a numpy product.
    expected_size = header_size + math.prod(dims)
    if len(raw) != expected_size:
        raise ValueError(
            f"{path} holds {len(raw)} bytes but its header (dims {dims}) implies "
            f"{expected_size}; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def load_mnist(
    data_home: str | os.PathLike[str] | None = None,
    *,
    subset: str = "train",
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load the MNIST handwritten digits from the official idx files on disk.

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each either
    gzipped (``.gz`` suffix) or plain, from ``data_home`` or from
    ``data_home/mnist``. Nothing is ever downloaded.

    Parameters
    ----------
    data_home : str, os.PathLike or None, default=None
        Folder holding the four files, or its parent when they sit in a
        ``mnist`` subfolder. ``~`` is expanded. None means
        :func:`get_data_home`: ``$SK_DIM_DATA``, else ``~/sk_dim_data``.
    subset : {"train", "test", "all"}, default="train"
        Which split to load: the 60,000 training images, the 10,000 test
        images, or all 70,000 with the training images first, so that rows
        ``[:60000]`` are the training set and rows ``[60000:]`` the test set.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : ndarray of shape (n_samples, 784), dtype uint8
            Flattened images, pixel values 0..255 (0 is the background).
        images : ndarray of shape (n_samples, 28, 28), dtype uint8
            The same pixels as ``data`` (a view of the same memory).
        target : ndarray of shape (n_samples,), dtype int64
            The digit shown, 0..9.
        target_names : ndarray of shape (10,)
            The class labels, ``np.arange(10)``.
        image_shape : tuple of int
            ``(1, 28, 28)``, the channel-first shape of one image.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` of shape (n_samples, 784), uint8, and ``target`` of shape
        (n_samples,), int64.

    Raises
    ------
    FileNotFoundError
        If a needed file is found in none of the searched folders; the
        message names the missing files and the folders searched (and, for
        ``data_home=None``, where that folder came from).
    ValueError
        If ``subset`` is invalid, or a file is truncated, corrupt, has the
        wrong idx magic number, or its image and label counts differ; the
        message names the file.

    See Also
    --------
    load_cifar10 : Load CIFAR-10 from the official python batches.
    sklearn.datasets.load_digits : The small 8x8 digits bundled with sklearn.

    References
    ----------
    .. [1] Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of
       handwritten digits", http://yann.lecun.com/exdb/mnist/.
    .. [2] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
       learning applied to document recognition", Proceedings of the IEEE
       86(11), 2278-2324, 1998.

    Examples
    --------
    >>> from sk_dim.datasets import load_mnist
    >>> mnist = load_mnist()  # $SK_DIM_DATA or ~/sk_dim_data  # doctest: +SKIP
    >>> mnist = load_mnist("~/data")  # doctest: +SKIP
    >>> mnist.data.shape, mnist.images.shape, mnist.image_shape  # doctest: +SKIP
    ((60000, 784), (60000, 28, 28), (1, 28, 28))
    >>> X, y = load_mnist("~/data", subset="test", return_X_y=True)  # doctest: +SKIP
    >>> X.dtype, y.dtype, X.shape  # doctest: +SKIP
    (dtype('uint8'), dtype('int64'), (10000, 784))
    """
    splits = subset_splits(subset)
    root = Path(get_data_home(data_home))
    names = [name for split in splits for name in _MNIST_FILES[split]]
    paths = find_files(
        names, [root, root / "mnist"], suffixes=("", ".gz"), hint=data_home_hint(data_home)
    )

    image_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for i in range(0, len(paths), 2):
        image_path, label_path = paths[i], paths[i + 1]
        images = _parse_idx(
            _read_maybe_gzipped(image_path), image_path, expected_magic=_IDX_IMAGES_MAGIC
        )
        labels = _parse_idx(
            _read_maybe_gzipped(label_path), label_path, expected_magic=_IDX_LABELS_MAGIC
        )
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{image_path} holds {images.shape[0]} images but {label_path} holds "
                f"{labels.shape[0]} labels; one of the files is corrupt or mismatched."
            )
        check_label_range(labels, label_path, _N_CLASSES)
        if image_parts and images.shape[1:] != image_parts[0].shape[1:]:
            raise ValueError(
                f"{image_path} holds images of shape {images.shape[1:]}, but "
                f"{paths[0]} holds {image_parts[0].shape[1:]}."
            )
        image_parts.append(images)
        label_parts.append(labels)

    # concatenate always copies, which turns the read-only views over the file
    # bytes into ordinary writable arrays (one copy, even for "all").
    images = np.concatenate(image_parts)
    target = np.concatenate(label_parts).astype(np.int64)
    n_samples, height, width = images.shape
    data = images.reshape(n_samples, height * width)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=np.arange(_N_CLASSES),
        image_shape=(1, height, width),
        DESCR=_MNIST_DESCR,
    )


__all__ = ["load_mnist"]
