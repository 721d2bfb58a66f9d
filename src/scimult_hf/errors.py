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

import errno

__all__ = ["CacheError", "DiskFullError", "InputError", "MissingDependencyError", "OUTPUT_ERRNOS", "OutputError",
           "REMOTE_CODE_ERRORS", "json_error_text", "ScimultError", "is_user_error"]


#: Errors of the remote-code files (``configuration_scimult.SciMultInputError``), which cannot import this module:
#: the command line reports them by name like the package's own.
REMOTE_CODE_ERRORS = frozenset({"SciMultInputError"})


#: ``errno`` values of an ``OSError`` that say where an output was asked for cannot take it (a read-only file
#: system, a file where a folder should be, a full disk): the user's to fix, reported in one line.
OUTPUT_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST, errno.EISDIR,
                           errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG})


def is_user_error(err: BaseException) -> bool:
    """True for an error that names a mistake in the input (reported in one line), not a defect."""
    return (isinstance(err, (ScimultError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                             NotADirectoryError))
            or (type(err) is OSError and err.errno in OUTPUT_ERRNOS)
            or type(err).__name__ in REMOTE_CODE_ERRORS)


def json_error_text(err) -> str:
    """A ``json.JSONDecodeError`` in words: ``Expecting value at column 5`` (json's own message may already end in
    "at", as in "Unterminated string starting at")."""
    return f"{err.msg.removesuffix(' at')} at column {err.colno}"


class ScimultError(Exception):
    """Base of the errors scimult-hf raises on purpose; the message says what is wrong and how to fix it."""


class InputError(ScimultError, ValueError):
    """Bad input: an option, a value, a file's content, a model that does not fit the request."""


class MissingDependencyError(ScimultError, ImportError):
    """An optional package is needed and not installed; the message gives the install command."""


class CacheError(ScimultError, OSError):
    """A cache entry cannot be written or read."""


class OutputError(ScimultError, OSError):
    """An output cannot be written where it was asked for (a file in the way, a read-only folder)."""


class DiskFullError(ScimultError, OSError):
    """An output could not be written for lack of space; nothing was replaced."""


class DownloadError(ScimultError):
    """A download failed after its retries (a dropped connection, a server that stopped answering); what was
    fetched is kept, so running the command again resumes. Not an ``OSError``: ``zipfile`` would take one raised
    while it reads the archive's end for a file that is not a zip."""
