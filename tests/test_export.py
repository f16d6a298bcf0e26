"""ONNX export (sk_dim.to_onnx): onnxruntime gives transform's features and the Pipeline's labels.

Each conversion runs torch's ONNX exporter (a few seconds: tracing, and building its table
of operator translations), so the fits are tiny and shared, and the table is built once
(``torchlib_registry_once``): about a minute on one core.
"""

import functools

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

import sk_dim.cmc  # noqa: E402
import sk_dim.dim  # noqa: E402
from sk_dim import CMCTransformer, DeepInfoMaxTransformer, to_onnx  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

FAST = dict(max_epochs=1, device="cpu", precision="float32", batch_size=64, random_state=0)

# Tolerance of onnxruntime's features against transform's, relative to the features' scale
# (their largest magnitude). Both compute the same float32 network with different kernels
# (oneDNN / ATen against MLAS), summation orders and fusions (the exporter folds some
# operations), so they differ by rounding only. A dot product of length K summed in two
# orders differs by about sqrt(K) * u * |a| |b| typically (u = eps / 2, the unit roundoff;
# K * u at worst): with K up to 4096 here (the fc layer of 256 x 4 x 4 conv features),
# about 32 eps of each layer's scale, and the errors of the 5 to 7 layers of these
# networks (convolutions, batch norm, ReLU, linear, plus the colour conversion's cube
# root for CMC) add up to about 200 eps. 512 eps (6e-5 of the scale) leaves a margin;
# measured: at most 11 eps.
EPS32 = float(np.finfo(np.float32).eps)
TOLERANCE = 512 * EPS32


