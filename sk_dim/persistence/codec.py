"""Parameters and fitted attributes as JSON, and the caps on the JSON a file may hold.

JSON has no tuples, arrays or non-finite floats: they are tagged as
``{"__tuple__": [...]}``, ``{"__ndarray__": [...], "dtype": ..., "shape": [...]}``,
``{"__float__": "nan"}`` (or ``"inf"``, ``"-inf"``) and dicts as
``{"__dict__": {...}}``; :func:`decode` refuses any other JSON object, so a
file cannot name a class to build.
"""

from __future__ import annotations

import json
import math
from numbers import Integral, Real

import numpy as np

# A JSON entry is capped in bytes and in containers: "{}" costs 3 bytes in the
# file but ~70 bytes of Python objects once parsed.
MAX_JSON_BYTES = 16 << 20
MAX_JSON_CONTAINERS = 1 << 20
_NON_FINITE = ("nan", "inf", "-inf")


class UnsafeToSaveError(TypeError):
    """A parameter or fitted attribute cannot be stored as JSON.

    Raised by :func:`~sk_dim.persistence.save` (it is a ``TypeError``) for a
    user's ``torch.nn.Module`` encoder, callable views, a ``RandomState`` or
    any other value that is not a string, number, None, or a list, tuple,
    dict or array of them. Such transformers can be saved with joblib, whose
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


def encode(value, name: str):
    """``value`` as JSON-ready values, arrays and tuples tagged.

    Parameters
    ----------
    value : object
        A parameter or fitted attribute.
    name : str
        Its name, for the error message.

    Returns
    -------
    encoded : object
        Strings, numbers, None, lists and dicts only.

    Raises
    ------
    UnsafeToSaveError
        If ``value`` holds anything else (a module, a callable, a ``RandomState``).
    """
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
            items = [encode(float(v), name) for v in value.ravel()]
        else:
            items = value.ravel().tolist()
        return {"__ndarray__": items, "dtype": kind, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, name) for v in value]}
    if isinstance(value, list):
        return [encode(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v, f"{name}[{k!r}]") for k, v in value.items()}}
    raise UnsafeToSaveError(
        f"{name} holds a {type(value).__name__}, which cannot be saved safely as JSON. "
        "Use joblib.dump (loading runs code: only load files you trust), or pass "
        "built-in options (strings, numbers, lists) instead."
    )


def decode(value, name: str):
    """The value :func:`encode` made ``value`` from; anything else is refused.

    Parameters
    ----------
    value : object
        Parsed JSON read from a file (untrusted).
    name : str
        What it is, for the error message.

    Returns
    -------
    decoded : object

    Raises
    ------
    ValueError
        If ``value`` holds a JSON object that is none of the tags.
    """
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, list):
        return [decode(v, name) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(decode(v, name) for v in value["__tuple__"])
        if set(value) == {"__float__"} and value["__float__"] in _NON_FINITE:
            return float(value["__float__"])
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
            return {k: decode(v, name) for k, v in value["__dict__"].items()}
        if set(value) == {"__ndarray__", "dtype", "shape"}:
            return _decode_array(value, name)
    raise ValueError(f"{name}: unexpected value {short(value)} in the saved file")


def _decode_array(value: dict, name: str) -> np.ndarray:
    try:
        dtype = object if value["dtype"] == "str" else np.dtype(value["dtype"])
        if dtype is not object and dtype.kind not in "biuf":
            raise TypeError(dtype)
        if dtype is object and not all(isinstance(v, str) for v in value["__ndarray__"]):
            raise TypeError("str")
        items = value["__ndarray__"]
        if dtype is not object and dtype.kind == "f" and isinstance(items, list):
            items = [decode(v, name) if isinstance(v, dict) else v for v in items]
        array = np.array(items, dtype=dtype)
        return array.reshape([int(s) for s in value["shape"]])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: invalid array in the saved file ({exc})") from None


def parse_object(raw: bytes, name: str, path) -> dict:
    """The JSON object in ``raw`` (an entry of ``path``), its containers capped.

    Parameters
    ----------
    raw : bytes
        The entry's content, at most :data:`MAX_JSON_BYTES` long.
    name : str
        The entry's name, for messages.
    path : str or os.PathLike
        The file, for messages.

    Returns
    -------
    value : dict

    Raises
    ------
    ValueError
        If ``raw`` is not UTF-8 JSON holding one object, or holds more than
        :data:`MAX_JSON_CONTAINERS` objects and arrays.
    """
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_CONTAINERS:
        raise ValueError(
            f"{path}: {name} holds more than {MAX_JSON_CONTAINERS} JSON objects and arrays"
        )
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: {name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {name} must hold a JSON object")
    return value


def short(value, *, plain: bool = False, limit: int = 80) -> str:
    """A value read from a file, for a message: its repr (or str), cut short.

    Parameters
    ----------
    value : object
        Anything, possibly huge.
    plain : bool, default=False
        Use ``str`` rather than ``repr``.
    limit : int, default=80
        The most characters kept.

    Returns
    -------
    text : str
    """
    text = str(value) if plain else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
