"""The head of the speech-embedding teacher: an MLP over the frozen embedding's 9 frames x 96.

``folds > 0`` adds that many more heads of the same shape for cross-fitting: head ``f`` is trained without the
clips of fold ``f`` and labels only those, so the soft targets of a training clip come from a head that never saw it.
``forward`` is the main head (trained on every clip): what labels anything else. ``members > 0`` adds that many more
whole heads (each with its own input normalisation), trained on the same rows from other seeds; ``forward`` is then
the mean of the main head's and the members' logits: an ensemble over training draws (a wake word's verifier).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.train.models.common import FeatureNorm

__all__ = ["EmbeddingHead"]


def _mlp(inputs: int, hidden: int, n_labels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_labels))


class EmbeddingHead(nn.Module):
    def __init__(self, n_labels: int, n_mels: int = 96, frames: int = 9, hidden: int = 256, dropout: float = 0.3, folds: int = 0,
                 members: int = 0) -> None:
        super().__init__()
        self.norm = FeatureNorm(n_mels)
        self.mlp = _mlp(frames * n_mels, hidden, n_labels, dropout)
        self.folds = nn.ModuleList(_mlp(frames * n_mels, hidden, n_labels, dropout) for _ in range(folds))
        self.members = nn.ModuleList(nn.Sequential(FeatureNorm(n_mels), _mlp(frames * n_mels, hidden, n_labels, dropout))
                                     for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 9, 96)
        y = self.mlp(self.norm(x))
        if len(self.members):
            y = torch.stack([y, *(m(x) for m in self.members)]).mean(0)
        return y

    def head_for(self, fold: int) -> nn.Module:
        """The model that labels rows of ``fold``: fold head ``fold`` (which never saw them) behind the shared input
        normalisation, or the main head for -1."""
        return self if fold < 0 else nn.Sequential(self.norm, self.folds[fold])
