"""image_shape="auto" on flattened X: right, or refused with a message naming image_shape."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits, make_classification

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim._shapes import column_correlations, infer_image_shape

FAST = dict(max_epochs=1, batch_size=16, device="cpu", precision="float32", random_state=0)


def smooth_images(n, channels, height, width, seed=0):
    """Images with the neighbour structure of photographs: blurred noise, 0..255."""
    noise = np.random.RandomState(seed).rand(n, channels, height, width)
    images = gaussian_filter(noise, sigma=(0, 0, 1.5, 1.5))
    images = (images - images.min()) / (images.max() - images.min()) * 255
    return images.reshape(n, -1)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 16), (3, 32, 32)])
def test_square_images_are_recognised(shape):
    assert infer_image_shape(smooth_images(100, *shape)) == shape


def test_digits_are_recognised():
    X = load_digits().data
    assert infer_image_shape(X) == (1, 8, 8)
    assert DeepInfoMaxTransformer(**FAST).fit(X[:64]).image_shape_ == (1, 8, 8)


@pytest.mark.parametrize(
    "shape, square",
    [((3, 24, 32), "1x48x48"), ((3, 16, 12), "1x24x24"), ((1, 32, 50), "1x40x40")],
)
def test_images_of_another_shape_are_refused_naming_image_shape(shape, square):
    X = smooth_images(100, *shape)
    for estimator in (DeepInfoMaxTransformer(**FAST), CMCTransformer(**FAST)):
        with pytest.raises(ValueError, match=f"{square} images.*{shape[2]} columns apart.*"):
            estimator.fit(X)
        with pytest.raises(ValueError, match=r"image_shape=\(C, H, W\).*image_shape=None"):
            estimator.fit(X)
    # Told the shape, they fit.
    assert DeepInfoMaxTransformer(image_shape=shape, **FAST).fit(X).image_shape_ == shape


def test_non_square_images_are_not_taken_for_feature_vectors():
    with pytest.raises(ValueError, match="30 columns apart.*image_shape"):
        DeepInfoMaxTransformer(**FAST).fit(smooth_images(60, 3, 20, 30))


@pytest.mark.parametrize("n_features", [100, 192, 256])
def test_tables_with_a_square_number_of_columns_are_feature_vectors(n_features):
    X, _ = make_classification(200, n_features=n_features, random_state=0)
    dim = DeepInfoMaxTransformer(**FAST).fit(X)
    assert dim.input_shape_ == (n_features,) and dim.image_shape_ is None


def test_series_are_feature_vectors():
    series = np.cumsum(np.random.RandomState(0).randn(200, 100), axis=1)
    assert infer_image_shape(series) is None


def test_column_correlations_match_a_plain_computation():
    X = smooth_images(50, 1, 8, 8)
    Z = (X - X.mean(0)) / X.std(0)
    expected = [np.mean([np.mean(Z[:, j] * Z[:, j + d]) for j in range(64 - d)]) for d in (1, 8)]
    got = column_correlations(X, 8)
    np.testing.assert_allclose(got[[0, 7]], expected, rtol=1e-10)
