"""The linear probe and the exact solver of its SVM.

:func:`linear_probe` scores a linear SVM trained on frozen features, the
linear evaluation of representation learning. Its SVM is
:class:`~sklearn.svm.LinearSVC`'s, solved to the optimum by a finite Newton
method with an exact line search (Keerthi and DeCoste 2005; Chapelle 2007)
instead of liblinear, which stops short on wide features.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from threadpoolctl import threadpool_limits

from ..mi_estimation import check_positive_float, check_positive_int
from .features import probe_inputs


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
    Z_train, Z_test, y_train, y_test = probe_inputs(
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


__all__ = ["linear_probe"]
