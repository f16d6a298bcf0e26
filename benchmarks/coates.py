"""The single-layer k-means baseline of Coates, Lee and Ng (AISTATS 2011), in numpy.

A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks in
Unsupervised Feature Learning", AISTATS 2011 (reference code: ``kmeans_demo.m``,
``run_kmeans.m`` and ``extract_features.m`` by A. Coates).

The pipeline, as in the paper and its reference code:

1. ``n_patches`` random ``patch_size`` x ``patch_size`` patches (all channels) of
   random training images;
2. per-patch brightness and contrast normalisation: subtract the patch's mean,
   divide by ``sqrt(var + 10)`` (pixels on the 0..255 scale);
3. ZCA whitening fitted on these patches, eigenvalues regularised by 0.1;
4. k-means with ``n_centroids`` centroids (the reference code's batched Lloyd
   iterations: centroids initialised from N(0, 0.1^2), empty clusters zeroed);
5. at transform, every patch at stride 1 is normalised, whitened and encoded
   with the "triangle" activation ``f_k = max(0, mean_j(z_j) - z_k)``, ``z`` the
   Euclidean distances to the centroids;
6. the activations are sum-pooled over the four quadrants of the map:
   ``4 * n_centroids`` features per image.

The paper then trains a linear SVM on standardised features (77.9% on full
CIFAR-10 with K=1600, 79.6% with K=4000). The reference code runs 50 k-means
iterations on 400,000 patches; ``max_iter=10`` here keeps a K=1600 fit within a
minute or two on one core.

This is benchmark code, not part of the ``sk_dim`` API.
"""

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

# Regularisers of the reference code: patch variance (0..255 pixels) and ZCA eigenvalues.
NORMALIZE_EPSILON = 10.0
WHITEN_EPSILON = 0.1
# Float32 elements per (patches x centroids) block: 64 MiB, a few such blocks live at once.
BLOCK_ELEMENTS = 2**24


def _normalize(patches):
    """Per-patch brightness and contrast normalisation, in place."""
    # patches: (n, D) float32 on the 0..255 pixel scale; MATLAB's var has ddof=1.
    patches -= patches.mean(axis=1, keepdims=True)
    patches /= np.sqrt(patches.var(axis=1, ddof=1, keepdims=True) + NORMALIZE_EPSILON)
    return patches


def _half(n):
    # MATLAB's round(n / 2) (halves away from zero), as in the reference quadrant split.
    return int(np.floor(n / 2 + 0.5))


