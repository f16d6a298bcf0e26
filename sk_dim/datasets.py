"""Loaders for standard image data sets that already sit on the user's disk.

Nothing in this module downloads anything: every loader reads the files in
their official distribution format from a ``data_home`` folder. As with
scikit-learn's fetchers, ``data_home=None`` means :func:`get_data_home`: the
folder named by the environment variable ``SK_DIM_DATA`` when it is set, else
``~/sk_dim_data``. This keeps the package usable on machines without network
access and makes the provenance of the pixels explicit (the user chose the copy).

All loaders return uint8 pixels, flattened in ``data`` and shaped in
``images`` (``(n, 28, 28)`` for MNIST, ``(n, 3, 32, 32)`` for CIFAR-10), with
``image_shape`` given as ``(C, H, W)`` to match the channel-first convention
used throughout ``sk_dim``.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils import Bunch

__all__ = ["get_data_home", "load_cifar10", "load_mnist"]

_DATA_HOME_ENV = "SK_DIM_DATA"
_DEFAULT_DATA_HOME = "~/sk_dim_data"

_SUBSETS = ("train", "test", "all")

# Official file names, without the optional ".gz" suffix; (images, labels) per split.
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# idx magic: two zero bytes, a type code (0x08 = unsigned byte), then the number of dims.
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"

_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR10_META = "batches.meta"
_CIFAR10_SHAPE = (3, 32, 32)
_CIFAR10_LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
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

_CIFAR10_DESCR = """\
CIFAR-10
--------
60,000 colour images, 32x32 pixels, in 10 classes with 6,000 images each
(50,000 training images in five batches and 10,000 test images). Each row of
``data`` holds 3072 uint8 values, channel-first: the 1024 red values, then the
1024 green, then the 1024 blue, each plane in row-major order, as in the
official "python version" archive; ``images`` has shape (n, 3, 32, 32).
Source: https://www.cs.toronto.edu/~kriz/cifar.html. Citation: A. Krizhevsky,
"Learning Multiple Layers of Features from Tiny Images", technical report,
University of Toronto, 2009.
The loader returns whatever pixels the batch files hold: some redistributed
copies are rebuilt from a JPEG re-encoding, whose pixels differ slightly from
the original release, so say which copy produced any reported number.
"""


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> str:
    """The folder the data set loaders read from.

    Like scikit-learn's ``sklearn.datasets.get_data_home``, but nothing is created and
    nothing is ever downloaded into it: put the files there yourself.

    Parameters
    ----------
    data_home : str, os.PathLike or None, default=None
        The folder. None uses the environment variable ``SK_DIM_DATA`` when it
        is set and not empty, else ``~/sk_dim_data``. ``~`` is expanded.

    Returns
    -------
    data_home : str
        The folder's path, which need not exist.

    See Also
    --------
    load_mnist : Reads MNIST from this folder or its ``mnist`` subfolder.
    load_cifar10 : Reads CIFAR-10 from its ``cifar-10-batches-py`` subfolder.

    Examples
    --------
    >>> import os
    >>> from sk_dim.datasets import get_data_home
    >>> get_data_home("~/data") == os.path.expanduser("~/data")
    True
    >>> get_data_home()  # doctest: +SKIP
    '/home/me/sk_dim_data'
    """
    if data_home is None:
        data_home = os.environ.get(_DATA_HOME_ENV) or _DEFAULT_DATA_HOME
    return str(Path(data_home).expanduser())


def _default_hint(data_home) -> str:
    """How the folder searched was chosen, when the user did not name it."""
    if data_home is not None:
        return ""
    source = (
        f"${_DATA_HOME_ENV}"
        if os.environ.get(_DATA_HOME_ENV)
        else f"{_DEFAULT_DATA_HOME} (${_DATA_HOME_ENV} is not set)"
    )
    return (
        f" data_home=None reads {source}; pass data_home=... or set ${_DATA_HOME_ENV} "
        "to the folder holding the files."
    )


def _subset_splits(subset: str) -> tuple[str, ...]:
    """Map ``subset`` to the splits to read, in output order (train first)."""
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}.")
    return ("train", "test") if subset == "all" else (subset,)


def _find_file(name: str, folders: Sequence[Path], suffixes: Sequence[str]) -> Path | None:
    """Return the first ``folder / (name + suffix)`` that is a file, or None."""
    for folder in folders:
        for suffix in suffixes:
            candidate = folder / (name + suffix)
            if candidate.is_file():
                return candidate
    return None


def _find_files(
    names: Sequence[str],
    folders: Sequence[Path],
    *,
    suffixes: Sequence[str] = ("",),
    hint: str = "",
) -> list[Path]:
    """Locate every file in ``names``; report all the missing ones at once.

    Listing every missing name and every folder searched in one error saves
    the user a round trip per file when the layout is wrong.
    """
    found: list[Path] = []
    missing: list[str] = []
    for name in names:
        path = _find_file(name, folders, suffixes)
        if path is None:
            missing.append(name)
        else:
            found.append(path)
    if missing:
        alternatives = " or ".join(repr(s) for s in suffixes if s)
        optional = f" (optionally with a {alternatives} suffix)" if alternatives else ""
        searched = ", ".join(str(folder) for folder in folders)
        if not any(folder.is_dir() for folder in folders):
            searched += " (none of these folders exists)"
        raise FileNotFoundError(
            f"Could not find {', '.join(missing)}{optional} in any of: {searched}. "
            f"Nothing is downloaded; place the files there first.{hint}"
        )
    return found


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


def _check_label_range(labels: np.ndarray, path: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= _N_CLASSES):
        raise ValueError(
            f"{path} holds labels in {labels.min()}..{labels.max()}, "
            f"expected 0..{_N_CLASSES - 1}; the file is corrupt or not this data set."
        )


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
    splits = _subset_splits(subset)
    root = Path(get_data_home(data_home))
    names = [name for split in splits for name in _MNIST_FILES[split]]
    paths = _find_files(
        names, [root, root / "mnist"], suffixes=("", ".gz"), hint=_default_hint(data_home)
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
        _check_label_range(labels, label_path)
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


def _unpickle(path: Path) -> Any:
    """Load a CIFAR pickle, re-raising any failure as a ValueError naming the file."""
    with path.open("rb") as f:
        try:
            # encoding="bytes" is what the official Python 2 pickles need; it
            # keeps their str keys as bytes (b"data") and leaves Python 3 str keys alone.
            return pickle.load(f, encoding="bytes")
        except Exception as exc:  # corrupt pickles raise many unrelated exception types
            raise ValueError(
                f"Could not unpickle {path} ({type(exc).__name__}: {exc}); "
                "the file is truncated or corrupt."
            ) from exc


def _get_entry(batch: Any, key: str, path: Path) -> Any:
    """Fetch ``key`` from a CIFAR dict whose keys may be bytes or str."""
    if not isinstance(batch, dict):
        # ValueError, not TypeError: a file with unexpected content is bad data,
        # and callers should catch one exception type for all corrupt files.
        raise ValueError(  # noqa: TRY004
            f"{path} does not hold a dict but a {type(batch).__name__}."
        )
    for candidate in (key.encode("ascii"), key):
        if candidate in batch:
            return batch[candidate]
    raise ValueError(f"{path} has no {key!r} entry; its keys are {sorted(map(str, batch))}.")


def _load_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one CIFAR-10 batch file; return (data, labels)."""
    batch = _unpickle(path)
    data = np.asarray(_get_entry(batch, "data", path))
    n_features = math.prod(_CIFAR10_SHAPE)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != n_features:
        raise ValueError(
            f"{path}: 'data' must be a uint8 array of shape (n, {n_features}), "
            f"got dtype {data.dtype} and shape {data.shape}."
        )
    labels = np.asarray(_get_entry(batch, "labels", path))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: 'labels' must be a 1-d sequence of integers, "
            f"got dtype {labels.dtype} and shape {labels.shape}."
        )
    if labels.shape[0] != data.shape[0]:
        raise ValueError(f"{path} holds {data.shape[0]} images but {labels.shape[0]} labels.")
    _check_label_range(labels, path)
    return data, labels


