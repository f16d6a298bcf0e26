"""Save and load fitted transformers and pipelines without pickle.

``joblib.dump`` and ``pickle`` work, but loading a pickle runs whatever code
the file names: only load those from a source you trust. :func:`save` writes
a zip file instead. For a transformer it holds two entries:

- ``metadata.json``: the format version, the sk_dim version that wrote the
  file, the class name (one of the sk_dim transformers' classes), the constructor
  parameters, the fitted attributes (input shape, feature names, training
  history, the versions of sk_dim, torch and scikit-learn at fit, ...) as
  JSON;
- ``weights.safetensors``: the module's ``state_dict`` in the safetensors
  format (raw tensors and a JSON header; nothing in it can run code).

A fitted scikit-learn composite (``Pipeline``, ``ColumnTransformer``,
``FeatureUnion``, a search's ``best_estimator_``, ...) holding sk_dim
transformers is saved as ``composite.json`` (format and versions),
``estimator.skops`` (the composite in the skops format, each sk_dim
transformer replaced by a placeholder naming its entries) and, for each
transformer, ``steps/<i>/metadata.json`` and ``steps/<i>/weights.safetensors``.

:func:`load` refuses anything else: an entry, key or fitted attribute it does
not know, a class outside the allow-list, parameters the class rejects,
weights that do not fit the network the parameters describe (checked on
PyTorch's ``meta`` device, which allocates nothing, before the network is
built) or that are not finite, entries larger than their caps, and, in the
skops part, any type outside skops' trusted scikit-learn, numpy and
built-in types and sk_dim's placeholder. Every refusal is a ``ValueError``
raised before the file can make ``load`` allocate much more than its own
size. Files of format version 1 (weights in ``weights.pt``, read with
``torch.load(weights_only=True)``) still load. Parameters that are not JSON (a
user's ``torch.nn.Module`` encoder, callable views, a ``RandomState``)
cannot be saved this way: use joblib for those.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import pickle
import re
import secrets
import socket
import stat
import zipfile
import zlib
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._torch import resolve_device
from ._version import __version__, versions
from ._warn import warn_user
from .cmc import CMCTransformer
from .dim import DeepInfoMaxTransformer

FORMAT = "sk_dim"
FORMAT_VERSION = 2
# Version 1 stored the weights as a torch pickle (read with weights_only=True).
READABLE_VERSIONS = (1, 2)
# The transformer classes a file may name: sk_dim's own. A subclass defined
# elsewhere may hold code that a file cannot describe.
_REGISTRY: dict[str, type] = {cls.__name__: cls for cls in (DeepInfoMaxTransformer, CMCTransformer)}
_WEIGHTS = {1: "weights.pt", 2: "weights.safetensors"}
_METADATA_KEYS = {
    1: {"format", "format_version", "class", "params", "fitted", "history"},
    2: {"format", "format_version", "written_by", "class", "params", "fitted", "history"},
}
_COMPOSITE_KEYS = {"format", "format_version", "written_by", "versions", "steps"}
# Fitted attributes rebuilt at load rather than read from the file.
_REBUILT = {"net_", "history_"}
# The fitted attributes each class's fit sets (feature_names_in_ only for
# named columns), but for _REBUILT: load refuses any other. Kept by hand, as
# only a fit can list them; tests/test_persistence_files.py compares them with
# a real fit of each class, so a new attribute cannot be forgotten here.
_FITTED_COMMON = {
    "n_features_in_",
    "feature_names_in_",
    "input_shape_",
    "image_shape_",
    "precision_",
    "channels_last_",
    "versions_",
}
_FITTED_ATTRIBUTES = {
    "DeepInfoMaxTransformer": _FITTED_COMMON,
    "CMCTransformer": _FITTED_COMMON | {"views_", "n_views_", "n_negatives_"},
}

# Caps on what a file can make load read. JSON entries are capped in bytes and
# in containers (a JSON "{}" costs 3 bytes but ~70 bytes of Python objects);
# binary entries are stored uncompressed, so their size is bounded by the file's.
_MAX_JSON_BYTES = 16 << 20
_MAX_JSON_CONTAINERS = 1 << 20
# Inputs wider than this must come with at least as many weights: the rebuild
# makes a few rows of that width.
MAX_FREE_FEATURES = 1 << 22
# Version-1 weights were deflated: allow their usual ratio, refuse zip bombs.
_MAX_DEFLATE_RATIO = 20
_PLACEHOLDER = "sk_dim.persistence.SavedTransformer"


class UnsafeToSaveError(TypeError):
    """A parameter or fitted attribute cannot be stored as JSON.

    Raised by :func:`save` (it is a ``TypeError``) for a user's
    ``torch.nn.Module`` encoder, callable views, a ``RandomState`` or any
    other value that is not a string, number, None, or a list, tuple, dict
    or array of them. Such transformers can be saved with joblib, whose
    files run code when loaded.

    Parameters
    ----------
    *args
        The error message, as for any exception.

    See Also
    --------
    save : Raises it.
    joblib.dump : Saves any transformer, as a pickle.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.
    .. [2] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.persistence import UnsafeToSaveError, save
    >>> X, _ = load_digits(return_X_y=True)
    >>> rs = np.random.RandomState(0)
    >>> dim = DeepInfoMaxTransformer(max_epochs=1, batch_size=32, random_state=rs).fit(X[:100])
    >>> try:
    ...     save(dim, "never-written.skdim")
    ... except UnsafeToSaveError as exc:
    ...     print(type(exc).__name__, isinstance(exc, TypeError))
    UnsafeToSaveError True
    """


class SavedTransformer:
    """Stands for an sk_dim transformer inside the skops part of a saved composite.

    :func:`save` puts one in place of each sk_dim transformer before handing
    the composite to skops, and :func:`load` puts the transformer read from
    ``steps/<entry>/`` back. It is the one type outside skops' defaults that
    :func:`load` trusts in the skops part.

    Parameters
    ----------
    entry : str
        The transformer's folder in the zip file.
    """

    def __init__(self, entry: str = "") -> None:
        self.entry = entry

    def __repr__(self) -> str:
        return f"SavedTransformer({self.entry!r})"


def _is_transformer(obj) -> bool:
    return _REGISTRY.get(type(obj).__name__) is type(obj)


def _sk_dim_version() -> str:
    return __version__


# -- JSON encoding -------------------------------------------------------------
# JSON has no tuples, arrays or non-finite floats: they are tagged as
# {"__tuple__": [...]}, {"__ndarray__": [...], "dtype": ..., "shape": [...]},
# {"__float__": "nan"} (or "inf", "-inf") and dicts as {"__dict__": {...}};
# any other JSON object is refused.
_NON_FINITE = ("nan", "inf", "-inf")


def _encode(value, name: str):
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        # e.g. a fitted best_loss_ of inf; parameters' constraints refuse them at load
        return float(value) if math.isfinite(value) else {"__float__": str(float(value))}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufOU":
            raise UnsafeToSaveError(f"{name} is an array of dtype {value.dtype}")
        kind = "str" if value.dtype.kind in "OU" else value.dtype.str
        if kind == "str":
            items = [str(v) for v in value.ravel()]
        elif value.dtype.kind == "f" and not np.isfinite(value).all():
            items = [_encode(float(v), name) for v in value.ravel()]
        else:
            items = value.ravel().tolist()
        return {"__ndarray__": items, "dtype": kind, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, name) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, f"{name}[{k!r}]") for k, v in value.items()}}
    raise UnsafeToSaveError(
        f"{name} holds a {type(value).__name__}, which cannot be saved safely as JSON. "
        "Use joblib.dump (loading runs code: only load files you trust), or pass "
        "built-in options (strings, numbers, lists) instead."
    )


def _decode(value, name: str):
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, list):
        return [_decode(v, name) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(_decode(v, name) for v in value["__tuple__"])
        if set(value) == {"__float__"} and value["__float__"] in _NON_FINITE:
            return float(value["__float__"])
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
            return {k: _decode(v, name) for k, v in value["__dict__"].items()}
        if set(value) == {"__ndarray__", "dtype", "shape"}:
            try:
                dtype = object if value["dtype"] == "str" else np.dtype(value["dtype"])
                if dtype is not object and dtype.kind not in "biuf":
                    raise TypeError(dtype)
                if dtype is object and not all(isinstance(v, str) for v in value["__ndarray__"]):
                    raise TypeError("str")
                items = value["__ndarray__"]
                if dtype is not object and dtype.kind == "f" and isinstance(items, list):
                    items = [_decode(v, name) if isinstance(v, dict) else v for v in items]
                array = np.array(items, dtype=dtype)
                return array.reshape([int(s) for s in value["shape"]])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: invalid array in the saved file ({exc})") from None
    raise ValueError(f"{name}: unexpected value {_short(value)} in the saved file")


def _short(value, *, plain: bool = False, limit: int = 80) -> str:
    """A value read from a file, for a message: its repr (or str), cut short."""
    text = str(value) if plain else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


# -- save ------------------------------------------------------------------------


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
    if _is_transformer(obj):
        check_is_fitted(obj)
        entries = _transformer_entries(obj, "")
    elif isinstance(obj, BaseEstimator):
        entries = _composite_entries(obj)
    else:
        raise TypeError(
            f"save() handles {', '.join(_REGISTRY)} and scikit-learn estimators holding "
            f"them, got {type(obj).__name__}; use joblib.dump instead"
        )
    _write(entries, path)


def _write(entries: dict[str, tuple[bytes, int]], path) -> None:
    target, existing = _save_target(path)
    folder, name = os.path.split(target)
    _remove_orphans(folder, name)
    # Written to a temporary file next to the target, then renamed: a failure
    # never leaves half a file, and the temporary file is removed.
    tmp = os.path.join(folder, f"{_tmp_prefix(name)}{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Created as open() would (permissions from the umask, unlike mkstemp's 0600).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:  # named after the target: the temporary name means nothing to users
        raise OSError(
            exc.errno, f"cannot write {os.fsdecode(path)!r}: {exc.strerror}", folder
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            if existing is not None:
                _keep_owner_and_mode(file.fileno(), tmp, existing)
            with zipfile.ZipFile(file, "w") as archive:
                for entry, (data, compression) in entries.items():
                    archive.writestr(entry, data, compress_type=compression)
            # On disk before the rename: a crash never leaves the name on an empty file.
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
        _fsync_folder(folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _save_target(path) -> tuple[str, os.stat_result | None]:
    """The file :func:`save` writes for ``path`` (a symlink followed) and its status if it exists.

    Anything but a regular file there is refused, before a byte is written.
    """
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError("save(): path is empty; pass the name of the file to write")
    if path.endswith(("/", os.sep)):
        raise ValueError(f"save(): path {path!r} names a folder; pass the name of a file")
    target = os.path.realpath(path)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        return target, None
    if not stat.S_ISREG(existing.st_mode):
        shown = repr(path)
        if target != os.path.abspath(path):
            shown += f" (which resolves to {target!r})"
        raise ValueError(
            f"save(): path {shown} is {_file_kind(existing.st_mode)}, not a regular file; "
            "refusing to replace it"
        )
    return target, existing


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _tmp_prefix(name: str) -> str:
    # A PID means something only on the host that wrote it (think of network
    # folders): the host's tag keeps save from judging other hosts' temporaries.
    host = zlib.crc32(socket.gethostname().encode("utf-8", "replace"))
    return f".{name}.sk_dim-save.{host:08x}."


def _remove_orphans(folder: str, name: str) -> None:
    """Remove temporaries of ``name`` whose writer (a process on this host) has died."""
    if os.name != "posix":  # os.kill(pid, 0) would signal, not probe, on Windows
        return
    pattern = re.compile(re.escape(_tmp_prefix(name)) + r"(\d+)\.[0-9a-f]+\.tmp")
    with contextlib.suppress(OSError), os.scandir(folder) as listing:
        for entry in listing:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) and _is_dead(int(match[1])):
                with contextlib.suppress(OSError):
                    os.remove(entry.path)


def _is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        pass
    return False


def _keep_owner_and_mode(fd: int, tmp: str, existing: os.stat_result) -> None:
    # The replacement keeps the replaced file's permissions and, where allowed
    # (as root), its owner; never setuid or setgid bits, which a data file needs not.
    if hasattr(os, "fchown") and (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
    os.chmod(tmp, stat.S_IMODE(existing.st_mode) & 0o777)


def _fsync_folder(folder: str) -> None:
    # Makes the rename itself durable; not possible on Windows or some file systems.
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _transformer_entries(estimator, prefix: str) -> dict[str, tuple[bytes, int]]:
    """A transformer's ``metadata.json`` and ``weights.safetensors`` (none if unfitted)."""
    import safetensors.torch

    fitted = hasattr(estimator, "net_")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "written_by": _sk_dim_version(),
        "class": type(estimator).__name__,
        "params": {k: _encode(v, k) for k, v in estimator.get_params(deep=False).items()},
        "fitted": None,
        "history": None,
    }
    entries = {}
    if fitted:
        attributes = {
            key: value
            for key, value in vars(estimator).items()
            if key.endswith("_") and not key.startswith("_") and key not in _REBUILT
        }
        allowed = _FITTED_ATTRIBUTES[type(estimator).__name__]
        extra = sorted(set(attributes) - allowed)
        if extra:
            # load() refuses attributes fit does not set: a file save wrote must load.
            warn_user(
                f"save() leaves out the attributes {_short(extra)}, which "
                f"{type(estimator).__name__}.fit does not set; use joblib to keep them.",
                UserWarning,
            )
        metadata["fitted"] = {
            key: _encode(value, key) for key, value in attributes.items() if key in allowed
        }
        history = estimator.history_.reset_index().astype(object)
        history = history.where(history.notna(), None).to_dict("records")
        metadata["history"] = [
            {str(k): _encode(v, "history_") for k, v in row.items()} for row in history
        ]
        state = estimator.inference_state()
        training_only = sorted(set(estimator.net_.module_.state_dict()) - set(state))
        if training_only:
            warn_user(
                f"save() leaves out training-only state ({_short(training_only)}, e.g. CMC's "
                "memory bank); the loaded transformer transforms the same but cannot continue "
                "training. Use joblib to keep it.",
                UserWarning,
            )
        # safetensors wants contiguous tensors that share no memory: copies.
        tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
        # Raw floats barely compress: stored, they bound what load reads by the file size.
        entries[f"{prefix}weights.safetensors"] = (
            safetensors.torch.save(tensors),
            zipfile.ZIP_STORED,
        )
    text = json.dumps(metadata, allow_nan=False, indent=1).encode("utf-8")
    return {f"{prefix}metadata.json": (text, zipfile.ZIP_DEFLATED), **entries}


