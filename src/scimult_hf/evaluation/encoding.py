"""Moved to :mod:`scimult_hf.retrieval.encoding`; this name stays for existing imports."""

from ..retrieval.encoding import *  # noqa: F401,F403
from ..retrieval.encoding import __all__  # noqa: F401