def _load_cifar10_names(path: Path | None) -> np.ndarray:
    """Class names from batches.meta, or the standard ones when it is absent."""
    if path is None:
        return np.asarray(_CIFAR10_LABEL_NAMES)
    names = _get_entry(_unpickle(path), "label_names", path)
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    if len(names) != _N_CLASSES:
        raise ValueError(f"{path} lists {len(names)} label names, expected {_N_CLASSES}.")
    return np.asarray(names)


def load_cifar10(
    data_home: str | os.PathLike[str] | None = None,
    *,
    subset: str = "train",
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from the official "python version" batch files on disk.

    Reads ``data_batch_1`` to ``data_batch_5``, ``test_batch`` and, if
    present, ``batches.meta`` from ``data_home/cifar-10-batches-py`` (the
    folder the official ``cifar-10-python.tar.gz`` extracts to) or from
    ``data_home`` itself. Nothing is ever downloaded.

    Parameters
    ----------
    data_home : str, os.PathLike or None, default=None
        Folder containing ``cifar-10-batches-py``, or that folder itself.
        ``~`` is expanded. None means :func:`get_data_home`:
        ``$SK_DIM_DATA``, else ``~/sk_dim_data``.
    subset : {"train", "test", "all"}, default="train"
        Which split to load: the 50,000 training images, the 10,000 test
        images, or all 60,000 with the training images first (batches 1 to 5
        in order, then the test batch), so that rows ``[:50000]`` are the
        training set and rows ``[50000:]`` the test set.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : ndarray of shape (n_samples, 3072), dtype uint8
            Flattened images in the official channel-first order: 1024 red,
            then 1024 green, then 1024 blue values, each plane row-major.
        images : ndarray of shape (n_samples, 3, 32, 32), dtype uint8
            The same pixels as ``data``, channel-first (a view of the same
            memory). Use ``images.transpose(0, 2, 3, 1)`` for plotting.
        target : ndarray of shape (n_samples,), dtype int64
            The class index, 0..9.
        target_names : ndarray of shape (10,), dtype str
            Class names from ``batches.meta``, or the standard ten names
            (``"airplane"`` ... ``"truck"``) if that file is absent.
        image_shape : tuple of int
            ``(3, 32, 32)``, the channel-first shape of one image.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` of shape (n_samples, 3072), uint8, and ``target`` of shape
        (n_samples,), int64.

    Raises
    ------
    FileNotFoundError
        If a needed batch file is found in none of the searched folders; the
        message names the missing files and the folders searched (and, for
        ``data_home=None``, where that folder came from).
    ValueError
        If ``subset`` is invalid, or a file cannot be unpickled or does not
        hold a valid batch (uint8 data with 3072 columns, as many labels as
        images, labels in 0..9); the message names the file.

    See Also
    --------
    load_mnist : Load MNIST from the official idx files.

    Notes
    -----
    The batch files are pickles, and unpickling can run arbitrary code: only
    load files from a source you trust.

    The loader returns whatever pixels the files hold. Some redistributed
    copies are rebuilt from a JPEG re-encoding of the images, so their pixels
    differ slightly from the original release; say which copy produced any
    reported number.

    References
    ----------
    .. [1] A. Krizhevsky, "Learning Multiple Layers of Features from Tiny
       Images", technical report, University of Toronto, 2009.
       https://www.cs.toronto.edu/~kriz/cifar.html

    Examples
    --------
    >>> from sk_dim.datasets import load_cifar10
    >>> cifar = load_cifar10()  # $SK_DIM_DATA or ~/sk_dim_data  # doctest: +SKIP
    >>> cifar = load_cifar10("~/data")  # doctest: +SKIP
    >>> cifar.data.shape, cifar.images.shape, cifar.image_shape  # doctest: +SKIP
    ((50000, 3072), (50000, 3, 32, 32), (3, 32, 32))
    >>> cifar.target_names[:3]  # doctest: +SKIP
    array(['airplane', 'automobile', 'bird'], dtype='<U10')
    >>> X, y = load_cifar10("~/data", subset="test", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, y.shape  # doctest: +SKIP
    ((10000, 3072), (10000,))
    """
    splits = _subset_splits(subset)
    root = Path(get_data_home(data_home))
    folders = [root / _CIFAR10_DIR, root]
    names = [name for split in splits for name in _CIFAR10_FILES[split]]
    paths = _find_files(
        names,
        folders,
        hint=" Extract the official cifar-10-python.tar.gz into data_home."
        + _default_hint(data_home),
    )

    data_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for path in paths:
        data, labels = _load_cifar10_batch(path)
        data_parts.append(data)
        label_parts.append(labels)
    target_names = _load_cifar10_names(_find_file(_CIFAR10_META, folders, ("",)))

    # concatenate copies, so the result never aliases arrays held by the pickles.
    data = np.concatenate(data_parts)
    target = np.concatenate(label_parts).astype(np.int64)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        images=data.reshape(-1, *_CIFAR10_SHAPE),
        target=target,
        target_names=target_names,
        image_shape=_CIFAR10_SHAPE,
        DESCR=_CIFAR10_DESCR,
    )
