"""sk_dim._version: the version, and the versions recorded at fit."""

import re

import sklearn
import torch

import sk_dim
from sk_dim._version import DOCS_URL, __version__, versions


def test_the_package_version_is_this_modules():
    assert sk_dim.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", __version__)


def test_versions_names_sk_dim_torch_and_scikit_learn():
    assert versions() == {
        "sk_dim": __version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }
    assert versions() is not versions()  # a fresh dict each time: callers may edit theirs


def test_docs_url_is_empty_or_an_https_address():
    assert DOCS_URL == "" or DOCS_URL.startswith("https://")
