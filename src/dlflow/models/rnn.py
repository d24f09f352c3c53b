"""Recurrent sentence classifier (LSTM or GRU) over word embeddings, a plain ``torch.nn`` module.

The embedding layer follows Kim (2014)'s three modes:

* ``rand``: randomly initialised, trained with the network;
* ``static``: initialised from pre-trained vectors (our Word2Vec) and frozen;
* ``non_static``: initialised from pre-trained vectors and fine-tuned.

Sentences arrive as right-padded token ids ``(N, T)`` plus their lengths
``(N,)``; the recurrent layer sees packed sequences, so padding never enters
the state. The sentence representation is the max over time of the outputs
(``pooling="max"``, Kim's max-over-time pooling) or the final hidden state of
each direction (``pooling="last"``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EMBEDDING_MODES = ("rand", "static", "non_static")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("max", "last")


class SentenceRNN(nn.Module):
    """Embedding → (bi)LSTM/GRU → pooling → dropout → linear, returning logits ``(N, num_classes)``."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        *,
        hidden_size: int = 128,
        num_classes: int = 2,
        cell: str = "lstm",
        bidirectional: bool = True,
        num_layers: int = 1,
        dropout: float = 0.5,
        pooling: str = "max",
        embedding_mode: str = "non_static",
        pretrained: torch.Tensor | None = None,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if embedding_mode not in EMBEDDING_MODES:
            raise ValueError(f"embedding_mode must be one of {EMBEDDING_MODES}, got {embedding_mode!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if embedding_mode != "rand" and pretrained is None:
            raise ValueError(f"embedding_mode {embedding_mode!r} needs pretrained vectors")
        if pretrained is not None and tuple(pretrained.shape) != (vocab_size, embedding_dim):
            raise ValueError(
                f"pretrained vectors have shape {tuple(pretrained.shape)}, expected {(vocab_size, embedding_dim)}"
            )

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        if embedding_mode != "rand":
            with torch.no_grad():
                self.embedding.weight.copy_(pretrained)
                self.embedding.weight[padding_idx].zero_()
        self.embedding.weight.requires_grad_(embedding_mode != "static")
        self.embedding_dropout = nn.Dropout(dropout / 2)
        self.rnn = CELLS[cell](
            embedding_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        longest = int(lengths.max())
        embedded = self.embedding_dropout(self.embedding(token_ids[:, :longest]))
        packed = pack_padded_sequence(embedded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        if self.pooling == "max":
            padded, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"), total_length=longest)
            sentence = padded.max(dim=1).values
        else:
            last = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM returns (h, c)
            directions = 2 if self.rnn.bidirectional else 1
            sentence = torch.cat(list(last[-directions:]), dim=1)
        return self.classifier(self.dropout(sentence))
