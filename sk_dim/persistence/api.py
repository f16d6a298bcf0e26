"""The two entry points: :func:`save` and :func:`load`."""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .archive import open_archive, write_archive
from .composites import composite_entries, read_composite
from .transformers import (
    TRANSFORMER_CLASSES,
    WEIGHTS,
    is_transformer,
    read_transformer,
    transformer_entries,
)


def save(obj, path) -> None:
    """Save a fitted transformer, or a composite holding some, without pickle.

    Parameters
    ----------
    obj : DeepInfoMaxTransformer, CMCTransformer or scikit-learn estimator
        A fitted transformer whose parameters are all JSON-like (strings,
        numbers, None, lists and tuples of them), or a fitted scikit-learn
        composite (``Pipeline``, ``ColumnTransformer``, ``FeatureUnion``,
        ...) that skops can store with its default trusted types, holding
        such transformers at any depth.
    path : str or os.PathLike
        File to write (a zip file; ``.skdim`` is a good suffix). A symlink
        is followed: the file it points to is written. An existing file is
        replaced and keeps its permission bits (and, where allowed, its
        owner); a new one gets ``0o666`` less the umask, as with ``open``.
        See Notes for what happens on failure.

    Raises
    ------
    ValueError
        If ``path`` is empty, ends with a path separator, or names
        something that is not a regular file (a directory, a device such as
        ``/dev/null``, a FIFO, a socket): it is left as it was.
    TypeError
        If ``obj`` is neither an sk_dim transformer nor a scikit-learn
        estimator, a parameter or fitted attribute of a transformer cannot be
        stored as JSON (a user's ``torch.nn.Module`` encoder, callable views,
        a ``RandomState``), or the composite holds types that skops does not
        trust by default (e.g. a ``FunctionTransformer`` of a user's
        function): the message says to use joblib instead.
    sklearn.exceptions.NotFittedError
        If a transformer saved on its own is not fitted.

    See Also
    --------
    load : Read the file back.
    UnsafeToSaveError : Raised for parameters that are not JSON.
    joblib.dump : Saves any transformer, as a pickle.

    Notes
    -----
    Only the parameters, fitted attributes and the module's weights are
    saved, enough to transform: CMC's memory bank (training state, kept with
    ``keep_memory_bank=True``) is left out with a warning, as is the
    optimizer state; joblib keeps both. So are attributes with a trailing
    underscore that ``fit`` does not set (one's own, added after fit),
    which :func:`load` would refuse. In a composite, unfitted sk_dim
    transformers (e.g. in a ``ColumnTransformer``'s ``transformers``
    parameter, whose fitted clones are in ``transformers_``) are saved as
    their parameters.

    The file is written under a temporary name in the same folder
    (``.<name>.sk_dim-save.<host>.<pid>.<random>.tmp``), flushed to disk
    with ``fsync``, then renamed over ``path`` (and the folder synced where
    the system allows), so ``path`` holds either the old file or the whole
    new one, even after a crash or power loss. A failed save removes its
    temporary file; one left by a process killed during a save (``kill
    -9``) is removed by the next save to the same path, once no process of
    this host has that PID. The file is replaced, not rewritten in place:
    hard links to the old file keep the old content.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.
    .. [2] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       2019.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.svm import LinearSVC
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.persistence import load, save
    >>> X, y = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(max_epochs=1, random_state=0).fit(X[:100])
    >>> path = os.path.join(tempfile.mkdtemp(), "dim.skdim")
    >>> save(dim, path)
    >>> bool((load(path).transform(X[:5]) == dim.transform(X[:5])).all())
    True
    >>> pipe = make_pipeline(dim, LinearSVC()).fit(X[:100], y[:100])
    >>> save(pipe, path)
    >>> bool((load(path).predict(X[:20]) == pipe.predict(X[:20])).all())
    True
    """
    if is_transformer(obj):
        check_is_fitted(obj)
        entries = transformer_entries(obj, "")
    elif isinstance(obj, BaseEstimator):
        entries = composite_entries(obj)
    else:
        raise TypeError(
            f"save() handles {', '.join(TRANSFORMER_CLASSES)} and scikit-learn estimators "
            f"holding them, got {type(obj).__name__}; use joblib.dump instead"
        )
    write_archive(entries, path)


def load(path, *, device: str | None = None):
    """Load a transformer or composite written by :func:`save`, without running code from the file.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save` or ``estimator.save``.
    device : str or None, default=None
        Device of the loaded networks. None uses each transformer's
        ``device`` parameter, falling back to the CPU (with a warning) when
        that is CUDA and none is available; a device named here that is not
        available raises a ValueError, as ``fit`` does.

    Returns
    -------
    obj : DeepInfoMaxTransformer, CMCTransformer or scikit-learn estimator
        The fitted transformer or composite; ``transform`` and ``predict``
        give the same output as the saved one.

    Raises
    ------
    OSError
        If the file cannot be opened (``FileNotFoundError``,
        ``PermissionError``, ...).
    ValueError
        If ``path`` is not a regular file (a directory, a FIFO, a device such
        as ``/dev/zero``, a socket): this is checked, following symlinks,
        before the file is opened (and again once it is), so such a path
        neither blocks nor is read without end. If the file is not a valid
        save: not a zip or a damaged one, of a format version other than 2
        (the message names both), unknown or missing entries or keys,
        an entry larger than its cap, invalid JSON, a class outside the
        sk_dim transformers' classes, invalid parameters, fitted attributes
        that the class's ``fit`` does not set (the message names the file
        and the attribute) or that contradict each other (an
        ``image_shape_`` other than ``input_shape_`` for images, or than
        None for vectors), weights that are not finite or do not fit the
        network (the message then names the sk_dim version that wrote the
        file), or, in a composite, types that skops does not trust.

    Warns
    -----
    UserWarning
        If the file was written with other versions of sk_dim, torch,
        scikit-learn (or skops) than the running ones.

    See Also
    --------
    save : Write the file.
    joblib.load : Loads pickles (runs code from the file).

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.
    .. [2] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       2019.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.persistence import load, save
    >>> X, _ = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(max_epochs=1, batch_size=32, random_state=0).fit(X[:100])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "dim.skdim")
    ...     save(dim, path)
    ...     loaded = load(path)
    >>> loaded.transform(X[:5]).shape == dim.transform(X[:5]).shape
    True
    """
    with open_archive(path) as archive:
        names = archive.namelist()
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: the zip file repeats entries")
        try:
            if "composite.json" in names:
                return read_composite(archive, set(names), path, device)
            if "metadata.json" not in names:
                expected = ["metadata.json", WEIGHTS]
                raise ValueError(
                    f"{path}: expected exactly the entries {expected}, found {sorted(names)}"
                )
            return read_transformer(archive, "", set(names), path, device)
        except RecursionError:
            raise ValueError(f"{path}: the saved values are nested too deeply") from None
