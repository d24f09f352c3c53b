"""``Word2Vec``: the two embedding matrices of word2vec with negative sampling.

A plain ``torch.nn.Module`` with no forward pass of its own: training updates the
matrices in place with closed-form gradients (see ``dlflow.training.word2vec``),
so there is nothing for autograd to do. Initialisation follows word2vec.c and
gensim: input vectors uniform in ``(-0.5/dim, 0.5/dim)``, output vectors zero.
"""

from __future__ import annotations

import torch
from torch import nn


class Word2Vec(nn.Module):
    """Input (``syn0``) and output (``syn1neg``) embeddings of a ``vocab_size`` x ``dim`` word2vec model."""

    def __init__(self, vocab_size: int, dim: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.vocab_size = vocab_size
        self.dim = dim
        weight = (torch.rand(vocab_size, dim, generator=generator) - 0.5) / dim
        self.input_embeddings = nn.Parameter(weight, requires_grad=False)
        self.output_embeddings = nn.Parameter(torch.zeros(vocab_size, dim), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """The input vectors of ``ids`` (what downstream models use as word embeddings)."""
        return self.input_embeddings[ids]

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, dim={self.dim}"
