"""Classification probes on frozen features.

:func:`linear_probe` (a linear SVM), :func:`nonlinear_probe` and :class:`MLPProbe`
(the Deep InfoMax paper's one-hidden-layer network) measure how well a
representation separates classes without training it; :func:`probe_features`
reads the features of any layer. :class:`TorchClassifier` and :func:`probe_head`
are shared with :mod:`sk_dim.evaluation.finetune`.
"""

from __future__ import annotations

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from .._torch import resolve_device, seeded
from .._training import standardization, train_minibatches
from .._version import DOCS_URL
from ..mi_estimation import check_positive_float, check_positive_int, check_samples

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
    >>> dim = DeepInfoMaxTransformer(embedding_dim=8, max_epochs=1, random_state=0).fit(X[:100])
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

    The linear evaluation of representation learning: a linear SVM (after a
    :class:`~sklearn.preprocessing.StandardScaler` when ``scale``) is fitted
    on the features of the training inputs and scored on those of the test
    inputs. The representation itself is not trained.

    The SVM is :class:`~sklearn.svm.LinearSVC`'s: squared hinge loss, an L2
    penalty on the weights and on the intercept (``intercept_scaling=1``),
    one classifier per class (one-vs-rest; one for two classes). Its
    optimum is found exactly by a finite Newton method with an exact line
    search, in the kernel (dual) form when there are more features than
    training samples, so that wide features (thousands of columns, a few
    thousand samples) take seconds where liblinear took minutes and stopped
    short of convergence. The accuracy is that of ``make_pipeline(
    StandardScaler(), LinearSVC(C=C))`` solved to convergence.

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
        Standardise features with the training statistics before the SVM.
    max_iter : int, default=2000
        Most Newton iterations per one-vs-rest classifier, each an exact
        linear solve; the solver converges in 5 to 30. A
        ``sklearn.exceptions.ConvergenceWarning`` says when it did not.
    random_state : int, RandomState instance or None, default=None
        Ignored: the solver is deterministic. Kept so that calls written
        for the earlier liblinear solver keep working.

    Returns
    -------
    accuracy : float
        Fraction of test samples classified correctly.

    Raises
    ------
    ValueError
        If ``C`` or ``max_iter`` is not positive, ``y_train`` holds fewer than
        two classes, or the feature counts of the training and test sets
        differ.

    See Also
    --------
    nonlinear_probe : The same with the paper's one-hidden-layer network.
    probe_features : The features probed.
    sklearn.svm.LinearSVC : The same SVM, solved by liblinear.

    Notes
    -----
    The kernel form works with the ``n_samples x n_samples`` Gram matrix of
    the training features: its memory and time grow with the square and the
    cube of the number of training samples (about 1 s of linear algebra per
    classifier at 1,000 samples). With fewer features than samples the
    Newton steps are taken on the weights instead, and grow with the number
    of features.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019, section 4.1.
    .. [2] S. S. Keerthi and D. DeCoste, "A modified finite Newton method for
       fast solution of large scale linear SVMs", JMLR 6, 341-361, 2005.
    .. [3] O. Chapelle, "Training a support vector machine in the primal",
       Neural Computation 19(5), 1155-1178, 2007.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim.evaluation import linear_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> acc = linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:])
    >>> bool(acc > 0.85)
    True
    """
    check_positive_float("C", C)
    check_positive_int("max_iter", max_iter)
    Z_train, Z_test, y_train, y_test = _probe_inputs(
        transformer, X_train, y_train, X_test, y_test, layer
    )
    if Z_test.shape[1] != Z_train.shape[1]:
        raise ValueError(
            f"X_test has {Z_test.shape[1]} features, but X_train has {Z_train.shape[1]} features"
        )
    Z_train = np.asarray(Z_train, dtype=np.float64)
    Z_test = np.asarray(Z_test, dtype=np.float64)
    if scale:
        scaler = StandardScaler().fit(Z_train)
        Z_train, Z_test = scaler.transform(Z_train), scaler.transform(Z_test)
    classes, coef, intercept = _squared_hinge_svm(Z_train, y_train, C=C, max_iter=max_iter)
    scores = Z_test @ coef + intercept
    if len(classes) == 2:
        predicted = classes[(scores[:, 0] > 0).astype(int)]
    else:
        predicted = classes[scores.argmax(1)]
    return float(np.mean(predicted == y_test))


def _squared_hinge_svm(Z, y, *, C: float = 1.0, max_iter: int = 2000):
    """LinearSVC's one-vs-rest problem, solved to its optimum.

    Minimises, for each one-vs-rest classifier with labels ``t`` in {-1, 1},
    ``0.5 * (|w|^2 + b^2) + C * sum_i max(0, 1 - t_i (w . z_i + b))^2``:
    :class:`~sklearn.svm.LinearSVC`'s objective with its defaults
    (``loss="squared_hinge"``, ``intercept_scaling=1``). Each Newton step
    solves the problem restricted to the samples inside the margin exactly
    (a Cholesky factorisation), followed by an exact line search; the
    iteration stops when a full step keeps that set of samples, which is the
    optimum (Keerthi and DeCoste's finite Newton method). With at least as
    many features as samples it works on the coefficients of the samples
    (``w = Z.T @ beta``, the Gram matrix ``Z @ Z.T + 1``; Chapelle 2007),
    otherwise on ``(w, b)``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Training features (float64).
    y : array-like of shape (n_samples,)
        Class labels, at least two classes.
    C : float, default=1.0
        Inverse regularisation strength.
    max_iter : int, default=2000
        Most Newton iterations per classifier.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        The sorted labels.
    coef : ndarray of shape (n_features, n_classifiers)
        One column per classifier: one for two classes (``classes[1]``
        positive), else one per class.
    intercept : ndarray of shape (n_classifiers,)
        The intercepts.
    """
    check_classification_targets(y)
    classes, y_index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"linear_probe needs at least 2 classes in y_train, got {len(classes)}")
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n_samples, n_features = Z.shape
    kernel = n_samples <= n_features + 1
    if kernel:
        system = Z @ Z.T
        system += 1.0  # the intercept's constant feature
    else:
        system = np.hstack([Z, np.ones((n_samples, 1))])
    gram = None if kernel else system.T @ system
    positives = [1] if len(classes) == 2 else range(len(classes))
    solutions, unconverged = [], 0
    # Many factorisations of matrices of a few hundred to a few thousand rows: one
    # BLAS thread each is faster than several (and far faster on a loaded machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for positive in positives:
            signs = np.where(y_index == positive, 1.0, -1.0)
            solution, converged = _newton_squared_hinge(system, gram, signs, C, max_iter)
            solutions.append(solution)
            unconverged += not converged
    if unconverged:
        warnings.warn(
            f"The linear probe's Newton solver did not converge in max_iter={max_iter} "
            f"iterations for {unconverged} of {len(solutions)} classifiers.",
            ConvergenceWarning,
            stacklevel=3,
        )
    solutions = np.stack(solutions, axis=1)
    if kernel:
        return classes, Z.T @ solutions, solutions.sum(0)
    return classes, solutions[:-1], solutions[-1]


def _newton_squared_hinge(system, gram, signs, C, max_iter):
    """One binary squared-hinge SVM by finite Newton steps; (solution, converged).

    ``gram`` None: ``system`` is the kernel matrix K and the solution the
    sample coefficients beta (outputs ``K @ beta``, penalty ``beta . K beta / 2``).
    Otherwise ``system`` is the data A (a column of ones last), ``gram`` is
    ``A.T @ A`` and the solution the weights w (outputs ``A @ w``, penalty
    ``w . w / 2``).
    """
    n_samples = len(signs)
    kernel = gram is None
    solution = np.zeros(n_samples if kernel else system.shape[1])
    outputs = np.zeros(n_samples)
    inside = np.ones(n_samples, dtype=bool)  # the samples with a positive loss
    for _ in range(max_iter):
        index = np.flatnonzero(inside)
        newton = np.zeros_like(solution)
        if kernel and len(index):
            # beta_I = (K_II + I / 2C)^-1 t_I, and 0 outside I.
            matrix = system[np.ix_(index, index)]
            matrix.flat[:: len(index) + 1] += 1.0 / (2.0 * C)
            newton[index] = _solve_positive(matrix, signs[index])
        elif not kernel:
            # (I + 2C A_I^T A_I) w = 2C A_I^T t_I; A_I^T A_I from the cheaper side.
            outside = np.flatnonzero(~inside)
            if len(outside) < len(index):
                matrix = gram - system[outside].T @ system[outside]
            else:
                matrix = system[index].T @ system[index]
            matrix *= 2.0 * C
            matrix.flat[:: matrix.shape[0] + 1] += 1.0
            newton = _solve_positive(matrix, 2.0 * C * (system[index].T @ signs[index]))
        step = newton - solution
        change = system @ step
        if not np.any(change):
            return solution, True
        if kernel:
            along, curvature = solution @ change, step @ change
        else:
            along, curvature = solution @ step, step @ step
        t = _line_search(along, curvature, 1.0 - signs * outputs, signs * change, C)
        solution += t * step
        outputs += t * change
        now_inside = signs * outputs < 1.0
        if t >= 1.0 - 1e-12 and np.array_equal(now_inside, inside):
            return solution, True  # a full step kept the set: the optimum
        if np.abs(t * change).max() <= 1e-12 * max(1.0, np.abs(outputs).max()):
            return solution, True  # samples on the margin flip with rounding
        inside = now_inside
    return solution, False


def _solve_positive(matrix, rhs):
    factor = linalg.cho_factor(matrix, overwrite_a=True, check_finite=False)
    return linalg.cho_solve(factor, rhs, check_finite=False)


def _line_search(along, curvature, margins, slopes, C):
    """The exact minimiser over t >= 0 of a convex piecewise quadratic.

    ``f(t) = penalty(solution + t step) + C sum_i max(0, margins_i - t slopes_i)^2``,
    whose derivative is ``along + t curvature - 2C sum_i slopes_i max(0, ...)``:
    piecewise linear and non-decreasing, with a breakpoint where a sample
    enters or leaves the margin. The root lies in the first piece whose end
    has a non-negative derivative.
    """
    active = (margins > 0) | ((margins == 0) & (slopes < 0))
    offset = along - 2.0 * C * (slopes[active] @ margins[active])
    gradient = curvature + 2.0 * C * (slopes[active] @ slopes[active])
    crossing = margins * slopes > 0  # a breakpoint at t > 0
    breaks = margins[crossing] / slopes[crossing]
    order = np.argsort(breaks)
    breaks, slope, margin = breaks[order], slopes[crossing][order], margins[crossing][order]
    # A sample with a positive slope leaves the sum at its breakpoint, one with a negative enters.
    sign = np.where(slope > 0, -1.0, 1.0)
    offsets = offset + np.concatenate([[0.0], np.cumsum(-2.0 * C * sign * slope * margin)])
    gradients = gradient + np.concatenate([[0.0], np.cumsum(2.0 * C * sign * slope * slope)])
    ends = np.concatenate([breaks, [np.inf]])
    with np.errstate(invalid="ignore"):  # inf * 0 in a last piece that cannot be reached
        piece = int(np.argmax(offsets + gradients * ends >= 0))
    return -offsets[piece] / gradients[piece]


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

    # The HTML repr links to the class's API page (scikit-learn's mechanism), when
    # the documentation is published somewhere (an empty template: no link).
    _doc_link_module = "sk_dim"
    _doc_link_template = (
        DOCS_URL + "gen_modules/sk_dim.evaluation.{estimator_name}.html" if DOCS_URL else ""
    )

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
