"""The parameters both transformers share are documented once, word for word."""

import re

import pytest

from sk_dim import CMCTransformer, DeepInfoMaxTransformer

# Shared parameters whose meaning is the same in both transformers.
SHARED = [
    "image_shape",
    "device",
    "on_divergence",
    "precision",
    "channels_last",
    "compile",
    "n_threads",
    "accelerate",
    "warm_start",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "callbacks",
    "verbose",
]


def parameter_docs(cls) -> dict[str, str]:
    text = cls.__doc__.split("Parameters\n    ----------\n", 1)[1].split("\n    Attributes\n")[0]
    entries = re.split(r"\n(?=    \w+ : )", "\n" + text)
    return {entry.split(" : ")[0].strip(): entry.strip() for entry in entries if entry.strip()}


@pytest.mark.parametrize("name", SHARED)
def test_shared_parameters_have_the_same_documentation(name):
    dim, cmc = parameter_docs(DeepInfoMaxTransformer), parameter_docs(CMCTransformer)
    assert dim[name] == cmc[name]


def test_every_parameter_is_documented():
    for cls in (DeepInfoMaxTransformer, CMCTransformer):
        assert set(parameter_docs(cls)) == set(cls().get_params())
