"""The version of sk_dim: a leaf module, so that any module can read it without import circles."""

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of sk_dim, torch and scikit-learn: recorded at fit, compared at load."""
    import sklearn
    import torch

    return {"sk_dim": __version__, "torch": torch.__version__, "scikit-learn": sklearn.__version__}


# Where the documentation is published, pinned to the version as scikit-learn pins its
# links; the HTML repr of the estimators links to their API pages there. Empty until a
# site exists: no link is better than a dead one (build the docs with `make docs`).
DOCS_URL = ""
