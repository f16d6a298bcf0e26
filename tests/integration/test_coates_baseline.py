"""The k-means baseline of the benchmarks (Coates, Lee and Ng, 2011): benchmarks/coates.py."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PATH = Path(__file__).parents[2] / "benchmarks" / "coates.py"
spec = importlib.util.spec_from_file_location("coates", PATH)
coates = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coates)
KMeansTriangleFeatures = coates.KMeansTriangleFeatures


def naive_features(model, image):
    """One image's features, patch by patch, straight from the paper's definitions."""
    p, (_, height, width) = model.patch_size, image.shape
    rows, cols = height - p + 1, width - p + 1
    maps = np.zeros((rows, cols, model.n_centroids))
    for i in range(rows):
        for j in range(cols):
            x = image[:, i : i + p, j : j + p].astype(np.float64).ravel()
            x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + 10)
            x = (x - model.mean_) @ model.whitening_
            z = np.linalg.norm(x - model.centroids_, axis=1)
            maps[i, j] = np.maximum(0, z.mean() - z)
    # MATLAB's round(rows / 2): 27 -> 14, 5 -> 3.
    r, c = int(np.floor(rows / 2 + 0.5)), int(np.floor(cols / 2 + 0.5))
    quadrants = (maps[:r, :c], maps[r:, :c], maps[:r, c:], maps[r:, c:])
    return np.concatenate([q.sum(axis=(0, 1)) for q in quadrants])


@pytest.mark.parametrize("shape, patch_size", [((3, 12, 12), 6), ((1, 8, 8), 4)])
def test_transform_matches_the_papers_definition(shape, patch_size, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (7, *shape), dtype=np.uint8)
    model = KMeansTriangleFeatures(
        20, patch_size=patch_size, n_patches=2000, max_iter=3, random_state=0
    ).fit(X)
    # A block smaller than one image's patches: the transform runs one image per chunk.
    monkeypatch.setattr(coates, "BLOCK_ELEMENTS", 10)
    Z = model.transform(X)
    assert Z.shape == (7, 4 * 20) and Z.dtype == np.float32
    expected = np.stack([naive_features(model, image) for image in X])
    np.testing.assert_allclose(Z, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
    assert (Z >= 0).all() and (Z > 0).any()


def test_zca_whitening_flattens_the_spectrum():
    rng = np.random.default_rng(1)
    # Smooth images: neighbouring pixels of a patch are strongly correlated.
    X = rng.normal(size=(200, 1, 16, 16)).cumsum(axis=2).cumsum(axis=3)
    X = np.clip(128 + 4 * X, 0, 255).astype(np.uint8)
    model = KMeansTriangleFeatures(5, patch_size=4, n_patches=50000, max_iter=1, random_state=0)
    model.fit(X)
    # ZCA (symmetric), not PCA whitening: whitened patches stay in pixel coordinates.
    np.testing.assert_allclose(model.whitening_, model.whitening_.T, atol=1e-5)
    windows = np.lib.stride_tricks.sliding_window_view(X, (4, 4), axis=(2, 3))
    patches = coates._normalize(windows.reshape(-1, 16).astype(np.float32))
    raw = np.linalg.eigvalsh(np.cov(patches, rowvar=False))
    white = np.linalg.eigvalsh(np.cov((patches - model.mean_) @ model.whitening_, rowvar=False))
    assert raw.max() / raw[raw > 0.1].min() > 10
    # Eigenvalues l become l / (l + 0.1): about 1 except in directions of tiny variance.
    np.testing.assert_allclose(white, raw / (raw + 0.1), atol=0.05)


def test_flat_input_same_as_images_and_seeded():
    X, _ = load_digits(return_X_y=True)
    X = (X[:100] * 255 / 16).astype(np.uint8)
    params = dict(n_centroids=10, patch_size=3, n_patches=3000, max_iter=2, random_state=0)
    flat = KMeansTriangleFeatures(**params).fit(X).transform(X)
    images = KMeansTriangleFeatures(**params).fit(X.reshape(-1, 1, 8, 8))
    np.testing.assert_array_equal(flat, images.transform(X.reshape(-1, 1, 8, 8)))
    with pytest.raises(ValueError, match="image shape"):
        KMeansTriangleFeatures(**params).fit(X[:, :60])


def test_features_beat_raw_pixels_on_digits():
    X, y = load_digits(return_X_y=True)
    X = (X * 255 / 16).astype(np.uint8)
    train, test = slice(0, 1000), slice(1000, None)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    raw = probe.fit(X[train], y[train]).score(X[test], y[test])
    model = KMeansTriangleFeatures(50, patch_size=3, n_patches=20000, random_state=0)
    Z = model.fit(X[train]).transform(X)
    assert Z.shape == (len(X), 200)
    learned = probe.fit(Z[train], y[train]).score(Z[test], y[test])
    assert learned > raw + 0.01, (learned, raw)
