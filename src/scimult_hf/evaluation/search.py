"""Moved to :mod:`scimult_hf.retrieval.search`; this name stays for existing imports."""

from ..retrieval.search import *  # noqa: F401,F403
from ..retrieval.search import __all__  # noqa: F401
