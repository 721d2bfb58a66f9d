"""InfoNCE over in-batch candidates and hard negatives, without false negatives from repeated texts.

``MultipleNegativesRankingLoss`` treats every other row's positive as a negative of this row. With
few distinct positives (23 OHSUMED labels in a batch of 32; a query with several relevant papers) some
of them are this row's own positive text, or the positive of the same anchor: false negatives.
sentence-transformers' ``NO_DUPLICATES`` batch sampler avoids them by refusing such batches, which a task
with fewer labels than twice the batch size cannot fill at all. This loss instead masks them: a candidate
is left out of row i's softmax when its text equals row i's positive, or when it is the positive of a
row whose anchor equals row i's (texts are compared by their token ids), so batches are drawn freely.
"""

from __future__ import annotations

import torch
from sentence_transformers import util
from torch import nn
from torch.nn import functional as F

__all__ = ["SciMultInfoNCELoss"]


def _text_ids(features: list[dict]) -> list[torch.Tensor]:
    """One integer per row of every column: equal integers for equal token sequences."""
    rows = []
    for f in features:
        ids = f["input_ids"] * f["attention_mask"]
        rows.append(ids)
    width = max(r.shape[1] for r in rows)
    padded = torch.cat([F.pad(r, (0, width - r.shape[1])) for r in rows])
    _, inverse = torch.unique(padded, dim=0, return_inverse=True)
    return list(inverse.split([r.shape[0] for r in rows]))


class SciMultInfoNCELoss(nn.Module):
    """InfoNCE as ``MultipleNegativesRankingLoss`` computes it (anchor -> positive among all in-batch positives
    and hard negatives, scaled similarity, cross-entropy), with repeated texts masked as described in the
    module docstring. It takes only what it uses: the model, the scale and the similarity.

    >>> from sentence_transformers import util
    >>> loss = SciMultInfoNCELoss(model=None, scale=20.0)
    >>> loss.get_config_dict() == {"scale": 20.0, "similarity_fct": util.cos_sim.__name__}
    True
    """

    def __init__(self, model, scale: float = 20.0, similarity_fct=util.cos_sim) -> None:
        super().__init__()
        self.model, self.scale, self.similarity_fct = model, scale, similarity_fct

    def get_config_dict(self) -> dict:
        """What the model card records of the loss."""
        return {"scale": self.scale, "similarity_fct": self.similarity_fct.__name__}

    def forward(self, sentence_features, labels=None) -> torch.Tensor:
        embeddings = [self.model(f)["sentence_embedding"] for f in sentence_features]
        keys = _text_ids(list(sentence_features))
        anchors, candidates = embeddings[0], torch.cat(embeddings[1:])
        scores = self.similarity_fct(anchors, candidates) * self.scale
        n = anchors.shape[0]
        own = torch.eye(n, dtype=torch.bool, device=scores.device)
        positive, anchor = keys[1].to(scores.device), keys[0].to(scores.device)
        masks = [((positive[:, None] == positive[None, :]) | (anchor[:, None] == anchor[None, :])) & ~own]
        for column in keys[2:]:  # a hard negative that is this row's positive text
            masks.append(positive[:, None] == column.to(scores.device)[None, :])
        scores = scores.masked_fill(torch.cat(masks, dim=1), float("-inf"))
        return F.cross_entropy(scores, torch.arange(n, device=scores.device))
