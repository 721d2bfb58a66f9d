"""The package's own errors: one base, so that a caller (and the command line) can tell a mistake in the
input from a defect.

:class:`ScimultError` is the base of every error scimult-hf raises on purpose, each with a message that names
the problem and the fix. ``scimult-hf`` prints those (and missing files or permissions) as one line; anything
else is a defect and shows its traceback (``--debug`` shows it always).

>>> try:
...     raise InputError("--top-k must be at least 1.")
... except ScimultError as err:
...     print(err)
--top-k must be at least 1.
"""

from __future__ import annotations

__all__ = ["CacheError", "DiskFullError", "InputError", "MissingDependencyError", "REMOTE_CODE_ERRORS", "ScimultError", "is_user_error"]


#: Errors of the remote-code files (``configuration_scimult.SciMultInputError``), which cannot import this module:
#: the command line reports them by name like the package's own.
REMOTE_CODE_ERRORS = frozenset({"SciMultInputError"})


def is_user_error(err: BaseException) -> bool:
    """True for an error that names a mistake in the input (reported in one line), not a defect."""
    return isinstance(err, (ScimultError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                            NotADirectoryError)) or type(err).__name__ in REMOTE_CODE_ERRORS


class ScimultError(Exception):
    """Base of the errors scimult-hf raises on purpose; the message says what is wrong and how to fix it."""


class InputError(ScimultError, ValueError):
    """Bad input: an option, a value, a file's content, a model that does not fit the request."""


class MissingDependencyError(ScimultError, ImportError):
    """An optional package is needed and not installed; the message gives the install command."""


class CacheError(ScimultError, OSError):
    """A cache entry cannot be written or read."""


class DiskFullError(ScimultError, OSError):
    """An output could not be written for lack of space; nothing was replaced."""
