"""The runnable examples in the docstrings run and print what they say: every module of the package that has
examples (found by walking the package, so a new module's examples are collected too)."""

import doctest
import importlib
import pkgutil

import pytest

import scimult_hf

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(scimult_hf.__path__, prefix="scimult_hf."):
        if ".metrics." in info.name:  # evaluate metric scripts: loaded by evaluate, tested in test_eval_modules
            continue
        module = importlib.import_module(info.name)
        tests = doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
        runnable = [t for t in tests if any(not e.options.get(doctest.SKIP) for e in t.examples)]
        if runnable:
            names.append(info.name)
    return names


MODULES = modules_with_examples()


def test_the_examples_are_found():
    assert len(MODULES) >= 10, MODULES  # text, io, errors, search, tasks, released, loss, ... all have some


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
    assert result.attempted > 0 and result.failed == 0