def _composite_entries(composite) -> dict[str, tuple[bytes, int]]:
    import skops
    import skops.io

    transformers = _find(composite, _sk_dim_object)
    for transformer in transformers:
        if not _is_transformer(transformer):
            raise UnsafeToSaveError(
                f"{type(transformer).__name__} is not one of {tuple(_REGISTRY)}; "
                "use joblib.dump instead"
            )
    # A copy of the composite in which each transformer is a placeholder: the
    # memo makes deepcopy return the placeholder instead of copying the
    # transformer (and its network); the user's object is left as it was.
    memo = {id(t): SavedTransformer(str(i)) for i, t in enumerate(transformers)}
    stripped = copy.deepcopy(composite, memo)
    try:
        blob = skops.io.dumps(stripped)
        untrusted = set(skops.io.get_untrusted_types(data=blob)) - {_PLACEHOLDER}
    except Exception as exc:  # skops raises many kinds for objects it cannot store
        raise UnsafeToSaveError(
            f"skops cannot store this {type(composite).__name__}: {exc}. Use joblib.dump "
            "(loading runs code: only load files you trust)."
        ) from exc
    if untrusted:
        raise UnsafeToSaveError(
            f"{type(composite).__name__} holds types that load() would refuse (not trusted by "
            f"skops by default): {sorted(untrusted)}. Use joblib.dump (loading runs code: only "
            "load files you trust)."
        )
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "written_by": _sk_dim_version(),
        "versions": {"skops": skops.__version__, **versions()},
        "steps": [str(i) for i in range(len(transformers))],
    }
    entries = {
        "composite.json": (json.dumps(header, indent=1).encode("utf-8"), zipfile.ZIP_DEFLATED),
        "estimator.skops": (blob, zipfile.ZIP_STORED),
    }
    for i, transformer in enumerate(transformers):
        entries.update(_transformer_entries(transformer, f"steps/{i}/"))
    return entries