def _session(onx, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        onx.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _assert_features_close(actual, expected):
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert scale > 0
    error = float(np.abs(actual - expected).max())
    assert error <= TOLERANCE * scale, (error / scale / EPS32, "eps of the scale")


@pytest.fixture(scope="module", autouse=True)
def torchlib_registry_once():
    """Build the torch exporter's operator table once for the module, not once per export.

    ``torch.onnx.export`` rebuilds it on every call (about 3 s of its 4); it is the same
    table each time (one per opset). A private torch API: without it, the tests only run
    slower.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        original = _registration.ONNXRegistry.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    @functools.cache
    def cached(cls, opset_version=18):
        return build(cls, opset_version=opset_version)

    _registration.ONNXRegistry.from_torchlib = classmethod(cached)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:200].astype(np.float32), y[:200]


@pytest.fixture(scope="module")
def colour():
    """16x16 RGB uint8 images: per-class colour and gradient, plus noise; flattened."""
    rng = np.random.default_rng(0)
    n, classes = 160, 4
    y = np.arange(n) % classes
    ramp = np.linspace(0, 1, 16)[None, None, :, None] * np.linspace(0, 1, 16)[None, None, None]
    tint = rng.uniform(40, 200, (classes, 3))[y][:, :, None, None]
    images = tint * (0.5 + ramp) + rng.normal(0, 25, (n, 3, 16, 16))
    return np.clip(images, 0, 255).astype(np.uint8).reshape(n, -1), y


@pytest.fixture(scope="module")
def dim(digits):
    return DeepInfoMaxTransformer(**FAST).fit(digits[0])


@pytest.fixture(scope="module")
def cmc(digits):
    return CMCTransformer(**FAST).fit(digits[0])  # "crops" views of the grayscale digits


# Each layer also takes one of the input dtypes that transform takes (the graph casts them).
DTYPES = [np.float32, np.float64, np.uint8, np.float32, np.float64]


@pytest.mark.parametrize(("layer", "dtype"), list(zip(sk_dim.dim.LAYERS, DTYPES, strict=True)))
def test_dim_features_match_transform_at_every_layer(dim, digits, layer, dtype):
    dim.set_params(layer=layer)
    X = digits[0].astype(dtype)  # digits are integers 0..16: exact in every dtype
    try:
        session = _session(to_onnx(dim, X[:1]))
        _assert_features_close(session.run(None, {"X": X})[0], dim.transform(X))
        # Any batch size: the batch axis is dynamic.
        _assert_features_close(session.run(None, {"X": X[:1]})[0], dim.transform(X[:1]))
    finally:
        dim.set_params(layer="local")


@pytest.mark.parametrize(("layer", "dtype"), list(zip(sk_dim.cmc.LAYERS, DTYPES, strict=True)))
def test_cmc_features_match_transform_at_every_layer(cmc, digits, layer, dtype):
    # The embedding of one view (view=1) only; the other layers concatenate both views.
    cmc.set_params(layer=layer, view=1 if layer == "embedding" else None)
    X = digits[0].astype(dtype)
    try:
        session = _session(to_onnx(cmc, X[:1]))
        _assert_features_close(session.run(None, {"X": X})[0], cmc.transform(X))
        _assert_features_close(session.run(None, {"X": X[:3]})[0], cmc.transform(X[:3]))
    finally:
        cmc.set_params(layer="local", view=None)


def test_dim_pipeline_predicts_like_the_pipeline_on_digits(dim, digits):
    X, y = digits
    pipe = Pipeline([("dim", dim), ("scale", StandardScaler()), ("svm", LinearSVC())]).fit(X, y)
    session = _session(to_onnx(pipe, X[:1]), threads=2)
    labels, scores = session.run(None, {"X": X})
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(scores, pipe.decision_function(X), rtol=1e-4, atol=1e-4)


def test_cmc_pipeline_predicts_like_the_pipeline_on_colour_images(colour):
    # Lab views of uint8 RGB images: the colour conversion is part of the graph.
    X, y = colour
    cmc = CMCTransformer(image_shape=(3, 16, 16), **FAST)
    pipe = Pipeline([("cmc", cmc), ("scale", StandardScaler()), ("svm", LinearSVC())])
    pipe.fit(X, y)
    session = _session(to_onnx(pipe, X[:1]))
    assert session.get_inputs()[0].type == "tensor(uint8)"
    labels, scores = session.run(None, {"X": X})
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(scores, pipe.decision_function(X), rtol=1e-4, atol=1e-4)


def test_column_views_export(digits):
    # Feature vectors split into halves: column views (a Gather) and MLP encoders.
    X = digits[0]
    cmc = CMCTransformer(image_shape=None, views="halves", **FAST).fit(X)
    _assert_features_close(_session(to_onnx(cmc, X[:1])).run(None, {"X": X})[0], cmc.transform(X))


def test_plain_skl2onnx_converts_after_registering_4d_images_too(dim, digits):
    import skl2onnx

    from sk_dim.export import register_converters

    register_converters()
    X = digits[0].reshape(-1, 1, 8, 8)
    dim.set_params(layer="y")
    try:
        onx = skl2onnx.to_onnx(Pipeline([("dim", dim)]), X[:1])
        session = _session(onx)
        assert session.get_inputs()[0].shape[1:] == [1, 8, 8]
        _assert_features_close(session.run(None, {"X": X})[0], dim.transform(X))
    finally:
        dim.set_params(layer="local")


def test_bfloat16_model_exports_float32_weights(digits):
    import torch

    X = digits[0][:64]
    dim = DeepInfoMaxTransformer(**{**FAST, "precision": "bfloat16", "layer": "y"}).fit(X)
    onx = to_onnx(dim, X[:1])
    weights = [t for t in onx.graph.initializer if t.data_type not in (onnx.TensorProto.INT64,)]
    assert sum(int(np.prod(t.dims)) for t in weights) > 10_000
    assert {t.data_type for t in weights} == {onnx.TensorProto.FLOAT}
    # The float32 copy of the weights computes the features; transform itself computes in
    # bfloat16 (8 significant bits: each operation rounds by up to 2**-9 relative), so it
    # agrees only to bfloat16's precision: measured 0.6% of the scale.
    with torch.no_grad():
        expected = dim.feature_extractor()(dim.to_tensor(X)).numpy()
    features = _session(onx).run(None, {"X": X})[0]
    _assert_features_close(features, expected)
    assert np.abs(features - dim.transform(X)).max() <= 0.05 * np.abs(expected).max()


def test_callable_views_are_refused(digits):
    X = digits[0]
    views = [lambda x: x[:, :, :4], lambda x: x[:, :, 4:]]
    cmc = CMCTransformer(views=views, **FAST).fit(X)
    with pytest.raises(ValueError, match="views"):
        to_onnx(cmc, X[:1])


def test_missing_packages_name_the_extra(monkeypatch):
    import sys

    import sk_dim.export

    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match=r"onnx.*extra"):
        sk_dim.export.register_converters()
