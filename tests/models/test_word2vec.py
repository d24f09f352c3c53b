"""The Word2Vec module: shapes and word2vec/gensim initialisation."""

from __future__ import annotations

import pytest
import torch

from dlflow.models.word2vec import Word2Vec


def test_initialisation_matches_word2vec() -> None:
    model = Word2Vec(500, 40, generator=torch.Generator().manual_seed(0))
    assert model.input_embeddings.shape == (500, 40)
    assert model.output_embeddings.shape == (500, 40)
    assert model.input_embeddings.abs().max() <= 0.5 / 40
    assert model.input_embeddings.std() > 0.1 * (0.5 / 40)  # not all zero
    assert torch.count_nonzero(model.output_embeddings) == 0
    assert not model.input_embeddings.requires_grad  # trained with closed-form steps, not autograd
    assert torch.equal(model(torch.tensor([3, 7])), model.input_embeddings[[3, 7]])


def test_seeded_initialisation_is_reproducible() -> None:
    a = Word2Vec(50, 8, generator=torch.Generator().manual_seed(1))
    b = Word2Vec(50, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.input_embeddings, b.input_embeddings)


@pytest.mark.parametrize(("vocab_size", "dim"), [(0, 10), (10, 0)])
def test_rejects_empty_shapes(vocab_size: int, dim: int) -> None:
    with pytest.raises(ValueError, match="vocab_size|dim"):
        Word2Vec(vocab_size, dim)
