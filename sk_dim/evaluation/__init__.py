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

The package has one module per purpose: :mod:`~sk_dim.evaluation.features`
(the features probed), :mod:`~sk_dim.evaluation.linear` (the linear probe and
its SVM solver), :mod:`~sk_dim.evaluation.mlp` (the non-linear probe),
:mod:`~sk_dim.evaluation.torch_classifier` (the training both neural
classifiers share), :mod:`~sk_dim.evaluation.finetune` and
:mod:`~sk_dim.evaluation.dependency`. Import the names from ``sk_dim.evaluation``.
"""

from .dependency import mine, neural_dependency_measure, shuffle_factors
from .features import probe_features
from .finetune import FineTunedClassifier, semi_supervised_finetune
from .linear import linear_probe
from .mlp import PROBE_HIDDEN_UNITS, MLPProbe, nonlinear_probe

__all__ = [
    "PROBE_HIDDEN_UNITS",
    "FineTunedClassifier",
    "MLPProbe",
    "linear_probe",
    "mine",
    "neural_dependency_measure",
    "nonlinear_probe",
    "probe_features",
    "semi_supervised_finetune",
    "shuffle_factors",
]
