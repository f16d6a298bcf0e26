"""Semi-supervised fine-tuning of a pretrained encoder.

:class:`FineTunedClassifier` (and :func:`semi_supervised_finetune`) trains a copy
of a fitted transformer's feature extractor
(:meth:`~sk_dim.DeepInfoMaxTransformer.feature_extractor`) together with a
classifier head, the :class:`~sk_dim.evaluation.MLPProbe` network or a linear
layer, on labelled samples. The transformer itself is never modified.
"""

from __future__ import annotations

from collections import OrderedDict
from numbers import Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from .._torch import resolve_device, seeded
from .mlp import PROBE_HIDDEN_UNITS, build_probe_head
from .torch_classifier import TorchClassifier


class FineTunedClassifier(TorchClassifier):
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
    module_ : torch.nn.Sequential
        The fine-tuned network (on ``device_``, in eval mode): ``module_.backbone``,
        the transformer's :meth:`~sk_dim.DeepInfoMaxTransformer.feature_extractor`
        after training, then ``module_.head``.
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
    >>> dim = DeepInfoMaxTransformer(embedding_dim=8, max_epochs=1, random_state=0).fit(X[:100])
    >>> clf = FineTunedClassifier(dim, max_epochs=2, random_state=0).fit(X[:100], y[:100])
    >>> clf.predict(X[100:103]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **TorchClassifier._parameter_constraints,
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
        if not hasattr(transformer, "feature_extractor"):  # the sk_dim transformers' seam
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

        # A trainable copy of the network parts computing the features at self.layer
        # (an unknown layer raises here).
        backbone = transformer.feature_extractor(self.layer)
        self.device_ = resolve_device(self.device)
        backbone = backbone.to(self.device_)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with seeded(seed, self.device_):
            with torch.no_grad():
                n_in = backbone(data[:2].to(self.device_)).shape[1]
            n_classes = len(self.classes_)
            if self.head == "mlp":
                head = build_probe_head(n_in, n_classes, PROBE_HIDDEN_UNITS, 0.1)
            else:
                head = nn.Linear(n_in, n_classes)
            self.module_ = nn.Sequential(OrderedDict(backbone=backbone, head=head))
            self.module_.to(self.device_)
            encoder_lr = self.lr if self.encoder_lr is None else self.encoder_lr
            groups = [{"params": list(head.parameters())}]
            if encoder_lr > 0:
                groups.append({"params": list(backbone.parameters()), "lr": encoder_lr})
            else:
                backbone.requires_grad_(False)
            self._train(data, target, seed, params=groups)
        return self

    def _as_data(self, X) -> Tensor:
        return self.transformer_.to_tensor(X)

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
    >>> dim = DeepInfoMaxTransformer(embedding_dim=8, max_epochs=1, random_state=0).fit(X[:100])
    >>> clf = semi_supervised_finetune(dim, X[:100], y[:100], max_epochs=2, random_state=0)
    >>> 0 <= clf.score(X[100:200], y[100:200]) <= 1
    True
    """
    return FineTunedClassifier(transformer, **params).fit(X_labelled, y_labelled)


__all__ = ["FineTunedClassifier", "semi_supervised_finetune"]
