"""Where the data set loaders look for their files, and the checks they share.

:func:`get_data_home` names the folder; :func:`find_files` locates a loader's
files there and reports every missing one at once, with :func:`data_home_hint`
saying where an implicit folder came from; :func:`subset_splits` and
:func:`check_label_range` check the ``subset`` argument and the labels read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_DATA_HOME_ENV = "SK_DIM_DATA"
_DEFAULT_DATA_HOME = "~/sk_dim_data"

_SUBSETS = ("train", "test", "all")


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


def data_home_hint(data_home) -> str:
    """How the folder searched was chosen, when the user did not name it.

    Parameters
    ----------
    data_home : str, os.PathLike or None
        The loader's ``data_home`` argument.

    Returns
    -------
    hint : str
        A sentence for a file-not-found message (with a leading space), or
        ``""`` when the user named the folder.
    """
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


def subset_splits(subset: str) -> tuple[str, ...]:
    """Map ``subset`` to the splits to read, in output order (train first).

    Parameters
    ----------
    subset : {"train", "test", "all"}
        The loader's ``subset`` argument.

    Returns
    -------
    splits : tuple of str
        ``("train",)``, ``("test",)`` or ``("train", "test")``.

    Raises
    ------
    ValueError
        If ``subset`` is none of the three.
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}.")
    return ("train", "test") if subset == "all" else (subset,)


def find_file(name: str, folders: Sequence[Path], suffixes: Sequence[str]) -> Path | None:
    """Return the first ``folder / (name + suffix)`` that is a file, or None.

    Parameters
    ----------
    name : str
        File name without suffix.
    folders : sequence of pathlib.Path
        Folders searched, in order.
    suffixes : sequence of str
        Suffixes tried in each folder, in order (``""`` for none).

    Returns
    -------
    path : pathlib.Path or None
        The file found first, or None.
    """
    for folder in folders:
        for suffix in suffixes:
            candidate = folder / (name + suffix)
            if candidate.is_file():
                return candidate
    return None


def find_files(
    names: Sequence[str],
    folders: Sequence[Path],
    *,
    suffixes: Sequence[str] = ("",),
    hint: str = "",
) -> list[Path]:
    """Locate every file in ``names``; report all the missing ones at once.

    Listing every missing name and every folder searched in one error saves
    the user a round trip per file when the layout is wrong.

    Parameters
    ----------
    names : sequence of str
        File names without suffix.
    folders : sequence of pathlib.Path
        Folders searched, in order, for each name.
    suffixes : sequence of str, default=("",)
        Suffixes tried in each folder, in order (``""`` for none).
    hint : str, default=""
        Appended to the error message.

    Returns
    -------
    paths : list of pathlib.Path
        One file per name, in the order of ``names``.

    Raises
    ------
    FileNotFoundError
        If a name is found in no folder; the message lists every missing
        name and every folder searched.
    """
    found: list[Path] = []
    missing: list[str] = []
    for name in names:
        path = find_file(name, folders, suffixes)
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


def check_label_range(labels: np.ndarray, path: Path, n_classes: int) -> None:
    """Refuse labels outside ``0..n_classes - 1``, naming the file they came from.

    Parameters
    ----------
    labels : ndarray of int
        The labels read.
    path : pathlib.Path
        The file they were read from.
    n_classes : int
        Number of classes of the data set.

    Raises
    ------
    ValueError
        If a label is negative or at least ``n_classes``.
    """
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{path} holds labels in {labels.min()}..{labels.max()}, "
            f"expected 0..{n_classes - 1}; the file is corrupt or not this data set."
        )


__all__ = [
    "check_label_range",
    "data_home_hint",
    "find_file",
    "find_files",
    "get_data_home",
    "subset_splits",
]