def _sk_dim_object(obj) -> bool:
    return isinstance(obj, tuple(_REGISTRY.values()))


class _Discard:
    def write(self, data) -> None:
        pass


def _find(obj, wanted) -> list:
    """The objects reachable from ``obj`` for which ``wanted`` holds, each once.

    Walks the object graph as pickle does (so it finds fitted clones in
    ``steps``, ``transformers_``, ``best_estimator_``, ... alike) without
    descending into, or serialising, the objects found; the output is
    thrown away.
    """
    found: dict[int, object] = {}

    class Finder(pickle.Pickler):
        def persistent_id(self, value):
            if wanted(value):
                found.setdefault(id(value), value)
                return str(id(value))
            return None

    try:
        Finder(_Discard(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise UnsafeToSaveError(
            f"{type(obj).__name__} cannot be saved safely: {exc}. Use joblib.dump (loading "
            "runs code: only load files you trust)."
        ) from exc
    return list(found.values())


# -- load ------------------------------------------------------------------------


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
        save: not a zip or a damaged one, unknown or missing entries or keys,
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
    with _open_regular_file(path) as file:
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a file written by sk_dim's save(): {exc}") from None
        with archive:
            return _load_archive(archive, path, device)


def _open_regular_file(path):
    """``path`` opened for reading, if it is a regular file (a symlink is followed).

    Anything else is refused before it is opened: a FIFO would block, a device
    such as ``/dev/zero`` be read without end, and opening some devices acts.
    """

    def refuse(mode):
        return ValueError(
            f"{path} is {_file_kind(mode)}, not a regular file; load() reads only files "
            "written by save()"
        )

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise refuse(mode)
    # Checked again once open, non-blocking (no effect on a regular file): a
    # FIFO put in the file's place since the stat is refused, not waited on.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise refuse(mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _load_archive(archive: zipfile.ZipFile, path, device):
    """The transformer or composite in ``archive``, read from ``path``."""
    names = archive.namelist()
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: the zip file repeats entries")
    single = {"metadata.json", *_WEIGHTS.values()}
    if "composite.json" not in names and (not set(names) <= single or "metadata.json" not in names):
        expected = ["metadata.json", _WEIGHTS[FORMAT_VERSION]]
        raise ValueError(f"{path}: expected exactly the entries {expected}, found {sorted(names)}")
    try:
        if "composite.json" in names:
            return _load_composite(archive, set(names), path, device)
        return _load_transformer(archive, "", set(names), path, device)
    except RecursionError:
        raise ValueError(f"{path}: the saved values are nested too deeply") from None


def _load_transformer(archive, prefix: str, names: set, path, device, *, composite: bool = False):
    """Read ``<prefix>metadata.json`` and the weights; check them; rebuild the transformer."""
    where = f"{path} ({prefix.rstrip('/')}): " if prefix else f"{path}: "
    metadata = _read_json(archive, f"{prefix}metadata.json", path)
    version = _check_format(metadata, f"{prefix}metadata.json", path)
    if composite and version != FORMAT_VERSION:
        raise ValueError(f"{where}metadata.json: format version {version} in a composite")
    if set(metadata) != _METADATA_KEYS[version]:
        raise ValueError(
            f"{where}metadata.json must hold the keys {sorted(_METADATA_KEYS[version])}, "
            f"got {sorted(metadata)}"
        )
    if metadata["class"] not in _REGISTRY:
        raise ValueError(
            f"{where}class {_short(metadata['class'])} is not allowed; "
            f"expected one of {tuple(_REGISTRY)}"
        )
    # Unfitted transformers (no weights) appear only inside composites.
    fitted = metadata["fitted"]
    weights = f"{prefix}{_WEIGHTS[version]}"
    expected = {f"{prefix}metadata.json"} | (
        {weights} if fitted is not None or not composite else set()
    )
    present = {n for n in names if n.startswith(prefix) and n.count("/") == prefix.count("/")}
    if present != expected:
        raise ValueError(
            f"{path}: expected exactly the entries {sorted(expected)}, found {sorted(present)}"
        )

    cls = _REGISTRY[metadata["class"]]
    params = metadata["params"]
    if not isinstance(params, dict):
        raise ValueError(f"{where}'params' must be a JSON object")
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ValueError(f"{where}unknown parameters {unknown} for {cls.__name__}")
    params = {k: _decode(v, k) for k, v in params.items()}
    try:
        estimator = cls.from_saved(params)
    except ValueError as exc:
        raise ValueError(f"{where}invalid parameters: {exc}") from None
    if fitted is None and composite:
        if metadata["history"] is not None:
            raise ValueError(f"{where}an unfitted transformer has no history")
        return estimator

    if not isinstance(fitted, dict):
        raise ValueError(f"{where}'fitted' must be a JSON object")
    allowed = _FITTED_ATTRIBUTES[cls.__name__]
    for key in fitted:
        if key not in allowed:
            raise ValueError(
                f"{where}unexpected fitted attribute {_short(key)}: {cls.__name__}.fit sets "
                f"only {sorted(allowed)}"
            )
    fitted = {key: _decode(value, key) for key, value in fitted.items()}
    for key in ("input_shape_", "image_shape_", "n_features_in_", "versions_"):
        if key not in fitted:
            raise ValueError(f"{where}the fitted attribute {key!r} is missing")
    # fit sets image_shape_ to input_shape_ for images and to None for vectors;
    # compared as repr so that a list, or floats, in its place are refused too.
    # An input_shape_ that is no tuple at all, from_saved refuses.
    shape = fitted["input_shape_"]
    expected = shape if isinstance(shape, tuple) and len(shape) == 3 else None
    if isinstance(shape, tuple) and repr(fitted["image_shape_"]) != repr(expected):
        raise ValueError(
            f"{where}the fitted attribute image_shape_={_short(fitted['image_shape_'])} does "
            f"not match input_shape_={_short(shape)}: expected {_short(expected)}"
        )
    history = _history(metadata["history"], where)
    state = _read_weights(archive, weights, version, path)
    hint = _version_hint(metadata, fitted["versions_"], version)
    _check_versions(fitted["versions_"], path)
    device = _load_device(estimator.device) if device is None else _check_device(device)
    n_features, n_weights = fitted["n_features_in_"], sum(v.numel() for v in state.values())
    if isinstance(n_features, int) and n_features > max(MAX_FREE_FEATURES, n_weights):
        # Checked before from_saved builds anything n_features_in_ wide.
        raise ValueError(
            f"{where}n_features_in_={n_features} is more than the weights ({n_weights} "
            "values) can serve; refusing to build inputs that wide"
        )
    try:
        return cls.from_saved(params, fitted, state, history=history, device=device)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}{hint}") from None


def _load_composite(archive, names: set, path, device):
    import skops.io

    header = _read_json(archive, "composite.json", path)
    version = _check_format(header, "composite.json", path)
    if version != FORMAT_VERSION or set(header) != _COMPOSITE_KEYS:
        raise ValueError(
            f"{path}: composite.json must hold the keys {sorted(_COMPOSITE_KEYS)} of format "
            f"version {FORMAT_VERSION}"
        )
    steps = header["steps"]
    if not (
        isinstance(steps, list)
        and steps == [str(i) for i in range(len(steps))]
        and isinstance(header["versions"], dict)
    ):
        raise ValueError(f"{path}: composite.json: invalid 'steps' or 'versions'")
    allowed = {"composite.json", "estimator.skops"}
    for step in steps:
        allowed |= {f"steps/{step}/metadata.json", f"steps/{step}/weights.safetensors"}
    if not names <= allowed or "estimator.skops" not in names:
        raise ValueError(
            f"{path}: unexpected entries {sorted(names - allowed)} or no estimator.skops"
        )
    blob = _read_binary(archive, "estimator.skops", path)
    try:
        inner = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: estimator.skops is not a valid skops file: {exc}") from None
    with inner:  # skops' file is a zip too: no bombs in it either
        for info in inner.infolist():
            _check_ratio(info, f"estimator.skops/{info.filename}", path)
    try:
        untrusted = set(skops.io.get_untrusted_types(data=blob)) - {_PLACEHOLDER}
    except Exception as exc:  # skops raises many kinds on a damaged file
        raise ValueError(f"{path}: estimator.skops is not a valid skops file: {exc}") from None
    if untrusted:
        raise ValueError(
            f"{path}: estimator.skops names types that are not trusted: {sorted(untrusted)}; "
            "refusing to load them (only scikit-learn, numpy and built-in types trusted by "
            "skops, and sk_dim transformers, are)"
        )
    try:
        stripped = skops.io.loads(blob, trusted=[_PLACEHOLDER])
    except Exception as exc:
        raise ValueError(f"{path}: estimator.skops could not be loaded: {exc}") from None
    try:
        placeholders = _find(stripped, lambda obj: isinstance(obj, SavedTransformer))
    except TypeError as exc:
        raise ValueError(f"{path}: estimator.skops holds an unexpected object: {exc}") from None
    entries = sorted(p.entry for p in placeholders if isinstance(p.entry, str))
    if len(entries) != len(placeholders) or entries != sorted(steps):
        raise ValueError(
            f"{path}: the composite's placeholders {entries} do not match its steps {steps}"
        )
    transformers = {
        step: _load_transformer(archive, f"steps/{step}/", names, path, device, composite=True)
        for step in steps
    }
    _check_versions(header["versions"], path)
    # Each placeholder replaced by its transformer (the rest copied, small).
    memo = {id(p): transformers[p.entry] for p in placeholders}
    return copy.deepcopy(stripped, memo)


# -- reading entries -----------------------------------------------------------------


def _read_bytes(archive, info, path) -> bytes:
    try:
        with archive.open(info) as file:
            return file.read()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError) as exc:  # fmt: skip
        raise ValueError(f"{path}: the entry {info.filename} is damaged: {exc}") from None


