"""One transformer's entries: ``metadata.json`` and ``weights.safetensors``.

Writing takes the parameters, the fitted attributes that ``fit`` sets, the
training history and :meth:`inference_state`. Reading treats every value as
untrusted: the class must be one of sk_dim's, the parameters must pass the
class's constraints, the fitted attributes must be those ``fit`` sets with
plausible sizes, the weights must fit the network the parameters describe
(checked by the estimator's ``load_inference_state`` on PyTorch's ``meta``
device before anything is allocated), be finite, within what training
produces, and give finite features on finite inputs.
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pandas as pd
import torch
from sklearn.utils._param_validation import StrOptions

from .._torch import resolve_device
from .._version import __version__, versions
from .._warn import warn_user
from ..cmc import CMCTransformer
from ..dim import DeepInfoMaxTransformer
from .archive import FORMAT, FORMAT_VERSION, check_format, read_binary, read_json
from .codec import decode, encode, short

# The transformer classes a file may name: sk_dim's own. A subclass defined
# elsewhere may hold code that a file cannot describe.
TRANSFORMER_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (DeepInfoMaxTransformer, CMCTransformer)
}
WEIGHTS = "weights.safetensors"
_METADATA_KEYS = {"format", "format_version", "written_by", "class", "params", "fitted", "history"}
# Fitted attributes rebuilt at load rather than read from the file.
_REBUILT = {"net_", "history_"}
# The fitted attributes each class's fit sets (feature_names_in_ only for
# named columns), but for _REBUILT: load refuses any other. Kept by hand, as
# only a fit can list them; tests/persistence/test_transformers.py compares them with
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
# Fitted counts that size what load builds: each an int in [lowest, highest],
# the highest read from the transformer's parameters and other attributes.
_FITTED_COUNTS = {
    "DeepInfoMaxTransformer": {},
    "CMCTransformer": {
        "n_negatives_": (1, "n_negatives", lambda est: est.n_negatives),
        "n_views_": (2, "max(2, n_features_in_)", lambda est: max(2, est.n_features_in_)),
    },
}
# Inputs wider than this must come with at least as many weights: the rebuild
# makes a few rows of that width.
MAX_FREE_FEATURES = 1 << 22
# Training stops as diverged when a weight passes this (the training engine's
# WEIGHT_LIMIT): a file holding larger ones was not written by a fit.
_WEIGHT_LIMIT = 1e5


def is_transformer(obj) -> bool:
    """Whether ``obj`` is an instance of one of :data:`TRANSFORMER_CLASSES` (no subclass)."""
    return TRANSFORMER_CLASSES.get(type(obj).__name__) is type(obj)


# -- writing ----------------------------------------------------------------------------


def transformer_entries(estimator, prefix: str) -> dict[str, tuple[bytes, int]]:
    """A transformer's ``metadata.json`` and ``weights.safetensors`` (none if unfitted).

    Parameters
    ----------
    estimator : DeepInfoMaxTransformer or CMCTransformer
        The transformer to save.
    prefix : str
        The entries' folder in the zip file (``""`` or ``"steps/<i>/"``).

    Returns
    -------
    entries : dict of str to (bytes, int)
        Each entry's content and ``zipfile`` compression.

    Raises
    ------
    UnsafeToSaveError
        If a parameter or fitted attribute cannot be stored as JSON.
    """
    import safetensors.torch

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "written_by": __version__,
        "class": type(estimator).__name__,
        "params": {k: encode(v, k) for k, v in estimator.get_params(deep=False).items()},
        "fitted": None,
        "history": None,
    }
    entries = {}
    if hasattr(estimator, "net_"):
        metadata["fitted"] = _fitted_metadata(estimator)
        history = estimator.history_.reset_index().astype(object)
        history = history.where(history.notna(), None).to_dict("records")
        metadata["history"] = [
            {str(k): encode(v, "history_") for k, v in row.items()} for row in history
        ]
        state = estimator.inference_state()
        training_only = sorted(set(estimator.net_.module_.state_dict()) - set(state))
        if training_only:
            warn_user(
                f"save() leaves out training-only state ({short(training_only)}, e.g. CMC's "
                "memory bank); the loaded transformer transforms the same but cannot continue "
                "training. Use joblib to keep it.",
                UserWarning,
            )
        # safetensors wants contiguous tensors that share no memory: copies.
        tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
        # Raw floats barely compress: stored, they bound what load reads by the file size.
        entries[f"{prefix}{WEIGHTS}"] = (safetensors.torch.save(tensors), zipfile.ZIP_STORED)
    text = json.dumps(metadata, allow_nan=False, indent=1).encode("utf-8")
    return {f"{prefix}metadata.json": (text, zipfile.ZIP_DEFLATED), **entries}


def _fitted_metadata(estimator) -> dict:
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
            f"save() leaves out the attributes {short(extra)}, which "
            f"{type(estimator).__name__}.fit does not set; use joblib to keep them.",
            UserWarning,
        )
    return {key: encode(value, key) for key, value in attributes.items() if key in allowed}


# -- reading ----------------------------------------------------------------------------


def read_transformer(
    archive: zipfile.ZipFile, prefix: str, names: set, path, device, *, in_composite=False
):
    """The transformer in ``<prefix>metadata.json`` and its weights, every value checked.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open file.
    prefix : str
        The entries' folder (``""`` or ``"steps/<i>/"``).
    names : set of str
        The file's entries.
    path : str or os.PathLike
        The file, for messages.
    device : str or None
        Where to place the network; None: the transformer's ``device``, or
        the CPU where that one is absent.
    in_composite : bool, default=False
        Inside a composite, a transformer may be unfitted (no weights).

    Returns
    -------
    transformer : DeepInfoMaxTransformer or CMCTransformer

    Raises
    ------
    ValueError
        Naming the file, the entry and what is wrong with it.
    """
    where = f"{path} ({prefix.rstrip('/')}): " if prefix else f"{path}: "
    metadata = read_json(archive, f"{prefix}metadata.json", path)
    check_format(metadata, f"{prefix}metadata.json", path)
    if set(metadata) != _METADATA_KEYS:
        raise ValueError(
            f"{where}metadata.json must hold the keys {sorted(_METADATA_KEYS)}, "
            f"got {sorted(metadata)}"
        )
    if metadata["class"] not in TRANSFORMER_CLASSES:
        raise ValueError(
            f"{where}class {short(metadata['class'])} is not allowed; "
            f"expected one of {tuple(TRANSFORMER_CLASSES)}"
        )
    # Unfitted transformers (no weights) appear only inside composites.
    fitted = metadata["fitted"]
    weights = f"{prefix}{WEIGHTS}"
    expected = {f"{prefix}metadata.json"} | (
        {weights} if fitted is not None or not in_composite else set()
    )
    # A composite's other entries are its own to check.
    present = {n for n in names if n.startswith(prefix) and n.count("/") == prefix.count("/")}
    if present != expected or not (in_composite or names == expected):
        found = present if in_composite else names
        raise ValueError(
            f"{path}: expected exactly the entries {sorted(expected)}, found {sorted(found)}"
        )

    cls = TRANSFORMER_CLASSES[metadata["class"]]
    estimator = _with_params(cls, metadata["params"], where)
    if fitted is None and in_composite:
        if metadata["history"] is not None:
            raise ValueError(f"{where}an unfitted transformer has no history")
        return estimator

    fitted = _fitted_attributes(fitted, cls, where)
    history = _history(metadata["history"], where)
    state = _read_weights(archive, weights, path)
    hint = _version_hint(metadata, fitted["versions_"])
    check_versions(fitted["versions_"], path)
    device = _load_device(estimator.device) if device is None else _check_device(device)
    n_features, n_weights = fitted["n_features_in_"], sum(v.numel() for v in state.values())
    if isinstance(n_features, int) and n_features > max(MAX_FREE_FEATURES, n_weights):
        # Checked before anything n_features_in_ wide is built.
        raise ValueError(
            f"{where}n_features_in_={n_features} is more than the weights ({n_weights} "
            "values) can serve; refusing to build inputs that wide"
        )
    # As skops does: the fitted attributes set on a new instance.
    for key, value in fitted.items():
        setattr(estimator, key, value)
    estimator.history_ = history
    try:
        _check_fitted_sizes(estimator)
        estimator.load_inference_state(state, device)
        _check_finite_weights(estimator, state)
        _check_finite_features(estimator)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}{hint}") from None
    return estimator


def _with_params(cls: type, params, where: str):
    if not isinstance(params, dict):
        raise ValueError(f"{where}'params' must be a JSON object")
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ValueError(f"{where}unknown parameters {unknown} for {cls.__name__}")
    estimator = cls(**{k: decode(v, k) for k, v in params.items()})
    try:
        estimator._validate_params()  # scikit-learn's check of the constraints
    except ValueError as exc:
        raise ValueError(f"{where}invalid parameters: {exc}") from None
    return estimator


def _fitted_attributes(fitted, cls: type, where: str) -> dict:
    if not isinstance(fitted, dict):
        raise ValueError(f"{where}'fitted' must be a JSON object")
    allowed = _FITTED_ATTRIBUTES[cls.__name__]
    for key in fitted:
        if key not in allowed:
            raise ValueError(
                f"{where}unexpected fitted attribute {short(key)}: {cls.__name__}.fit sets "
                f"only {sorted(allowed)}"
            )
    fitted = {key: decode(value, key) for key, value in fitted.items()}
    for key in ("input_shape_", "image_shape_", "n_features_in_", "versions_"):
        if key not in fitted:
            raise ValueError(f"{where}the fitted attribute {key!r} is missing")
    # fit sets image_shape_ to input_shape_ for images and to None for vectors;
    # compared as repr so that a list, or floats, in its place are refused too.
    # An input_shape_ that is no tuple at all, _check_fitted_sizes refuses.
    shape = fitted["input_shape_"]
    expected = shape if isinstance(shape, tuple) and len(shape) == 3 else None
    if isinstance(shape, tuple) and repr(fitted["image_shape_"]) != repr(expected):
        raise ValueError(
            f"{where}the fitted attribute image_shape_={short(fitted['image_shape_'])} does "
            f"not match input_shape_={short(shape)}: expected {short(expected)}"
        )
    return fitted


def _check_fitted_sizes(estimator) -> None:
    """Refuse sizes and counts no fit sets, before anything is built from them."""
    shape, n_features = estimator.input_shape_, estimator.n_features_in_
    if not (
        isinstance(shape, tuple)
        and len(shape) in (1, 3)
        and all(isinstance(s, int) and s >= 1 for s in shape)
        and math.prod(shape) == n_features
    ):
        raise ValueError(f"invalid input_shape_ {shape!r:.80}")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and (not isinstance(names, np.ndarray) or names.shape != (n_features,)):
        raise ValueError("feature_names_in_ does not hold n_features_in_ names")
    for key, (lowest, bound, highest) in _FITTED_COUNTS[type(estimator).__name__].items():
        value, top = getattr(estimator, key, None), highest(estimator)
        if not (isinstance(value, int) and lowest <= value <= top):
            raise ValueError(
                f"invalid {key}={value!r:.80}: expected an int in [{lowest}, {bound}={top}]"
            )


def _check_finite_weights(estimator, state: dict[str, torch.Tensor]) -> None:
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(
                f"the weight {key!r} holds NaN or infinite values; the transformer "
                "would return non-finite features"
            )
    named = list(estimator.net_.module_.named_parameters())
    if not named:
        return
    # One device sync for all the parameters; False for NaN too.
    sane = torch.stack([(p.detach().abs() <= _WEIGHT_LIMIT).all() for _, p in named]).tolist()
    key = next((name for (name, _), ok in zip(named, sane, strict=True) if not ok), None)
    if key is not None:
        raise ValueError(
            f"the weight {key!r} holds values larger than {_WEIGHT_LIMIT:g}, which "
            "training never produces; the transformer would return meaningless features"
        )


def _check_finite_features(estimator) -> None:
    """Refuse weights that are finite but give non-finite features.

    A zero standard deviation, a huge weight or a negative running variance
    turns finite inputs into inf or NaN: every layer is run on a few probe rows
    (zeros, ones, and uniform values on the 0..1 and 0..255 pixel scales).
    """
    width = math.prod(estimator.input_shape_)
    generator = torch.Generator().manual_seed(0)
    probe = torch.cat(
        [
            torch.zeros(1, width),
            torch.ones(1, width),
            torch.rand(1, width, generator=generator),
            255 * torch.rand(1, width, generator=generator),
        ]
    ).view(4, *estimator.input_shape_)
    (layers,) = (c for c in estimator._parameter_constraints["layer"] if isinstance(c, StrOptions))
    for layer in sorted(layers.options):
        try:
            extractor = estimator.feature_extractor(layer)
        except ValueError:  # a layer this encoder does not have (e.g. "conv" of an MLP)
            continue
        with torch.no_grad():
            features = extractor(probe.to(next(extractor.parameters()).device))
        if not torch.isfinite(features).all():
            raise ValueError(
                f"the weights give non-finite features at layer={layer!r} on finite "
                "inputs (e.g. a zero standard deviation or a negative running variance)"
            )


def _read_weights(archive: zipfile.ZipFile, name: str, path) -> dict[str, torch.Tensor]:
    import safetensors.torch

    raw = read_binary(archive, name, path)
    try:
        state = safetensors.torch.load(raw)
    except Exception as exc:  # safetensors' SafetensorError is not exported
        raise ValueError(f"{path}: {name} is not a valid safetensors file: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and type(v) is torch.Tensor for k, v in state.items()
    ):
        raise ValueError(f"{path}: {name} must hold a dict of tensors")
    return state


def _history(records, where: str) -> pd.DataFrame:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{where}'history' must be a list of JSON objects")
    rows = []
    for record in records:
        row = {k: decode(v, "history_") for k, v in record.items()}
        if "epoch" not in row or not all(
            v is None or isinstance(v, int | float) for v in row.values()
        ):
            raise ValueError(f"{where}invalid history record {short(record)}")
        rows.append(row)
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=np.int64))
    return pd.DataFrame(rows).set_index("epoch")


def _version_hint(metadata: dict, fitted_versions) -> str:
    fitted_with = fitted_versions.get("sk_dim") if isinstance(fitted_versions, dict) else None
    written_by = metadata.get("written_by", fitted_with)
    return (
        f" (the file was written by sk_dim {short(written_by, plain=True)} in format version "
        f"{metadata['format_version']}; this is sk_dim {__version__}, which writes format "
        f"version {FORMAT_VERSION}: the network may have changed between versions)"
    )


def check_versions(saved, path) -> None:
    """Warn when ``saved`` (versions of sk_dim, torch, ... at fit) differ from the running ones.

    Parameters
    ----------
    saved : dict
        Library names to versions, as read from the file.
    path : str or os.PathLike
        The file, for the message.

    Raises
    ------
    ValueError
        If ``saved`` is not a dict.
    """
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: invalid versions_ {short(saved)}")
    running = versions()
    if "skops" in saved:
        import skops

        running["skops"] = skops.__version__
    differ = {k: (saved.get(k), v) for k, v in running.items() if saved.get(k) != v}
    if differ:
        listed = ", ".join(
            f"{k} {short(old, plain=True)} (now {new})" for k, (old, new) in differ.items()
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
