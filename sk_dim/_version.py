"""The version of sk_dim: a leaf module, so that any module can read it without import circles."""

__version__ = "0.1.0"