def _read_json(archive, name: str, path) -> dict:
    info = archive.getinfo(name)
    if info.file_size > _MAX_JSON_BYTES:
        raise ValueError(
            f"{path}: {name} is {info.file_size} bytes, more than the {_MAX_JSON_BYTES} "
            "a save file's metadata may hold"
        )
    raw = _read_bytes(archive, info, path)
    if raw.count(b"{") + raw.count(b"[") > _MAX_JSON_CONTAINERS:
        raise ValueError(
            f"{path}: {name} holds more than {_MAX_JSON_CONTAINERS} JSON objects and arrays"
        )
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: {name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {name} must hold a JSON object")
    return value


def _read_binary(archive, name: str, path) -> bytes:
    info = archive.getinfo(name)
    _check_ratio(info, name, path)
    return _read_bytes(archive, info, path)


def _check_ratio(info: zipfile.ZipInfo, name: str, path) -> None:
    # Stored entries cannot be larger than the file; deflated ones (version 1
    # weights) at most their usual ratio: no zip bombs.
    if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + (1 << 20):
        raise ValueError(
            f"{path}: {name} claims {info.file_size} bytes from {info.compress_size} "
            "compressed; refusing it"
        )


def _check_format(metadata: dict, name: str, path) -> int:
    version = metadata.get("format_version")
    if metadata.get("format") != FORMAT or version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: {name}: unsupported format {_short(metadata.get('format'))} version "
            f"{_short(version)}; this sk_dim ({_sk_dim_version()}) reads {FORMAT!r} versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return version


def _read_weights(archive, name: str, version: int, path) -> dict[str, torch.Tensor]:
    raw = _read_binary(archive, name, path)
    if version == 1:
        try:
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"{path}: weights.pt is not a plain dict of tensors (refused by "
                f"torch.load(weights_only=True)): {exc}"
            ) from None
    else:
        import safetensors.torch

        try:
            state = safetensors.torch.load(raw)
        except Exception as exc:  # safetensors' SafetensorError is not exported
            raise ValueError(f"{path}: {name} is not a valid safetensors file: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and type(v) is torch.Tensor for k, v in state.items()
    ):
        raise ValueError(f"{path}: {name} must hold a dict of tensors")
    return state


