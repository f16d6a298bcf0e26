"""sk-dim: self-supervised image representations as scikit-learn transformers."""

from .dim import DeepInfoMaxTransformer

__version__ = "0.1.0"

__all__ = ["DeepInfoMaxTransformer", "__version__"]
