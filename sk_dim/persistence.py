"""Save and load fitted transformers without pickle.

``joblib.dump`` and ``pickle`` work, but loading a pickle runs whatever code
the file names: only load those from a source you trust. :func:`save` writes
a zip file holding two entries instead:

- ``metadata.json``: the format version, the class name (one of
  :data:`ALLOWED_CLASSES`), the constructor parameters, the fitted
  attributes (input shape, feature names, training history, the versions of
  sk_dim, torch and scikit-learn at fit, ...) as JSON;
- ``weights.pt``: the module's ``state_dict``, tensors only.

:func:`load` refuses anything else: an entry or key it does not know, a
class outside the allow-list, parameters the class rejects, weights that are
not plain tensors (they are read with ``torch.load(weights_only=True)``,
which refuses any pickled object) or that do not fit the rebuilt network.
It constructs the class with the parameters, rebuilds the network for the
saved input shape and loads the weights into it. Parameters that are not
JSON (a user's ``torch.nn.Module`` encoder, callable views, a
``RandomState``) cannot be saved this way: use joblib for those.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import warnings
import zipfile
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from ._torch import resolve_device

FORMAT = "sk_dim"
FORMAT_VERSION = 1
ALLOWED_CLASSES = ("DeepInfoMaxTransformer", "CMCTransformer")
_ENTRIES = {"metadata.json", "weights.pt"}
_METADATA_KEYS = {"format", "format_version", "class", "params", "fitted", "history"}
# Fitted attributes rebuilt at load rather than read from the file.
_REBUILT = {"net_", "history_"}


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


def _classes() -> dict[str, type]:
    from .cmc import CMCTransformer
    from .dim import DeepInfoMaxTransformer

    classes = {"DeepInfoMaxTransformer": DeepInfoMaxTransformer, "CMCTransformer": CMCTransformer}
    return {name: classes[name] for name in ALLOWED_CLASSES}


# -- JSON encoding -------------------------------------------------------------
# JSON has no tuples or arrays: they are tagged as {"__tuple__": [...]},
# {"__ndarray__": [...], "dtype": ..., "shape": [...]} and dicts as
# {"__dict__": {...}}; any other JSON object is refused.


def _encode(value, name: str):
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        if not math.isfinite(value):
            raise UnsafeToSaveError(f"{name}={value!r} is not finite")
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufOU":
            raise UnsafeToSaveError(f"{name} is an array of dtype {value.dtype}")
        kind = "str" if value.dtype.kind in "OU" else value.dtype.str
        items = [str(v) for v in value.ravel()] if kind == "str" else value.ravel().tolist()
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
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
            return {k: _decode(v, name) for k, v in value["__dict__"].items()}
        if set(value) == {"__ndarray__", "dtype", "shape"}:
            try:
                dtype = object if value["dtype"] == "str" else np.dtype(value["dtype"])
                if dtype is not object and dtype.kind not in "biuf":
                    raise TypeError(dtype)
                if dtype is object and not all(isinstance(v, str) for v in value["__ndarray__"]):
                    raise TypeError("str")
                array = np.array(value["__ndarray__"], dtype=dtype)
                return array.reshape([int(s) for s in value["shape"]])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: invalid array in the saved file ({exc})") from None
    raise ValueError(f"{name}: unexpected value {value!r} in the saved file")


# -- save ------------------------------------------------------------------------


def save(estimator, path) -> None:
    """Save a fitted transformer as JSON parameters and tensor weights.

    Parameters
    ----------
    estimator : DeepInfoMaxTransformer or CMCTransformer
        A fitted transformer whose parameters are all JSON-like (strings,
        numbers, None, lists and tuples of them).
    path : str or os.PathLike
        File to write (a zip file; ``.skdim`` is a good suffix).

    Raises
    ------
    TypeError
        If the class is not one of :data:`ALLOWED_CLASSES`, or a parameter or
        fitted attribute cannot be stored as JSON (a user's
        ``torch.nn.Module`` encoder, callable views, a ``RandomState``): the
        message says to use joblib instead.
    sklearn.exceptions.NotFittedError
        If the transformer is not fitted.

    See Also
    --------
    load : Read the file back.
    UnsafeToSaveError : Raised for parameters that are not JSON.
    joblib.dump : Saves any transformer, as a pickle.

    Notes
    -----
    Only what ``transform`` needs is saved: CMC's memory bank (training
    state, kept with ``keep_memory_bank=True``) is left out with a warning;
    joblib keeps it. The optimizer state is not saved either.

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
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.persistence import load, save
    >>> X, _ = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(max_epochs=1, random_state=0).fit(X[:100])
    >>> path = os.path.join(tempfile.mkdtemp(), "dim.skdim")
    >>> save(dim, path)
    >>> bool((load(path).transform(X[:5]) == dim.transform(X[:5])).all())
    True
    """
    name = type(estimator).__name__
    if name not in ALLOWED_CLASSES or _classes()[name] is not type(estimator):
        raise TypeError(
            f"save() handles {', '.join(ALLOWED_CLASSES)}, got {name}; use joblib.dump instead"
        )
    check_is_fitted(estimator)
    params = {k: _encode(v, k) for k, v in estimator.get_params(deep=False).items()}
    fitted = {}
    for key, value in vars(estimator).items():
        if key.endswith("_") and not key.startswith("_") and key not in _REBUILT:
            fitted[key] = _encode(value, key)
    history = estimator.history_.reset_index().astype(object)
    history = history.where(history.notna(), None).to_dict("records")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "params": params,
        "fitted": fitted,
        "history": [{str(k): _encode(v, "history_") for k, v in row.items()} for row in history],
    }
    state = estimator.net_.module_.state_dict()
    training_only = [k for k in state if k.startswith("contrast.")]
    if training_only:
        warnings.warn(
            "save() leaves out the memory bank (training state); the loaded transformer "
            "transforms the same but cannot continue training. Use joblib to keep it.",
            UserWarning,
            stacklevel=2,
        )
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items() if k not in training_only}, weights)
    # Written to a temporary name first, so a failure never leaves half a file.
    tmp = f"{os.fspath(path)}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata, allow_nan=False, indent=1))
        archive.writestr("weights.pt", weights.getvalue())
    os.replace(tmp, path)


# -- load ------------------------------------------------------------------------


def load(path, *, device: str | None = None):
    """Load a transformer written by :func:`save`, without running code from the file.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save` or ``estimator.save``.
    device : str or None, default=None
        Device of the loaded network. None uses the transformer's ``device``
        parameter, falling back to the CPU (with a warning) when that is CUDA
        and none is available.

    Returns
    -------
    estimator : DeepInfoMaxTransformer or CMCTransformer
        The fitted transformer; ``transform`` gives the same output as the
        saved one.

    Raises
    ------
    ValueError
        If the file is not a valid save: not a zip, unknown or missing
        entries or keys, invalid JSON, a class outside
        :data:`ALLOWED_CLASSES`, invalid parameters, weights that hold
        anything but tensors or do not match the network.

    Warns
    -----
    UserWarning
        If the file was written with other versions of sk_dim, torch or
        scikit-learn than the running ones.

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
    metadata, state = _read(path)
    cls = _classes()[metadata["class"]]
    params = metadata["params"]
    if not isinstance(params, dict):
        raise ValueError(f"{path}: 'params' must be a JSON object")
    known = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown parameters {unknown} for {cls.__name__}")
    estimator = cls(**{k: _decode(v, k) for k, v in params.items()})
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise ValueError(f"{path}: invalid parameters: {exc}") from None

    fitted = metadata["fitted"]
    if not isinstance(fitted, dict):
        raise ValueError(f"{path}: 'fitted' must be a JSON object")
    for key, value in fitted.items():
        if (
            not key.isidentifier()
            or not key.endswith("_")
            or key.startswith("_")
            or key in _REBUILT
            or hasattr(cls, key)
        ):
            raise ValueError(f"{path}: unexpected fitted attribute {key!r}")
        setattr(estimator, key, _decode(value, key))
    for key in ("input_shape_", "n_features_in_", "versions_"):
        if key not in fitted:
            raise ValueError(f"{path}: the fitted attribute {key!r} is missing")
    shape = estimator.input_shape_
    if not (
        isinstance(shape, tuple)
        and len(shape) in (1, 3)
        and all(isinstance(s, int) and s >= 1 for s in shape)
        and math.prod(shape) == estimator.n_features_in_
    ):
        raise ValueError(f"{path}: invalid input_shape_ {shape!r}")
    estimator.history_ = _history(metadata["history"], path)
    _check_versions(estimator.versions_, path)

    device = _load_device(estimator.device if device is None else device)
    try:
        estimator._rebuild_for_inference(state, device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: the weights do not fit the network: {exc}") from None
    return estimator


def _read(path) -> tuple[dict, dict]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a file written by sk_dim's save(): {exc}") from None
    with archive:
        names = archive.namelist()
        if sorted(names) != sorted(_ENTRIES):
            raise ValueError(
                f"{path}: expected exactly the entries {sorted(_ENTRIES)}, found {sorted(names)}"
            )
        try:
            metadata = json.loads(archive.read("metadata.json").decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: metadata.json is not valid JSON: {exc}") from None
        raw_weights = archive.read("weights.pt")
    if not isinstance(metadata, dict) or set(metadata) != _METADATA_KEYS:
        keys = sorted(metadata) if isinstance(metadata, dict) else type(metadata).__name__
        raise ValueError(f"{path}: metadata.json must hold the keys {sorted(_METADATA_KEYS)}, "
                         f"got {keys}")  # fmt: skip
    if metadata["format"] != FORMAT or metadata["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path}: unsupported format {metadata['format']!r} version "
            f"{metadata['format_version']!r}; this sk_dim reads {FORMAT!r} "
            f"version {FORMAT_VERSION}"
        )
    if metadata["class"] not in ALLOWED_CLASSES:
        raise ValueError(
            f"{path}: class {metadata['class']!r} is not allowed; expected one of {ALLOWED_CLASSES}"
        )
    try:
        state = torch.load(io.BytesIO(raw_weights), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"{path}: weights.pt is not a plain dict of tensors (refused by "
            f"torch.load(weights_only=True)): {exc}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and type(v) is torch.Tensor for k, v in state.items()
    ):
        raise ValueError(f"{path}: weights.pt must hold a dict of tensors")
    return metadata, state


def _history(records, path) -> pd.DataFrame:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: 'history' must be a list of JSON objects")
    rows = []
    for record in records:
        row = {k: _decode(v, "history_") for k, v in record.items()}
        if "epoch" not in row or not all(
            v is None or isinstance(v, int | float) for v in row.values()
        ):
            raise ValueError(f"{path}: invalid history record {record!r}")
        rows.append(row)
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=np.int64))
    return pd.DataFrame(rows).set_index("epoch")


def _check_versions(saved, path) -> None:
    from ._base import _versions

    if not isinstance(saved, dict):
        raise ValueError(f"{path}: invalid versions_ {saved!r}")
    running = _versions()
    differ = {k: (saved.get(k), v) for k, v in running.items() if saved.get(k) != v}
    if differ:
        listed = ", ".join(f"{k} {old} (now {new})" for k, (old, new) in differ.items())
        warnings.warn(
            f"{path} was saved with {listed}; its output may differ slightly",
            UserWarning,
            stacklevel=3,
        )


def _load_device(device: str) -> str:
    device = resolve_device(device)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"device={device!r} is not available; loading on the CPU", UserWarning, stacklevel=3
        )
        return "cpu"
    return device


__all__ = ["ALLOWED_CLASSES", "UnsafeToSaveError", "load", "save"]
