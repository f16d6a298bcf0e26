"""Classification probes on frozen features.

:func:`linear_probe` (a linear SVM), :func:`nonlinear_probe` and :class:`MLPProbe`
(the Deep InfoMax paper's one-hidden-layer network) measure how well a
representation separates classes without training it; :func:`probe_features`
reads the features of any layer. :class:`TorchClassifier` and :func:`probe_head`
are shared with :mod:`sk_dim.evaluation.finetune`.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn

from .._torch import resolve_device, seeded
from .._training import standardization, train_minibatches
from .._version import DOCS_URL
from ..mi_estimation import check_samples

PROBE_HIDDEN_UNITS = 200


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
    >>> dim = DeepInfoMaxTransformer(n_components=8, max_epochs=1, random_state=0).fit(X[:100])
    >>> probe_features(dim, X[:5], layer="y").shape, dim.layer
    ((5, 8), 'local')
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


def linear_probe(
    transformer,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    layer: str | None = None,
    C: float = 1.0,
    scale: bool = True,
    max_iter: int = 2000,
    random_state=None,
) -> float:
    """Test accuracy of a linear SVM trained on frozen features.

    The linear evaluation of representation learning: a
    :class:`~sklearn.svm.LinearSVC` (after a
    :class:`~sklearn.preprocessing.StandardScaler` when ``scale``) is fitted
    on the features of the training inputs and scored on those of the test
    inputs. The representation itself is not trained.

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
    C : float, default=1.0
        Inverse regularisation strength of the SVM.
    scale : bool, default=True
        Standardise features before the SVM; it converges much faster.
    max_iter : int, default=2000
        Iterations of the SVM solver.
    random_state : int, RandomState instance or None, default=None
        Seeds the SVM solver.

    Returns
    -------
    accuracy : float
        Fraction of test samples classified correctly.

    See Also
    --------
    nonlinear_probe : The same with the paper's one-hidden-layer network.
    probe_features : The features probed.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim.evaluation import linear_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> acc = linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:], random_state=0)
    >>> bool(acc > 0.85)
    True
    """
    Z_train, Z_test, y_train, y_test = _probe_inputs(
        transformer, X_train, y_train, X_test, y_test, layer
    )
    svm = LinearSVC(C=C, max_iter=max_iter, random_state=random_state)
    clf = make_pipeline(StandardScaler(), svm) if scale else svm
    return float(clf.fit(Z_train, y_train).score(Z_test, y_test))


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
    Z_train, Z_test, y_train, y_test = _probe_inputs(
        transformer, X_train, y_train, X_test, y_test, layer
    )
    return float(MLPProbe(**params).fit(Z_train, y_train).score(Z_test, y_test))


def _probe_inputs(transformer, X_train, y_train, X_test, y_test, layer):
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


# -- neural classifiers -------------------------------------------------------


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """Mini-batch cross-entropy training shared by the neural classifiers.

    Subclasses set ``module_`` and ``device_`` in ``fit`` and implement
    ``_as_data(X)``, the tensor of inputs ``module_`` classifies.
    """

    # The HTML repr links to the class's API page (scikit-learn's mechanism).
    _doc_link_module = "sk_dim"
    _doc_link_template = DOCS_URL + "gen_modules/sk_dim.evaluation.{estimator_name}.html"

    _parameter_constraints: dict = {
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
    }

    def _train(self, data: Tensor, target: Tensor, seed: int, params=None) -> None:
        """Adam on ``params`` (default: all of ``module_``'s) minimising cross-entropy."""
        module = self.module_

        def batch_loss(index: Tensor) -> Tensor:
            logits = module(data[index].to(self.device_))
            return F.cross_entropy(logits, target[index].to(self.device_))

        self.loss_curve_ = train_minibatches(
            module,
            batch_loss,
            len(data),
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            generator=torch.Generator().manual_seed(seed),
            params=params,
        )

    @torch.no_grad()
    def _logits(self, data: Tensor) -> Tensor:
        self.module_.eval()
        chunk = max(self.batch_size, 256)
        out = [
            self.module_(data[i : i + chunk].to(self.device_)).float().cpu()
            for i in range(0, len(data), chunk)
        ]
        return torch.cat(out)

    def _encode_labels(self, y) -> Tensor:
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes, got {len(self.classes_)}"
            )
        return torch.as_tensor(encoder.transform(y), dtype=torch.long)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in ``classes_``.
        """
        check_is_fitted(self)
        return torch.softmax(self._logits(self._as_data(X)), 1).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """Most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels.
        """
        check_is_fitted(self)
        return self.classes_[self._logits(self._as_data(X)).argmax(1).numpy()]


def probe_head(n_in: int, n_classes: int, hidden_units: int, dropout: float) -> nn.Sequential:
    """The DIM paper's probe: one hidden layer with batch norm, ReLU and dropout."""
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
            self.module_ = probe_head(
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


__all__ = [
    "PROBE_HIDDEN_UNITS",
    "MLPProbe",
    "linear_probe",
    "nonlinear_probe",
    "probe_features",
]
