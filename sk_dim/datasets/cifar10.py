"""The CIFAR-10 loader: the official "python version" batch files."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from .home import (
    check_label_range,
    data_home_hint,
    find_file,
    find_files,
    get_data_home,
    subset_splits,
)

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
    check_label_range(labels, path, _N_CLASSES)
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
    splits = subset_splits(subset)
    root = Path(get_data_home(data_home))
    folders = [root / _CIFAR10_DIR, root]
    names = [name for split in splits for name in _CIFAR10_FILES[split]]
    paths = find_files(
        names,
        folders,
        hint=" Extract the official cifar-10-python.tar.gz into data_home."
        + data_home_hint(data_home),
    )

    data_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for path in paths:
        data, labels = _load_cifar10_batch(path)
        data_parts.append(data)
        label_parts.append(labels)
    target_names = _load_cifar10_names(find_file(_CIFAR10_META, folders, ("",)))

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


__all__ = ["load_cifar10"]
