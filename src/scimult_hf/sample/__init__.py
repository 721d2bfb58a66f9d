"""468 real papers shipped with the package, so the demo, the examples and a first ``encode`` work offline.

Titles, abstracts and fields of study (19 fields, multi-label) from the S2ORC metadata sample
(Lo et al., 2020), ODC-By 1.0: see ``README.md`` in this folder for the attribution and how it was built.

>>> from scimult_hf.sample import sample_papers, sample_labels
>>> sample_papers().name, sample_labels().name
('papers.jsonl', 'labels.jsonl')
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def sample_papers() -> Path:
    """``papers.jsonl``: rows ``{"id", "title", "abstract", "labels": [field names]}``."""
    return HERE / "papers.jsonl"


def sample_labels() -> Path:
    """``labels.jsonl``: rows ``{"id", "name"}``, the 19 fields of study."""
    return HERE / "labels.jsonl"
