"""Measure learned representations the way the Deep InfoMax paper does.

Classification probes on frozen features (:func:`linear_probe`,
:class:`MLPProbe` and :func:`nonlinear_probe`), semi-supervised fine-tuning
of the encoder (:class:`FineTunedClassifier`,
:func:`semi_supervised_finetune`), and two information measures: the
neural dependency measure between the factors of a representation
(:func:`neural_dependency_measure`) and MINE between the input and its
representation (:func:`mine`).

Every probe accepts either a fitted transformer and raw inputs, or
``transformer=None`` and precomputed feature arrays. Nothing here modifies
the transformer it is given.
"""

from __future__ import annotations

import copy
import math
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn

from ._base import _as_tensor
from ._torch import resolve_device, seeded
from .mi_estimation import (
    batches,
    check_pair,
    check_samples,
    mutual_information,
    split_rows,
    standardize,
)

# Hidden units of the DIM paper's non-linear probe.
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
        transformer.set_params(layer=layer)
        transformer._validate_params()  # set_params does not check the value
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


class _TorchClassifier(ClassifierMixin, BaseEstimator):
    """Mini-batch cross-entropy training shared by the neural classifiers."""

    _parameter_constraints: dict = {
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
    }

    def _train(self, net: nn.Module, data: Tensor, target: Tensor, params, seed: int) -> None:
        """Adam on ``params`` minimizing cross-entropy of ``net(data)``."""
        optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(seed)
        batch_size = min(self.batch_size, len(data))
        self.loss_curve_ = []
        net.train()
        for _ in range(self.max_epochs):
            total, count = 0.0, 0
            for index in batches(len(data), batch_size, generator):
                xb = data[index].to(self.device_)
                yb = target[index].to(self.device_)
                loss = F.cross_entropy(net(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * len(index), count + len(index)
            self.loss_curve_.append(total / count)
        net.eval()

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


def _probe_head(n_in: int, n_classes: int, hidden_units: int, dropout: float) -> nn.Sequential:
    """The DIM paper's probe: one hidden layer with batch norm, ReLU and dropout."""
    return nn.Sequential(
        nn.Linear(n_in, hidden_units, bias=False),  # batch norm supplies the bias
        nn.BatchNorm1d(hidden_units),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_units, n_classes),
    )


class MLPProbe(_TorchClassifier):
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
        **_TorchClassifier._parameter_constraints,
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
            self.mean_ = X.mean(0, dtype=np.float64).astype(np.float32)
            std = X.std(0, dtype=np.float64)
            self.scale_ = np.where(std > 1e-12, std, 1.0).astype(np.float32)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.device_ = resolve_device(self.device)
        with seeded(seed, self.device_):
            self.module_ = _probe_head(
                X.shape[1], len(self.classes_), self.hidden_units, self.dropout
            ).to(self.device_)
            self._train(self.module_, self._scaled(X), target, self.module_.parameters(), seed)
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


class _LayerClassifier(nn.Module):
    """A copy of a transformer's network, its features at one layer, and a head."""

    def __init__(self, backbone: nn.Module, features, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._features = features  # transformer._features(module, x), layer fixed

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self._features(self.backbone, x))


class FineTunedClassifier(_TorchClassifier):
    """Fine-tune a pretrained encoder and a classifier head on labelled data.

    The semi-supervised evaluation of self-supervised features: a copy of
    the transformer's trained encoder gets a classification head on the
    chosen layer, and both are trained with cross-entropy on the (usually
    few) labelled samples. The transformer passed in is never modified.

    Parameters
    ----------
    transformer : DeepInfoMaxTransformer or CMCTransformer
        The pretrained transformer. When it is not fitted (for instance
        after :func:`~sklearn.base.clone`, as in cross-validation), it is
        first fitted on the X given to ``fit``, without the labels.
    layer : str or None, default=None
        Layer the head reads (``"local"``, ``"conv"``, ``"fc"`` or ``"y"`` for Deep
        InfoMax); None uses the transformer's ``layer``.
    head : {"mlp", "linear"}, default="mlp"
        ``"mlp"`` is the paper's 200-unit probe network, ``"linear"`` a
        single linear layer.
    max_epochs : int, default=20
        Passes over the labelled data.
    batch_size : int, default=64
        Mini-batch size (capped at the number of samples).
    lr : float, default=1e-3
        Adam learning rate of the head.
    encoder_lr : float or None, default=1e-4
        Adam learning rate of the encoder; None uses ``lr``, 0 freezes the
        encoder (then this is a probe trained end to end on raw inputs).
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation, shuffling and dropout.

    Attributes
    ----------
    transformer_ : transformer
        The pretrained transformer used (``transformer`` itself when it was
        fitted, else a fitted clone).
    module_ : torch.nn.Module
        The fine-tuned encoder and head (on ``device_``, in eval mode).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    device_ : str
        Resolved device.

    See Also
    --------
    semi_supervised_finetune : Fit this classifier in one call.
    MLPProbe : The same head on frozen features.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.evaluation import FineTunedClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(n_components=8, max_epochs=1, random_state=0).fit(X[:100])
    >>> clf = FineTunedClassifier(dim, max_epochs=2, random_state=0).fit(X[:100], y[:100])
    >>> clf.predict(X[100:103]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **_TorchClassifier._parameter_constraints,
        "transformer": [BaseEstimator],
        "layer": [str, None],
        "head": [StrOptions({"mlp", "linear"})],
        "encoder_lr": [Interval(Real, 0, None, closed="left"), None],
    }

    def __init__(
        self,
        transformer,
        *,
        layer=None,
        head="mlp",
        max_epochs=20,
        batch_size=64,
        lr=1e-3,
        encoder_lr=1e-4,
        weight_decay=0.0,
        device="auto",
        random_state=None,
    ):
        self.transformer = transformer
        self.layer = layer
        self.head = head
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.encoder_lr = encoder_lr
        self.weight_decay = weight_decay
        self.device = device
        self.random_state = random_state

    def fit(self, X, y):
        """Fine-tune a copy of the encoder and a new head on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Labelled inputs, shaped like the transformer's training data.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        self._validate_params()
        transformer = self.transformer
        if not hasattr(transformer, "_features"):  # the sk_dim transformers' feature hook
            raise TypeError(
                "FineTunedClassifier needs a DeepInfoMaxTransformer or CMCTransformer, "
                f"got {type(transformer).__name__}"
            )
        try:
            check_is_fitted(transformer)
        except NotFittedError:  # e.g. after clone() in cross-validation: pretrain on X
            transformer = clone(transformer).fit(X)
        self.transformer_ = transformer
        y = np.asarray(y)
        data = self._as_data(X)
        if len(data) != len(y):
            raise ValueError(
                f"X and y must have the same number of samples, got {len(data)} and {len(y)}"
            )
        if len(y) < 2:
            raise ValueError(f"Fine-tuning needs at least 2 labelled samples, got {len(y)}")
        target = self._encode_labels(y)

        reader = copy.copy(transformer)  # only to read features at self.layer
        if self.layer is not None:
            reader.set_params(layer=self.layer)
            reader._validate_params()
        source = transformer.net_.module_
        if hasattr(source, "encoder"):
            # Deep InfoMax: features only need the encoder, not the critics.
            backbone = nn.Module()
            backbone.encoder = copy.deepcopy(source.encoder)
        else:
            backbone = copy.deepcopy(source)
        self.device_ = resolve_device(self.device)
        backbone = backbone.to(self.device_).float()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with seeded(seed, self.device_):
            backbone.eval()
            with torch.no_grad():
                n_in = reader._features(backbone, data[:2].to(self.device_)).shape[1]
            n_classes = len(self.classes_)
            if self.head == "mlp":
                head = _probe_head(n_in, n_classes, PROBE_HIDDEN_UNITS, 0.1)
            else:
                head = nn.Linear(n_in, n_classes)
            self.module_ = _LayerClassifier(backbone, reader._features, head).to(self.device_)
            encoder_lr = self.lr if self.encoder_lr is None else self.encoder_lr
            groups = [{"params": list(head.parameters())}]
            if encoder_lr > 0:
                groups.append({"params": list(backbone.parameters()), "lr": encoder_lr})
            else:
                backbone.requires_grad_(False)
            self._train(self.module_, data, target, groups, seed)
        return self

    def _as_data(self, X) -> Tensor:
        transformer = self.transformer_
        X, input_shape = transformer._validate_input(X, reset=False)
        return _as_tensor(X, input_shape)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags


def semi_supervised_finetune(transformer, X_labelled, y_labelled, **params):
    """Fine-tune a copy of a pretrained encoder with a classifier head.

    Parameters
    ----------
    transformer : DeepInfoMaxTransformer or CMCTransformer
        Fitted (pretrained, usually on all inputs without labels).
    X_labelled : array-like of shape (n_samples, ...)
        The labelled inputs, often a small fraction of the data.
    y_labelled : array-like of shape (n_samples,)
        Their labels.
    **params
        Parameters of :class:`FineTunedClassifier` (``layer``, ``head``,
        ``max_epochs``, ``lr``, ``encoder_lr``, ...).

    Returns
    -------
    classifier : FineTunedClassifier
        Fitted; use its ``predict`` and ``score``.

    See Also
    --------
    FineTunedClassifier : The classifier returned.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.
    .. [2] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> from sk_dim.evaluation import semi_supervised_finetune
    >>> X, y = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(n_components=8, max_epochs=1, random_state=0).fit(X[:100])
    >>> clf = semi_supervised_finetune(dim, X[:100], y[:100], max_epochs=2, random_state=0)
    >>> 0 <= clf.score(X[100:200], y[100:200]) <= 1
    True
    """
    return FineTunedClassifier(transformer, **params).fit(X_labelled, y_labelled)


# -- information measures -----------------------------------------------------


def neural_dependency_measure(
    Z,
    *,
    hidden_units: int = 256,
    max_epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-4,
    test_size: float | int = 0.3,
    n_shuffles: int = 10,
    device: str = "auto",
    random_state=None,
) -> float:
    """Neural dependency measure (NDM) between the factors of a representation.

    How far the joint distribution of the representation's factors (its
    columns) is from the product of their marginals, i.e. its total
    correlation ``KL(p(z) || prod_k p(z_k))``, estimated as in Deep
    InfoMax: a discriminator learns to tell rows of Z from rows whose
    columns were each shuffled independently across rows (samples of the
    product of marginals) with the Jensen-Shannon (binary cross-entropy)
    objective, and the Donsker-Varadhan bound of the trained discriminator
    is reported on held-out rows. Independent factors give about 0,
    dependent factors more.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Representations, e.g. the ``layer="y"`` output of a transformer.
        Columns are standardised with training statistics first.
    hidden_units : int, default=256
        Width of the discriminator's two hidden layers.
    max_epochs : int, default=50
        Passes over the training rows; each pass draws new shuffles.
    batch_size : int, default=128
        Mini-batch size (capped at the number of training rows).
    lr : float, default=1e-4
        Adam learning rate (the paper's).
    test_size : float or int, default=0.3
        Held-out fraction (float in (0, 1)) or number of rows (int).
    n_shuffles : int, default=10
        Shuffled copies of the held-out rows the estimate averages over.
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the shuffles, the initialisation and the batches.

    Returns
    -------
    ndm : float
        The KL estimate in nats; near 0 (possibly slightly negative) for
        independent factors.

    Raises
    ------
    ValueError
        If Z has fewer than 4 rows or 2 columns, or contains NaN or
        infinity.

    See Also
    --------
    mine : MI between inputs and representations.
    sk_dim.mi_estimation.mutual_information : MI between two samples.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.
    .. [2] H. Kim, A. Mnih, "Disentangling by Factorising", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dim.evaluation import neural_dependency_measure
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((1000, 1))
    >>> Z = np.hstack([a, a + 0.3 * rng.standard_normal((1000, 1))])
    >>> bool(neural_dependency_measure(Z, max_epochs=10, lr=1e-3, random_state=0) > 0.5)
    True
    """
    for name, value in (
        ("hidden_units", hidden_units),
        ("max_epochs", max_epochs),
        ("n_shuffles", n_shuffles),
    ):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 2:
        raise ValueError(f"batch_size must be an int >= 2, got {batch_size!r}")
    if not (isinstance(lr, Real) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    Z = check_samples(Z, "Z")
    if Z.shape[1] < 2:
        raise ValueError(
            f"NDM measures dependence between factors: Z needs at least 2 columns, got {Z.shape[1]}"
        )
    rng = check_random_state(random_state)
    train, test = split_rows(len(Z), test_size, rng)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    device = resolve_device(device)
    z_train, z_test = (torch.as_tensor(a, device=device) for a in standardize(Z[train], Z[test]))
    with seeded(seed, device):
        generator = torch.Generator().manual_seed(seed)
        net = nn.Sequential(
            nn.Linear(Z.shape[1], hidden_units), nn.ReLU(),
            nn.Linear(hidden_units, hidden_units), nn.ReLU(),
            nn.Linear(hidden_units, 1),
        ).to(device)  # fmt: skip
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        size = min(batch_size, len(z_train))
        for _ in range(max_epochs):
            for index in batches(len(z_train), size, generator):
                real = z_train[index.to(device)]
                # Shuffle within a batch drawn independently of the real one,
                # so real and fake rows never share a sample.
                other = torch.randint(len(z_train), (len(index),), generator=generator)
                fake = shuffle_factors(z_train[other.to(device)], generator)
                # Jensen-Shannon objective = binary cross-entropy on logits.
                loss = F.softplus(-net(real)).mean() + F.softplus(net(fake)).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            positive = net(z_test).mean()
            negative = torch.cat(
                [net(shuffle_factors(z_test, generator)).flatten() for _ in range(n_shuffles)]
            )
            log_mean_exp = torch.logsumexp(negative, 0) - math.log(len(negative))
            return float(positive - log_mean_exp)


def shuffle_factors(Z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Permute each column of Z independently across rows.

    The result is a sample of the product of the columns' marginals.

    Parameters
    ----------
    Z : Tensor of shape (n_samples, n_factors)
        Samples.
    generator : torch.Generator or None, default=None
        Source of the permutations.

    Returns
    -------
    Z_shuffled : Tensor of shape (n_samples, n_factors)
        Each column holds the same values as in Z, in a new order.

    See Also
    --------
    neural_dependency_measure : Uses these shuffles as negative samples.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.
    .. [2] H. Kim, A. Mnih, "Disentangling by Factorising", ICML 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.evaluation import shuffle_factors
    >>> Z = torch.arange(12.0).view(4, 3)
    >>> torch.equal(shuffle_factors(Z).sort(0).values, Z)
    True
    """
    n, k = Z.shape
    keys = torch.rand(n, k, generator=generator).to(Z.device)
    return torch.gather(Z, 0, keys.argsort(0))


def mine(X, Z, **params) -> float:
    """MINE estimate of the MI between inputs and their representations.

    A statistics network ``T(x, z) = MLP([x, z])`` is trained on pairs
    ``(x_i, z_i)`` against shuffled pairs ``(x_perm(i), z_i)`` with the
    Donsker-Varadhan bound and MINE's moving-average gradient correction,
    and the bound is reported on held-out rows (in nats). This is
    :func:`~sk_dim.mi_estimation.mutual_information` with
    ``estimator="mine"``.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Inputs, flattened to vectors (e.g. images).
    Z : array-like of shape (n_samples, n_components)
        Their representations, e.g. ``transformer.transform(X)``.
    **params
        Parameters of :func:`~sk_dim.mi_estimation.mutual_information`
        (``hidden_units``, ``max_epochs``, ``batch_size``, ``lr``,
        ``ema_rate``, ``test_size``, ``random_state``, ...).

    Returns
    -------
    mi : float
        The held-out estimate in nats.

    See Also
    --------
    sk_dim.mi_estimation.mutual_information : The estimator used.
    neural_dependency_measure : Dependence between a representation's factors.

    References
    ----------
    .. [1] M. I. Belghazi et al., "Mutual Information Neural Estimation",
       ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dim.evaluation import mine
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 4))
    >>> Z = X[:, :1] + 0.5 * rng.standard_normal((1000, 1))  # true MI: 0.80 nats
    >>> bool(0.6 < mine(X, Z, max_epochs=30, random_state=0) < 1.0)
    True
    """
    if "estimator" in params:
        raise TypeError("mine() always uses estimator='mine'; call mutual_information instead")
    X, Z = check_pair(X, Z, names=("X", "Z"))  # errors name X and Z, not x and y
    return mutual_information(X, Z, estimator="mine", **params)
