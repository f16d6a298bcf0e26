"""Export fitted transformers, and Pipelines holding them, to ONNX.

An ONNX file runs in ``onnxruntime`` (or any ONNX runtime) without PyTorch, scikit-learn
or sk_dim: for serving, a fitted Pipeline becomes one graph from raw pixels to
predictions. :func:`to_onnx` converts a fitted :class:`~sk_dim.DeepInfoMaxTransformer`
or :class:`~sk_dim.CMCTransformer`, or a scikit-learn composite holding them, with
``skl2onnx``; :func:`register_converters` only teaches ``skl2onnx`` the two
transformers, for code that calls ``skl2onnx.to_onnx`` or ``convert_sklearn`` itself.

Each transformer becomes the graph of its :meth:`~sk_dim.DeepInfoMaxTransformer.feature_extractor`
for its current ``layer`` (and ``view``, for CMC), exported with ``torch.onnx.export``
(the ``torch.export``-based exporter, which needs ``onnxscript``), behind the input
handling of ``transform``: rows of ``n_features_in_`` values (flattened images), or
``(N, C, H, W)`` images, of any batch size, uint8 or float, cast to float32 and shaped to
``input_shape_``. The network scales its inputs itself (the statistics learned at fit
are constants of the graph), so the graph takes raw values, as ``transform`` does. The
output is float32, as ``transform``'s; weights are float32 whatever ``precision`` the
model was fitted in.

The packages are the ``onnx`` extra: ``pip install -e '.[onnx]'`` from a source checkout.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from .cmc import CMCTransformer
from .dim import DeepInfoMaxTransformer

__all__ = ["register_converters", "to_onnx"]

#: The skl2onnx aliases of the converters.
ALIASES = {
    DeepInfoMaxTransformer: "SkDimDeepInfoMaxTransformer",
    CMCTransformer: "SkDimCMCTransformer",
}
# The torch exporter writes opset 18 at least; skl2onnx's default target is higher.
MIN_OPSET = 18
_INSTALL = (
    "install the `onnx` extra of sk-dim, e.g. `pip install -e '.[onnx]'` from a source "
    "checkout (onnx, onnxscript, skl2onnx and onnxruntime)"
)


def _require(*modules: str) -> None:
    """Import ``modules`` or raise an ImportError saying how to install them."""
    import importlib

    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):
        raise ImportError(
            f"ONNX export needs torch>=2.6 (its torch.export-based exporter), found "
            f"{torch.__version__}"
        )
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"ONNX export needs the package {name!r}: {_INSTALL}") from exc


def register_converters() -> None:
    """Register the converters of both transformers with ``skl2onnx``.

    :func:`to_onnx` calls it; call it yourself before ``skl2onnx.to_onnx`` or
    ``skl2onnx.convert_sklearn`` on a model holding sk_dim transformers. Calling it
    again is harmless.

    Raises
    ------
    ImportError
        If ``onnx``, ``onnxscript`` or ``skl2onnx`` is missing (the ``onnx`` extra).
    """
    _require("onnx", "onnxscript", "skl2onnx")
    from skl2onnx import update_registered_converter

    for cls, alias in ALIASES.items():
        update_registered_converter(cls, alias, _shape_calculator, _converter, overwrite=True)


def to_onnx(estimator, X, **kwargs):
    """A fitted transformer, or a composite holding some, as one ONNX model.

    The model takes what ``transform`` (or the composite's ``predict``) takes, as one
    input named ``"X"`` unless ``initial_types`` says otherwise: rows of
    ``n_features_in_`` values of X's dtype (float32, float64 or uint8 pixels; the
    batch size is free) or ``(N, C, H, W)`` images when X has that shape.

    Parameters
    ----------
    estimator : DeepInfoMaxTransformer, CMCTransformer or scikit-learn estimator
        Fitted. A composite (e.g. a :class:`~sklearn.pipeline.Pipeline`) is converted
        whole: its other steps need converters of ``skl2onnx``'s (most of
        scikit-learn's estimators have one).
    X : array-like
        A few rows of the data (one is enough): ``skl2onnx`` reads its dtype and
        width. A DataFrame is taken as its values, one array (the model has one input).
    **kwargs
        Passed to ``skl2onnx.to_onnx``: ``target_opset`` (at least 18, the torch
        exporter's lowest), ``options``, ``initial_types`` (then X may be None),
        ``name``, ...

    Returns
    -------
    onx : onnx.ModelProto
        Save it with ``onx.SerializeToString()`` (or ``onnx.save``); run it with
        ``onnxruntime.InferenceSession(onx.SerializeToString())``.

    Raises
    ------
    ImportError
        If the ``onnx`` extra's packages are missing.
    ValueError
        If a transformer cannot be exported: CMC views given as Python callables,
        or ``target_opset`` below 18.
    RuntimeError
        If torch cannot export a transformer's network (e.g. a user's encoder
        module with data-dependent control flow); the message names the layer.

    See Also
    --------
    register_converters : Teach ``skl2onnx`` the transformers without converting.
    sk_dim.save : Save a fitted transformer or composite for sk_dim itself.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer, to_onnx
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X[:200].astype(np.float32)
    >>> dim = DeepInfoMaxTransformer(max_epochs=1, device="cpu", random_state=0).fit(X)
    >>> onx = to_onnx(dim, X[:1])
    >>> session = ort.InferenceSession(onx.SerializeToString())
    >>> (features,) = session.run(None, {"X": X[:5]})
    >>> features.shape, features.dtype
    ((5, 7168), dtype('float32'))
    >>> bool(np.allclose(features, dim.transform(X[:5]), atol=1e-4))
    True
    """
    register_converters()
    import skl2onnx

    if X is not None and hasattr(X, "to_numpy") and hasattr(X, "columns"):  # a DataFrame
        X = X.to_numpy()
    if X is not None and not hasattr(X, "dtype"):
        X = np.asarray(X)
    kwargs["options"] = _linear_svc_options(kwargs.get("options"))
    return skl2onnx.to_onnx(estimator, X, **kwargs)


def _linear_svc_options(options):
    """``options`` with an empty entry for LinearSVC unless it has one.

    skl2onnx (1.20 at least) gives every classifier step of a Pipeline the option
    ``zipmap``, which its LinearSVC converter then refuses ("Option 'zipmap' not in
    [...] for class 'LinearSVC'"); any entry for the class keeps the parser from adding
    it. Options keyed by name (one model's) are left alone.
    """
    from sklearn.svm import LinearSVC

    if options is None:
        return {LinearSVC: {}}
    if not isinstance(options, dict) or any(isinstance(key, str) for key in options):
        return options
    return {LinearSVC: {}, **options}


# -- the converters ------------------------------------------------------------------
def _check_exportable(estimator) -> None:
    """Raise a ValueError for a fitted transformer that cannot be exported."""
    check_is_fitted(estimator)
    views = getattr(estimator, "views_", None)
    if isinstance(views, list | tuple) and any(callable(v) for v in views):
        raise ValueError(
            f"{type(estimator).__name__} with views given as Python callables cannot be "
            "exported to ONNX: torch cannot trace arbitrary Python functions reliably. "
            "Refit with named views (views='lab', 'ycbcr', 'crops' or 'halves') or column "
            "lists, or compute your views outside the model and fit on them."
        )


def _feature_width(estimator) -> int:
    extractor = estimator.feature_extractor().cpu()
    with torch.no_grad():
        return int(extractor(torch.zeros(2, *estimator.input_shape_)).shape[1])


def _describe(estimator) -> str:
    options = f"layer={estimator.layer!r}"
    if getattr(estimator, "view", None) is not None:
        options += f", view={estimator.view!r}"
    return f"{type(estimator).__name__} ({options})"


def _shape_calculator(operator) -> None:
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int32TensorType,
        Int64TensorType,
        UInt8TensorType,
    )
    from skl2onnx.common.utils import check_input_and_output_types

    estimator = operator.raw_operator
    _check_exportable(estimator)
    check_input_and_output_types(
        operator,
        good_input_types=[
            FloatTensorType,
            DoubleTensorType,
            UInt8TensorType,
            Int64TensorType,
            Int32TensorType,
        ],
    )
    if len(operator.inputs) != 1:
        raise RuntimeError(
            f"{_describe(estimator)} takes one input, got {len(operator.inputs)}: pass X as "
            "one array (not a DataFrame of several columns)"
        )
    shape = list(operator.inputs[0].type.shape)
    trailing = shape[1:]
    known = trailing and all(isinstance(d, int) for d in trailing)
    if known and math.prod(trailing) != estimator.n_features_in_:
        raise ValueError(
            f"{_describe(estimator)} was fitted on {estimator.n_features_in_} features "
            f"(input_shape_={estimator.input_shape_}), but the ONNX input has shape {shape}"
        )
    batch = shape[0] if shape else None
    operator.outputs[0].type = FloatTensorType([batch, _feature_width(estimator)])


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the torch exporter's progress lines, deprecation notes and torchvision notes."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _export_network(estimator, opset: int = MIN_OPSET):
    """The estimator's feature extractor as an ONNX model, float32 ``(N, *input_shape_)`` in.

    Used by the converter; the model's input ``"x"`` is already float32 and shaped (the
    converter casts and reshapes before it), its output ``"features"`` is ``(N, D)``.
    """
    import onnx

    _check_exportable(estimator)
    if opset < MIN_OPSET:
        raise ValueError(
            f"target_opset={opset} is too low to export {_describe(estimator)}: the torch "
            f"exporter writes opset {MIN_OPSET} at least; pass target_opset >= {MIN_OPSET}"
        )
    extractor = estimator.feature_extractor().cpu().eval()
    with _quiet_exporter(), torch.no_grad():
        exported = _capture(extractor, estimator)
        try:
            program = torch.onnx.export(
                exported,
                dynamo=True,
                input_names=["x"],
                output_names=["features"],
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        except Exception as exc:  # the translation's errors are of many types
            raise RuntimeError(
                f"torch.onnx.export could not translate the network of {_describe(estimator)} "
                f"to ONNX: {type(exc).__name__}: {exc}"
            ) from exc
    model = program.model_proto
    if len(model.functions):
        model = onnx.inliner.inline_local_functions(model)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value"):  # a check of what _capture asked for
        raise RuntimeError(
            f"the exported network of {_describe(estimator)} has a fixed batch size "
            f"({batch.dim_value})"
        )
    return model


def _capture(extractor, estimator) -> torch.export.ExportedProgram:
    """``torch.export`` of the extractor with a free batch size.

    ``torch.onnx.export`` given the module itself would, when tracing pins the batch size
    (e.g. ``len(x)`` in the module's code, which non-strict tracing turns into the example's
    2), quietly export a graph for batches of 2 only; here the batch size stays free or the
    export fails. Non-strict tracing first, as torch recommends, then TorchDynamo's strict
    tracing, which follows ``len(x)`` symbolically.
    """
    # Batch 2: sizes 0 and 1 would be specialised by tracing.
    example = torch.zeros(2, *estimator.input_shape_, dtype=torch.float32)
    dynamic_shapes = ({0: torch.export.Dim("batch")},)
    errors = []
    for strict in (False, True):
        try:
            return torch.export.export(
                extractor, (example,), dynamic_shapes=dynamic_shapes, strict=strict
            )
        except Exception as exc:  # torch.export's errors are of many types
            errors.append(f"strict={strict}: {type(exc).__name__}: {exc}")
    raise RuntimeError(
        f"torch.export could not trace the network of {_describe(estimator)} for any batch "
        "size, as ONNX export needs (" + "; ".join(errors) + ")"
    )


def _converter(scope, operator, container) -> None:
    from onnx import TensorProto, numpy_helper
    from skl2onnx.common._apply_operation import apply_cast, apply_reshape

    estimator = operator.raw_operator
    opset = container.target_opset
    model = _export_network(estimator, opset=opset)
    domains = {entry.domain: entry.version for entry in model.opset_import}
    graph = model.graph
    (x_in,), (features_out,) = graph.input, graph.output
    prefix = ALIASES[type(estimator)]

    # transform's input handling: any dtype to float32, rows to (N, *input_shape_).
    source = operator.inputs[0]
    x = source.full_name
    if source.type.to_onnx_type().tensor_type.elem_type != TensorProto.FLOAT:
        cast = scope.get_unique_variable_name(f"{prefix}_float")
        apply_cast(scope, x, cast, container, to=TensorProto.FLOAT)
        x = cast
    shaped = scope.get_unique_variable_name(f"{prefix}_input")
    apply_reshape(scope, x, shaped, container, desired_shape=[-1, *estimator.input_shape_])

    names = {"": "", x_in.name: shaped, features_out.name: operator.outputs[0].full_name}

    def renamed(name: str) -> str:
        if name not in names:
            names[name] = scope.get_unique_variable_name(f"{prefix}_{name}")
        return names[name]

    for tensor in graph.initializer:
        # Through numpy: raw_data whatever field the exporter filled.
        value = numpy_helper.from_array(numpy_helper.to_array(tensor))
        container.add_initializer(renamed(tensor.name), value.data_type, None, value)
    for node in graph.node:
        if any(attr.g.node or attr.graphs for attr in node.attribute):
            raise RuntimeError(
                f"the exported network of {_describe(estimator)} has a control-flow node "
                f"({node.op_type}), which sk_dim does not embed"
            )
        if node.domain not in ("", "ai.onnx"):
            raise RuntimeError(
                f"the exported network of {_describe(estimator)} uses the operator domain "
                f"{node.domain!r} ({node.op_type}), which sk_dim does not embed"
            )
        container.add_node(
            node.op_type,
            [renamed(name) for name in node.input],
            [renamed(name) for name in node.output],
            op_domain="",
            op_version=domains.get(node.domain, domains.get("", opset)),
            name=scope.get_unique_operator_name(f"{prefix}_{node.name or node.op_type}"),
        )
        # Attributes verbatim (add_node rebuilds them from Python values otherwise).
        container.nodes[-1].attribute.extend(node.attribute)