# -- checks ----------------------------------------------------------------------------


def _version_hint(metadata: dict, fitted_versions, version: int) -> str:
    fitted_with = fitted_versions.get("sk_dim") if isinstance(fitted_versions, dict) else None
    written_by = metadata.get("written_by", fitted_with)
    return (
        f" (the file was written by sk_dim {_short(written_by, plain=True)} in format version "
        f"{version}; "
        f"this is sk_dim {_sk_dim_version()}, which writes format version {FORMAT_VERSION}: "
        "the network may have changed between versions)"
    )


def _history(records, where) -> pd.DataFrame:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{where}'history' must be a list of JSON objects")
    rows = []
    for record in records:
        row = {k: _decode(v, "history_") for k, v in record.items()}
        if "epoch" not in row or not all(
            v is None or isinstance(v, int | float) for v in row.values()
        ):
            raise ValueError(f"{where}invalid history record {_short(record)}")
        rows.append(row)
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=np.int64))
    return pd.DataFrame(rows).set_index("epoch")


def _check_versions(saved, path) -> None:
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: invalid versions_ {_short(saved)}")
    running = versions()
    if "skops" in saved:
        import skops

        running["skops"] = skops.__version__
    differ = {k: (saved.get(k), v) for k, v in running.items() if saved.get(k) != v}
    if differ:
        listed = ", ".join(
            f"{k} {_short(old, plain=True)} (now {new})" for k, (old, new) in differ.items()
        )
        warn_user(f"{path} was saved with {listed}; its output may differ slightly", UserWarning)


def _load_device(saved: str) -> str:
    """The device the transformer was saved with, or the CPU where that one is absent."""
    device = resolve_device(saved)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        warn_user(f"the transformer was saved with device={saved!r}, absent here; using the CPU")
        return "cpu"
    return device


def _check_device(device: str) -> str:
    """The device ``load`` was asked for, refused where it is absent (as ``fit`` refuses it)."""
    device = resolve_device(device)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} needs CUDA, which is not available; use device='cpu' or "
            "'auto', or leave device=None"
        )
    return device


__all__ = ["UnsafeToSaveError", "load", "save"]
