"""sk-dim: self-supervised image representations as scikit-learn transformers."""

from ._version import __version__
from .cmc import CMCTransformer
from .dim import DeepInfoMaxTransformer
from .export import to_onnx
from .persistence import load, save

__all__ = ["CMCTransformer", "DeepInfoMaxTransformer", "load", "save", "to_onnx", "__version__"]
