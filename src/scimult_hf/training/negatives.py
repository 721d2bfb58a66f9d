"""Hard negatives for contrastive training, mined with a model (the paper's generalised hard negatives).

For each training pair the anchor is encoded, and so is every candidate (the corpus for search and link
prediction, the label texts for classification), through the task's expert; the nearest candidates
that are not among the anchor's known positives become its negatives. sentence-transformers'
``util.mine_hard_negatives`` was considered: it can only exclude the row's own positive (or a score
margin), while a query with several relevant papers, or a paper with several labels, must never get
another of its positives as a negative; and it cannot route the encoding through an expert.
"""

from __future__ import annotations

import logging

from ..errors import InputError
from ..models.tasks import task_names
from ..retrieval import encode_texts, exact_topk, l2_normalize, similarity_kind
from .data import TaskData

logger = logging.getLogger(__name__)

__all__ = ["mine_hard_negatives"]


def mine_hard_negatives(st, data: TaskData, num_negatives: int = 1, skip_top: int = 0, batch_size: int = 64,
                        show_progress_bar: bool = False) -> TaskData:
    """Add ``negative`` (one) or ``negative_1`` ... ``negative_n`` columns to ``data.pairs``.

    ``skip_top`` passes over the nearest non-positive candidates first (they are often unlabelled
    positives). Data read from a pair file has no candidate pool and cannot be mined.
    """
    if num_negatives < 1:
        return data
    if not data.candidates:
        raise InputError(f"task {data.task!r}: data from {data.source.get('path')} has no candidate pool to mine "
                         "negatives from (a pair file); give its negatives in a 'negative' column instead.")
    task = data.task if task_names(st) is not None else None
    cand_ids = list(data.candidates)
    anchors = list(dict.fromkeys(data.anchor_ids))
    anchor_text = dict(zip(data.anchor_ids, data.pairs["anchor"]))
    kwargs = dict(batch_size=batch_size, show_progress_bar=show_progress_bar)
    a = encode_texts(st, [anchor_text[i] for i in anchors], task, role="query", **kwargs)
    c = encode_texts(st, [data.candidates[i] for i in cand_ids], task, role="document", **kwargs)
    if similarity_kind(st) == "cosine":
        a, c = l2_normalize(a), l2_normalize(c)
    most_positives = max(len(p) for p in data.positives.values())
    k = min(len(cand_ids), num_negatives + skip_top + most_positives)
    _, idx = exact_topk(a, c, k)
    chosen: dict[str, list[str]] = {}
    for anchor, row in zip(anchors, idx.tolist()):
        ranked = [cand_ids[i] for i in row if cand_ids[i] not in data.positives.get(anchor, ())][skip_top:]
        if len(ranked) < num_negatives:
            raise InputError(f"task {data.task!r}: only {len(ranked)} candidates are not positives of {anchor!r}; "
                             f"cannot mine {num_negatives} negatives.")
        chosen[anchor] = ranked[:num_negatives]
    names = ["negative"] if num_negatives == 1 else [f"negative_{j + 1}" for j in range(num_negatives)]
    pairs = data.pairs
    for j, name in enumerate(names):
        if name in pairs.column_names:
            pairs = pairs.remove_columns(name)
        pairs = pairs.add_column(name, [data.candidates[chosen[a][j]] for a in data.anchor_ids])
    logger.info("task %s: mined %d negative(s) for %d anchors", data.task, num_negatives, len(anchors))
    return TaskData(data.task, pairs, data.anchor_ids, data.positive_ids, data.candidates, data.positives,
                    {**data.source, "negatives": num_negatives, "negatives_skip_top": skip_top})
