"""The features a probe is trained and scored on.

:func:`probe_features` reads any layer of a fitted transformer without
changing it; :func:`probe_inputs` pairs the training and test features with
their labels, checked, for :mod:`~sk_dim.evaluation.linear` and
:mod:`~sk_dim.evaluation.mlp`.
"""

from __future__ import annotations

import copy

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..mi_estimation import check_samples


def probe_features(transformer, X, *, layer: str | None = None) -> np.ndarray:
    """Features of X from a fitted transformer, optionally from another layer.

    Parameters
    ----------
    transformer : fitted transformer or None
        A fitted :class:`~sk_dim.DeepInfoMaxTransformer`,
        :class:`~sk_dim.CMCTransformer` or any fitted transformer. None
        means X already holds features and is returned as a float array.
    X : array-like of shape (n_samples, ...)
        Inputs accepted by ``transformer.transform``.
    layer : str or None, default=None
        Layer to read, e.g. ``"local"``, ``"conv"``, ``"fc"`` or ``"y"`` for Deep
        InfoMax; None uses the transformer's own ``layer``. The transformer
        is not modified: a shallow copy (sharing the trained network) is
        switched to ``layer`` instead.

    Returns
    -------
    Z : ndarray of shape (n_samples, n_features_out)
        The features, as a plain array even when the transformer is set to
        output DataFrames.

    See Also
    --------
    linear_probe : Linear SVM accuracy on these features.
    nonlinear_probe : MLP probe accuracy on these features.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.evaluation import probe_features
    >>> X, _ = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(embedding_dim=8, max_epochs=1, random_state=0).fit(X[:100])
    >>> probe_features(dim, X[:5], layer="y").shape, dim.layer
    ((5, 8), 'blocks')
    """
    if transformer is None:
        if layer is not None:
            raise ValueError("layer needs a transformer; with transformer=None X are features")
        return check_samples(X, "X", min_samples=1)
    check_is_fitted(transformer)
    if layer is not None and layer != transformer.get_params().get("layer", layer):
        transformer = copy.copy(transformer)  # a new __dict__; the network is shared
        transformer.set_params(layer=layer)  # transform rejects an unknown layer
    elif layer is not None and "layer" not in transformer.get_params():
        raise ValueError(f"{type(transformer).__name__} has no 'layer' parameter")
    return np.asarray(transformer.transform(X))


def probe_inputs(transformer, X_train, y_train, X_test, y_test, layer):
    """Training and test features with their labels: ``(Z_train, Z_test, y_train, y_test)``.

    Parameters
    ----------
    transformer : fitted transformer or None
        Computes the features (see :func:`probe_features`); None means
        ``X_train`` and ``X_test`` are features already.
    X_train, X_test : array-like
        Training and test inputs (or features).
    y_train, y_test : array-like of shape (n_samples,)
        Class labels.
    layer : str or None
        Layer of the transformer to read; None uses its own ``layer``.

    Returns
    -------
    Z_train, Z_test : ndarray
        The features of ``X_train`` and ``X_test``.
    y_train, y_test : ndarray
        The labels, as arrays.

    Raises
    ------
    ValueError
        If a set's features and labels differ in length.
    """
    Z_train = probe_features(transformer, X_train, layer=layer)
    Z_test = probe_features(transformer, X_test, layer=layer)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for name, Z, y in (("train", Z_train, y_train), ("test", Z_test, y_test)):
        if len(Z) != len(y):
            raise ValueError(
                f"X_{name} and y_{name} must have the same number of samples, "
                f"got {len(Z)} and {len(y)}"
            )
    return Z_train, Z_test, y_train, y_test


__all__ = ["probe_features", "probe_inputs"]
