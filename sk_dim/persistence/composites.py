"""Fitted scikit-learn composites holding sk_dim transformers, through skops.

A composite (``Pipeline``, ``ColumnTransformer``, ``FeatureUnion``, a
search's ``best_estimator_``, ...) is saved as ``composite.json`` (format
and versions), ``estimator.skops`` (the composite in the skops format, each
sk_dim transformer replaced by a :class:`SavedTransformer` naming its
entries) and each transformer's entries under ``steps/<i>/``. Loading trusts
in the skops part only skops' default types and the placeholder.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile

from .._version import __version__, versions
from .archive import (
    FORMAT,
    FORMAT_VERSION,
    ZIP_ERRORS,
    check_format,
    check_ratio,
    read_binary,
    read_json,
)
from .codec import UnsafeToSaveError
from .transformers import (
    TRANSFORMER_CLASSES,
    WEIGHTS,
    check_versions,
    is_transformer,
    read_transformer,
    transformer_entries,
)

_COMPOSITE_KEYS = {"format", "format_version", "written_by", "versions", "steps"}
_PLACEHOLDER = "sk_dim.persistence.SavedTransformer"


class SavedTransformer:
    """Stands for an sk_dim transformer inside the skops part of a saved composite.

    :func:`~sk_dim.persistence.save` puts one in place of each sk_dim
    transformer before handing the composite to skops, and
    :func:`~sk_dim.persistence.load` puts the transformer read from
    ``steps/<entry>/`` back. It is the one type outside skops' defaults that
    ``load`` trusts in the skops part.

    Parameters
    ----------
    entry : str
        The transformer's folder in the zip file.
    """

    # skops names the type by where it is imported from: the name files hold.
    __module__ = "sk_dim.persistence"

    def __init__(self, entry: str = "") -> None:
        self.entry = entry

    def __repr__(self) -> str:
        return f"SavedTransformer({self.entry!r})"


# -- writing ----------------------------------------------------------------------------


def composite_entries(composite) -> dict[str, tuple[bytes, int]]:
    """The entries of a composite: its skops part and each sk_dim transformer's entries.

    Parameters
    ----------
    composite : scikit-learn estimator
        Holding sk_dim transformers at any depth.

    Returns
    -------
    entries : dict of str to (bytes, int)
        Each entry's content and ``zipfile`` compression.

    Raises
    ------
    UnsafeToSaveError
        If the composite holds a type that skops does not trust by default,
        a subclass of an sk_dim transformer, or a transformer that cannot be
        saved as JSON.
    """
    import skops
    import skops.io

    transformers = _find(composite, _is_sk_dim_object)
    for transformer in transformers:
        if not is_transformer(transformer):
            raise UnsafeToSaveError(
                f"{type(transformer).__name__} is not one of {tuple(TRANSFORMER_CLASSES)}; "
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
        "written_by": __version__,
        "versions": {"skops": skops.__version__, **versions()},
        "steps": [str(i) for i in range(len(transformers))],
    }
    entries = {
        "composite.json": (json.dumps(header, indent=1).encode("utf-8"), zipfile.ZIP_DEFLATED),
        "estimator.skops": (blob, zipfile.ZIP_STORED),
    }
    for i, transformer in enumerate(transformers):
        entries.update(transformer_entries(transformer, f"steps/{i}/"))
    return entries


def _is_sk_dim_object(obj) -> bool:
    return isinstance(obj, tuple(TRANSFORMER_CLASSES.values()))


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


# -- reading ----------------------------------------------------------------------------


def read_composite(archive: zipfile.ZipFile, names: set, path, device):
    """The composite in ``archive``, its skops part and every transformer checked.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open file.
    names : set of str
        The file's entries.
    path : str or os.PathLike
        The file, for messages.
    device : str or None
        Where to place the networks (see :func:`~sk_dim.persistence.load`).

    Returns
    -------
    composite : scikit-learn estimator

    Raises
    ------
    ValueError
        Naming the file, the entry and what is wrong with it.
    """
    import skops.io

    header = read_json(archive, "composite.json", path)
    check_format(header, "composite.json", path)
    if set(header) != _COMPOSITE_KEYS:
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
        allowed |= {f"steps/{step}/metadata.json", f"steps/{step}/{WEIGHTS}"}
    if not names <= allowed or "estimator.skops" not in names:
        raise ValueError(
            f"{path}: unexpected entries {sorted(names - allowed)} or no estimator.skops"
        )
    blob = read_binary(archive, "estimator.skops", path)
    try:
        inner = zipfile.ZipFile(io.BytesIO(blob))
    except ZIP_ERRORS as exc:
        raise ValueError(f"{path}: estimator.skops is not a valid skops file: {exc}") from None
    with inner:  # skops' file is a zip too: no bombs in it either
        for info in inner.infolist():
            check_ratio(info, f"estimator.skops/{info.filename}", path)
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
        step: read_transformer(archive, f"steps/{step}/", names, path, device, in_composite=True)
        for step in steps
    }
    check_versions(header["versions"], path)
    # Each placeholder replaced by its transformer (the rest copied, small).
    memo = {id(p): transformers[p.entry] for p in placeholders}
    return copy.deepcopy(stripped, memo)
