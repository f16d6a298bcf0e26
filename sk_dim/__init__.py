"""sk-dim: self-supervised image representations as scikit-learn transformers."""

from .cmc import CMCTransformer
from .dim import DeepInfoMaxTransformer
from .persistence import load, save

__version__ = "0.1.0"

__all__ = ["CMCTransformer", "DeepInfoMaxTransformer", "load", "save", "__version__"]
