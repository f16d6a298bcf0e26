"""The mini-batch training and prediction the neural classifiers share.

:class:`TorchClassifier` is the base of :class:`~sk_dim.evaluation.MLPProbe`
and :class:`~sk_dim.evaluation.FineTunedClassifier`: cross-entropy training
through ``train_minibatches`` (the one loop of every small network beside the
estimators), prediction in chunks, and scikit-learn's parameter checks and
HTML documentation link.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from .._training import train_minibatches
from .._version import DOCS_URL


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


__all__ = ["TorchClassifier"]