class KMeansTriangleFeatures(TransformerMixin, BaseEstimator):
    """Coates et al. (2011) k-means features: whitened patches, triangle code, quadrant pooling.

    Parameters
    ----------
    n_centroids : int, default=1600
        K, the number of k-means centroids; the output has ``4 * K`` features.
    patch_size : int, default=6
        Side of the square receptive field (6 in the paper, for 32x32 images).
    n_patches : int, default=400000
        Random patches drawn (with replacement) to fit whitening and k-means.
    max_iter : int, default=10
        k-means iterations (the reference code runs 50).
    image_shape : "auto" or tuple (C, H, W), default="auto"
        Shape of a flattened image; "auto" recognises square grayscale and RGB
        images. Ignored for 4-D input.
    random_state : int, RandomState or None, default=None
        Seeds the patch sampling and the centroid initialisation.

    Attributes
    ----------
    image_shape_ : tuple (C, H, W)
    mean_ : ndarray of shape (C * patch_size**2,)
        Mean of the normalised patches, subtracted before whitening.
    whitening_ : ndarray of shape (C * patch_size**2, C * patch_size**2)
        ZCA whitening matrix.
    centroids_ : ndarray of shape (n_centroids, C * patch_size**2)
    """

    def __init__(
        self,
        n_centroids=1600,
        *,
        patch_size=6,
        n_patches=400000,
        max_iter=10,
        image_shape="auto",
        random_state=None,
    ):
        self.n_centroids = n_centroids
        self.patch_size = patch_size
        self.n_patches = n_patches
        self.max_iter = max_iter
        self.image_shape = image_shape
        self.random_state = random_state

    def _images(self, X, shape=None):
        X = np.asarray(X)
        if X.ndim == 4:
            return X
        if X.ndim != 2:
            raise ValueError(f"expected (n, C, H, W) images or flattened rows, got {X.shape}")
        if shape is None and self.image_shape != "auto":
            shape = tuple(self.image_shape)
        if shape is None:
            for channels in (1, 3):
                side = int(round((X.shape[1] / channels) ** 0.5))
                if channels * side * side == X.shape[1]:
                    shape = (channels, side, side)
                    break
            else:
                raise ValueError(f"cannot infer an image shape from {X.shape[1]} features")
        return X.reshape(len(X), *shape)

    def fit(self, X, y=None):
        """Fit the whitening and the centroids on random patches of X (uint8 pixels, 0..255)."""
        images = self._images(X)
        n, channels, height, width = images.shape
        p = self.patch_size
        rng = check_random_state(self.random_state)
        windows = sliding_window_view(images, (p, p), axis=(2, 3))  # (n, C, H', W', p, p)
        index = rng.randint(n, size=self.n_patches)
        rows = rng.randint(height - p + 1, size=self.n_patches)
        cols = rng.randint(width - p + 1, size=self.n_patches)
        # Advanced indices on both sides of a slice put the sample axis first: (m, C, p, p).
        patches = windows[index, :, rows, cols].reshape(self.n_patches, -1).astype(np.float32)
        patches = _normalize(patches)

        mean = patches.mean(axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(patches, rowvar=False))
        scale = 1.0 / np.sqrt(eigenvalues + WHITEN_EPSILON)
        self.image_shape_ = (channels, height, width)
        self.mean_ = mean.astype(np.float32)
        self.whitening_ = ((eigenvectors * scale) @ eigenvectors.T).astype(np.float32)
        patches -= self.mean_
        patches = patches @ self.whitening_
        self.centroids_ = self._kmeans(patches, rng)
        return self

    def _kmeans(self, X, rng):
        """Lloyd's k-means as in the reference ``run_kmeans.m`` (batched for memory)."""
        k = self.n_centroids
        centroids = (rng.standard_normal((k, X.shape[1])) * 0.1).astype(np.float32)
        batch = max(1, BLOCK_ELEMENTS // k)
        for _ in range(self.max_iter):
            half_norms = 0.5 * (centroids**2).sum(axis=1)
            sums = np.zeros_like(centroids, dtype=np.float64)
            counts = np.zeros(k)
            for start in range(0, len(X), batch):
                x = X[start : start + batch]
                # argmin |x - c|^2 = argmax (x.c - |c|^2 / 2)
                labels = np.argmax(x @ centroids.T - half_norms, axis=1)
                onehot = sp.csr_matrix(
                    (np.ones(len(x)), (labels, np.arange(len(x)))), shape=(k, len(x))
                )
                sums += onehot @ x
                counts += np.bincount(labels, minlength=k)
            # Empty clusters are zeroed, as in the reference code, rather than left as NaN.
            centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
            centroids[counts == 0] = 0
        return centroids

    def transform(self, X):
        """Quadrant-pooled triangle activations, float32 of shape (n, 4 * n_centroids)."""
        check_is_fitted(self, "centroids_")
        images = self._images(X, self.image_shape_)
        p, k = self.patch_size, self.n_centroids
        rows, cols = images.shape[2] - p + 1, images.shape[3] - p + 1
        r, c = _half(rows), _half(cols)
        chunk = max(1, BLOCK_ELEMENTS // (rows * cols * k))
        centroid_norms = (self.centroids_**2).sum(axis=1)
        out = np.empty((len(images), 4 * k), dtype=np.float32)
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk]
            m = len(x)
            windows = sliding_window_view(x, (p, p), axis=(2, 3))  # (m, C, rows, cols, p, p)
            patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(m * rows * cols, -1)
            patches = _normalize(patches.astype(np.float32))
            patches -= self.mean_
            patches = patches @ self.whitening_
            # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, clipped at 0 against rounding.
            z = patches @ self.centroids_.T  # (m * rows * cols, k)
            z *= -2
            z += (patches**2).sum(axis=1, keepdims=True)
            z += centroid_norms
            np.maximum(z, 0, out=z)
            np.sqrt(z, out=z)
            # Triangle code: f_k = max(0, mean_j z_j - z_k).
            np.subtract(z.mean(axis=1, keepdims=True), z, out=z)
            np.maximum(z, 0, out=z)
            f = z.reshape(m, rows, cols, k)
            quadrants = (
                f[:, :r, :c],
                f[:, r:, :c],
                f[:, :r, c:],
                f[:, r:, c:],
            )
            out[start : start + m] = np.concatenate([q.sum(axis=(1, 2)) for q in quadrants], 1)
        return out
