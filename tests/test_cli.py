"""The command line's one error boundary: the package's errors in one line, defects with their traceback."""

from __future__ import annotations

import pytest

from scimult_hf import cli
from scimult_hf.configuration_scimult import SciMultInputError
from scimult_hf.errors import InputError, MissingDependencyError


def _demo_raising(monkeypatch, error: BaseException) -> None:
    def handler(args):
        raise error

    monkeypatch.setattr(cli, "_demo", handler)


@pytest.mark.parametrize("error", [InputError("--top-k must be at least 1."), MissingDependencyError("pip install x"),
                                   SciMultInputError("Unknown task 'x'"), FileNotFoundError("no file at y")],
                         ids=["input", "dependency", "remote-code", "missing-file"])
def test_the_packages_errors_are_one_line(monkeypatch, capsys, error):
    _demo_raising(monkeypatch, error)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err == f"scimult-hf demo: error: {error}\n"  # one line, no traceback


def test_debug_shows_the_traceback_too(monkeypatch, capsys):
    _demo_raising(monkeypatch, InputError("bad value"))
    assert cli.main(["--debug", "demo"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.endswith("scimult-hf demo: error: bad value\n")


@pytest.mark.parametrize("error", [ValueError("operands could not be broadcast"), ImportError("broken module"),
                                   KeyError("missing")], ids=["value", "import", "key"])
def test_a_defect_is_not_dressed_as_a_user_mistake(monkeypatch, error):
    _demo_raising(monkeypatch, error)
    with pytest.raises(type(error)):  # propagates: Python prints its traceback, exit code 1
        cli.main(["demo"])
