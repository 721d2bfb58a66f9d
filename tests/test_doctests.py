"""The runnable examples in the docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "scimult_hf.text",
    "scimult_hf.sample",
    "scimult_hf.sentence",
    "scimult_hf.corpus.display",
    "scimult_hf.corpus.reader",
    "scimult_hf.retrieval.search",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no runnable examples"
    assert result.failed == 0
