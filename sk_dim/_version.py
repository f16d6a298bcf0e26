"""The version of sk_dim: a leaf module, so that any module can read it without import circles."""

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of sk_dim, torch and scikit-learn: recorded at fit, compared at load."""
    import sklearn
    import torch

    return {"sk_dim": __version__, "torch": torch.__version__, "scikit-learn": sklearn.__version__}


# Where the documentation is published (built from docs/ by .readthedocs.yaml); the
# HTML repr of the estimators links to their API pages there.
DOCS_URL = "https://sk-dim.readthedocs.io/en/latest/"
