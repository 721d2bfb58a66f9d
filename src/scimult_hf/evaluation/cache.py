"""Moved to :mod:`scimult_hf.retrieval.cache`; this name stays for existing imports."""

from ..retrieval.cache import *  # noqa: F401,F403
from ..retrieval.cache import __all__  # noqa: F401
