"""The Deep InfoMax paper's non-linear probe.

:class:`MLPProbe`, a network with one hidden layer trained on frozen
features, and :func:`nonlinear_probe`, its test accuracy on a transformer's
features. :func:`build_probe_head` builds its network, which
:mod:`~sk_dim.evaluation.finetune` puts on top of an encoder.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data
from torch import Tensor, nn

from .._torch import resolve_device, seeded
from .._training import standardization
from .features import probe_inputs
from .torch_classifier import TorchClassifier

PROBE_HIDDEN_UNITS = 200


def nonlinear_probe(
    transformer,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    layer: str | None = None,
    **params,
) -> float:
    """Test accuracy of the DIM paper's MLP probe trained on frozen features.

    Parameters
    ----------
    transformer : fitted transformer or None
        Computes the features (see :func:`probe_features`); None means
        ``X_train`` and ``X_test`` are features already.
    X_train, X_test : array-like
        Training and test inputs (or features).
    y_train, y_test : array-like of shape (n_samples,)
        Class labels.
    layer : str or None, default=None
        Layer of the transformer to probe; None uses its own ``layer``.
    **params
        Parameters of :class:`MLPProbe`.

    Returns
    -------
    accuracy : float
        Fraction of test samples classified correctly.

    See Also
    --------
    MLPProbe : The probe.
    linear_probe : The linear evaluation.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim.evaluation import nonlinear_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> acc = nonlinear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:],
    ...                       max_epochs=10, random_state=0)
    >>> bool(acc > 0.85)
    True
    """
    Z_train, Z_test, y_train, y_test = probe_inputs(
        transformer, X_train, y_train, X_test, y_test, layer
    )
    return float(MLPProbe(**params).fit(Z_train, y_train).score(Z_test, y_test))


def build_probe_head(n_in: int, n_classes: int, hidden_units: int, dropout: float) -> nn.Sequential:
    """Build the DIM paper's probe: one hidden layer with batch norm, ReLU and dropout.

    Parameters
    ----------
    n_in : int
        Number of input features.
    n_classes : int
        Number of outputs, one logit per class.
    hidden_units : int
        Width of the hidden layer.
    dropout : float
        Dropout probability after the hidden layer.

    Returns
    -------
    head : torch.nn.Sequential
        The untrained network, logits out.
    """
    return nn.Sequential(
        nn.Linear(n_in, hidden_units, bias=False),  # batch norm supplies the bias
        nn.BatchNorm1d(hidden_units),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_units, n_classes),
    )


class MLPProbe(TorchClassifier):
    """The Deep InfoMax paper's non-linear probe on frozen features.

    A network with one hidden layer of 200 units (batch norm, ReLU,
    dropout 0.1) trained with Adam and cross-entropy on feature arrays,
    typically a transformer's output. Use it through
    :func:`nonlinear_probe`, or in a pipeline after the transformer.

    Parameters
    ----------
    hidden_units : int, default=200
        Width of the hidden layer.
    dropout : float, default=0.1
        Dropout probability after the hidden layer.
    scale : bool, default=True
        Standardise features with training statistics first (features of
        different layers have very different scales).
    max_epochs : int, default=100
        Passes over the training data.
    batch_size : int, default=64
        Mini-batch size (capped at the number of samples).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and dropout.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    module_ : torch.nn.Module
        The trained network (on ``device_``, in eval mode).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    device_ : str
        Resolved device.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    nonlinear_probe : Train this probe on a transformer's features.
    sklearn.neural_network.MLPClassifier : A general MLP without batch norm.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim.evaluation import MLPProbe
    >>> X, y = load_digits(return_X_y=True)
    >>> probe = MLPProbe(max_epochs=10, random_state=0).fit(X[:1000], y[:1000])
    >>> bool(probe.score(X[1000:], y[1000:]) > 0.85)
    True
    """

    _parameter_constraints: dict = {
        **TorchClassifier._parameter_constraints,
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "scale": ["boolean"],
    }

    def __init__(
        self,
        hidden_units=PROBE_HIDDEN_UNITS,
        *,
        dropout=0.1,
        scale=True,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.0,
        device="auto",
        random_state=None,
    ):
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.scale = scale
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.random_state = random_state

    def fit(self, X, y):
        """Train the probe.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            The fitted probe.
        """
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        target = self._encode_labels(y)
        if self.scale:
            mean, scale = standardization(X)
            self.mean_, self.scale_ = mean.astype(np.float32), scale.astype(np.float32)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.device_ = resolve_device(self.device)
        with seeded(seed, self.device_):
            self.module_ = build_probe_head(
                X.shape[1], len(self.classes_), self.hidden_units, self.dropout
            ).to(self.device_)
            self._train(self._scaled(X), target, seed)
        return self

    def _as_data(self, X) -> Tensor:
        return self._scaled(validate_data(self, X, reset=False, dtype=np.float32))

    def _scaled(self, X: np.ndarray) -> Tensor:
        if self.scale:
            X = (X - self.mean_) / self.scale_
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


__all__ = ["PROBE_HIDDEN_UNITS", "MLPProbe", "build_probe_head", "nonlinear_probe"]
