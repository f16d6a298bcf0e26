"""The entries both transformers share are written once (sk_dim/_docs.py) and shown in both."""

import re
import textwrap
from pathlib import Path

import pytest

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim._docs import SHARED_ATTRIBUTES, SHARED_ENTRIES, SHARED_PARAMETERS

PACKAGE = Path(__file__).resolve().parents[1] / "sk_dim"
ESTIMATORS = (DeepInfoMaxTransformer, CMCTransformer)


def section(cls, title: str, end: str) -> dict[str, str]:
    """The numpydoc entries of one section of ``cls``'s docstring, by name."""
    text = cls.__doc__.split(f"{title}\n    {'-' * len(title)}\n", 1)[1]
    text = text.split(f"\n    {end}\n")[0]
    entries = re.split(r"\n(?=    \w+ : )", "\n" + text)
    return {entry.split(" : ")[0].strip(): entry.strip("\n") for entry in entries if entry.strip()}


def parameter_docs(cls) -> dict[str, str]:
    return section(cls, "Parameters", "Attributes")


def attribute_docs(cls) -> dict[str, str]:
    return section(cls, "Attributes", "See Also")


@pytest.mark.parametrize("name", SHARED_ENTRIES)
def test_a_shared_entry_is_written_once_in_the_source(name):
    # Its description (the lines after "name : type"): in _docs.py, not in the estimators.
    description = SHARED_ENTRIES[name].split("\n", 1)[1]
    counts = {
        module: (PACKAGE / module).read_text(encoding="utf-8").count(description)
        for module in ("_docs.py", "dim.py", "cmc.py")
    }
    assert counts == {"_docs.py": 1, "dim.py": 0, "cmc.py": 0}


@pytest.mark.parametrize("name", SHARED_PARAMETERS)
def test_both_transformers_show_a_shared_parameter(name):
    expected = textwrap.indent(SHARED_PARAMETERS[name], "    ")
    for cls in ESTIMATORS:
        assert parameter_docs(cls)[name] == expected, cls.__name__


@pytest.mark.parametrize("name", SHARED_ATTRIBUTES)
def test_both_transformers_show_a_shared_attribute(name):
    expected = textwrap.indent(SHARED_ATTRIBUTES[name], "    ")
    for cls in ESTIMATORS:
        assert attribute_docs(cls)[name] == expected, cls.__name__


def test_no_marker_is_left_in_a_rendered_docstring():
    for cls in ESTIMATORS:
        assert "{shared:" not in cls.__doc__


def test_every_parameter_is_documented():
    for cls in ESTIMATORS:
        assert set(parameter_docs(cls)) == set(cls().get_params())
