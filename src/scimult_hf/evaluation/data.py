"""Moved to :mod:`scimult_hf.retrieval.data`; this name stays for existing imports."""

from ..retrieval.data import *  # noqa: F401,F403
from ..retrieval.data import __all__  # noqa: F401
