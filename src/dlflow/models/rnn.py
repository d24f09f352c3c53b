"""Recurrent sentence classifier (LSTM or GRU) over word embeddings, a plain ``torch.nn`` module.

The embedding layer follows Kim (2014)'s three modes:

* ``rand``: randomly initialised, trained with the network;
* ``static``: initialised from pre-trained vectors (our Word2Vec) and frozen;
* ``non_static``: initialised from pre-trained vectors and fine-tuned.

Sentences arrive as right-padded token ids ``(N, T)`` plus their lengths
``(N,)``. Padding never enters a state that is used: the forward direction
reads left to right, so positions past a sentence's end come after
everything that matters; the backward direction reads each sentence
reversed *within its own length* (a gather), so it too starts on real words.
This is exactly what packed sequences compute, but runs on the dense RNN
kernels: on CPU, autograd through ``PackedSequence`` spends most of its time
filling zero gradients (measured 5-10x slower here).

The sentence representation is the max over time of the outputs
(``pooling="max"``, Kim's max-over-time pooling) or the state after the last
word of each direction (``pooling="last"``). With ``conv_filters > 0`` a
convolution over time (``conv_kernel`` states wide, ReLU) reads the recurrent
states first and the pooling takes the max over its outputs: features of a
few neighbouring words' states, as Kim's filters are of neighbouring words'
vectors. Padding states are zeroed before it, so a sentence's features do not
depend on how long the other sentences of its batch are.

With ``bf16=None`` (the default) everything after the embedding runs under
bfloat16 autocast where the hardware computes bf16 natively
(``models.precision``): the recurrent cells, the convolution and the linear
layer in bf16, the logits back in float32. The embedding and its gradient
stay in float32. ``bf16=False`` keeps float32 everywhere.

``compact_vocabulary`` and ``expand_vocabulary`` let a caller train on only
the embedding rows its sentences use and then serve the full vocabulary.
With dense Adam a row that never gets a gradient never moves, so this is the
same training, minus the optimiser's work on the rest of the matrix (most of
an epoch's time with a 45k-word vocabulary).
"""

from __future__ import annotations

import torch
from torch import nn

from dlflow.models.precision import bf16_autocast, native_bf16

EMBEDDING_MODES = ("rand", "static", "non_static")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("max", "last", "max_mean", "attention")


def reverse_within_length(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each ``(T, ...)`` row's first ``length`` steps, leaving its padding in place.

    Applying it twice gives back the input.
    """
    steps = torch.arange(sequences.shape[1], device=sequences.device)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    index = index.view(*index.shape, *([1] * (sequences.dim() - 2))).expand_as(sequences)
    return sequences.gather(1, index)


class SentenceRNN(nn.Module):
    """Embedding → (bi)LSTM/GRU → [convolution] → pooling → dropout → linear, returning logits ``(N, num_classes)``."""

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
        conv_filters: int = 0,
        conv_kernel: int = 3,
        bf16: bool | None = None,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if embedding_mode not in EMBEDDING_MODES:
            raise ValueError(f"embedding_mode must be one of {EMBEDDING_MODES}, got {embedding_mode!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if conv_filters and (pooling == "last" or conv_kernel < 1 or conv_kernel % 2 == 0):
            raise ValueError(
                f"a convolution over the states needs an odd conv_kernel and a pooling over time, "
                f"got conv_kernel {conv_kernel} and pooling {pooling!r}"
            )
        if embedding_mode != "rand" and pretrained is None:
            raise ValueError(f"embedding_mode {embedding_mode!r} needs pretrained vectors")
        if pretrained is not None and tuple(pretrained.shape) != (vocab_size, embedding_dim):
            raise ValueError(f"pretrained vectors have shape {tuple(pretrained.shape)}, expected {(vocab_size, embedding_dim)}")

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        if embedding_mode != "rand":
            with torch.no_grad():
                self.embedding.weight.copy_(pretrained)
                self.embedding.weight[padding_idx].zero_()
        self.embedding.weight.requires_grad_(embedding_mode != "static")
        self.embedding_dropout = nn.Dropout(dropout / 2)
        directions = 2 if bidirectional else 1
        layer_inputs = [embedding_dim] + [hidden_size * directions] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(CELLS[cell](n, hidden_size, batch_first=True) for n in layer_inputs)
        self.backward_layers = nn.ModuleList(
            CELLS[cell](n, hidden_size, batch_first=True) for n in (layer_inputs if bidirectional else [])
        )
        self.pooling = pooling
        width = hidden_size * directions
        self.conv = nn.Conv1d(width, conv_filters, conv_kernel, padding=conv_kernel // 2) if conv_filters else None
        width = conv_filters or width
        self.attention = nn.Linear(width, 1) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width * (2 if pooling == "max_mean" else 1), num_classes)
        self.bf16 = bf16

    def architecture(self) -> dict:
        """The keyword arguments that rebuild this network's shape (its weights then load into it)."""
        return {
            "vocab_size": self.embedding.num_embeddings,
            "embedding_dim": self.embedding.embedding_dim,
            "hidden_size": self.forward_layers[0].hidden_size,
            "num_classes": self.classifier.out_features,
            "cell": next(name for name, kind in CELLS.items() if isinstance(self.forward_layers[0], kind)),
            "bidirectional": len(self.backward_layers) > 0,
            "num_layers": len(self.forward_layers),
            "dropout": self.dropout.p,
            "pooling": self.pooling,
            "embedding_mode": "rand",  # the trained embedding is in the weights
            "padding_idx": self.embedding.padding_idx,
            "conv_filters": 0 if self.conv is None else self.conv.out_channels,
            "conv_kernel": 3 if self.conv is None else self.conv.kernel_size[0],
            "bf16": self.bf16,
        }

    def extra_repr(self) -> str:
        return f"bf16={self.bf16}"  # part of the repr, hence of the checkpoint key

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify(*self.embed(token_ids, lengths))

    def embed(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The word vectors ``(N, T, D)`` of the sentences, cut to the longest one, and the lengths (at least 1)."""
        lengths = lengths.clamp(min=1)
        return self.embedding(token_ids[:, : int(lengths.max())]), lengths

    def classify(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (float32) from embedded sentences (``embed``'s output, possibly perturbed: adversarial training)."""
        with bf16_autocast(embedded.device.type, self.bf16):
            return self._classify(embedded, lengths).float()

    def _classify(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        longest = embedded.shape[1]
        states = self.embedding_dropout(embedded)
        for depth, forward_rnn in enumerate(self.forward_layers):
            if depth:
                states = self.dropout(states)
            outputs = [_recurrent(forward_rnn, states)]
            if self.backward_layers:
                reversed_outputs = _recurrent(self.backward_layers[depth], reverse_within_length(states, lengths))
                outputs.append(reverse_within_length(reversed_outputs, lengths))
            states = torch.cat(outputs, dim=2)
        padding = torch.arange(longest, device=states.device)[None, :] >= lengths[:, None]
        if self.conv is not None:
            states = torch.relu(convolve_over_time(states.masked_fill(padding[:, :, None], 0.0), self.conv))
        if self.pooling in ("max", "max_mean"):
            sentence = states.masked_fill(padding[:, :, None], float("-inf")).max(dim=1).values
            if self.pooling == "max_mean":
                mean = states.masked_fill(padding[:, :, None], 0.0).sum(dim=1) / lengths[:, None].to(states.dtype)
                sentence = torch.cat([sentence, mean], dim=1)
        elif self.pooling == "attention":
            scores = self.attention(states).squeeze(2).masked_fill(padding, float("-inf"))
            sentence = (torch.softmax(scores, dim=1)[:, :, None] * states).sum(dim=1)
        else:
            hidden = self.forward_layers[0].hidden_size
            last = states.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[2])).squeeze(1)
            sentence = torch.cat([last[:, :hidden], states[:, 0, hidden:]], dim=1)  # backward: after word 0
        return self.classifier(self.dropout(sentence))


def _recurrent(layer: nn.RNNBase, states: torch.Tensor) -> torch.Tensor:
    """``layer``'s output states. Under bf16 autocast on a CPU without native bf16 (``bf16=True`` forced there),
    the recurrent layer runs in float32: oneDNN has no emulated bf16 LSTM/GRU primitive and would refuse it."""
    if states.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not native_bf16("cpu"):
        with torch.autocast("cpu", enabled=False):
            return layer(states.float())[0]
    return layer(states)[0]


def convolve_over_time(states: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv`` (zero ``kernel // 2`` padding, stride 1) over ``(N, T, C)`` states, returning ``(N, T, filters)``.

    The same numbers as ``conv(states.transpose(1, 2)).transpose(1, 2)``, computed as one matrix product
    of the states with every tap's weights at once, then each tap's outputs shifted into place and
    summed: on CPU a quarter faster than the convolution kernel at these sizes (short sentences, a few
    hundred channels), forward and backward.
    """
    filters, channels, width = conv.weight.shape
    steps = states.shape[1]
    taps = nn.functional.linear(states, conv.weight.permute(2, 0, 1).reshape(width * filters, channels))
    out = taps[:, :, (width // 2) * filters : (width // 2 + 1) * filters]
    if conv.bias is not None:
        out = out + conv.bias
    for tap in range(width):
        shift = tap - width // 2  # output step t reads input step t + shift
        if shift == 0 or abs(shift) >= steps:
            continue
        chunk = taps[:, :, tap * filters : (tap + 1) * filters]
        if shift > 0:
            out = out + nn.functional.pad(chunk[:, shift:], (0, 0, 0, shift))
        else:
            out = out + nn.functional.pad(chunk[:, :shift], (0, 0, -shift, 0))
    return out


def compact_vocabulary(token_ids: torch.Tensor, vocab_size: int, padding_idx: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids of a ``vocab_size`` vocabulary that ``token_ids`` use, sorted (``padding_idx``, which must be 0,
    among them), and a full-to-compact lookup: ``lookup[token_ids]`` are ids into just those rows."""
    if padding_idx != 0:
        raise ValueError(f"a compact vocabulary keeps the padding id 0 in place, got padding_idx {padding_idx}")
    rows = torch.unique(torch.cat([token_ids.flatten(), torch.tensor([padding_idx], dtype=token_ids.dtype)]))
    lookup = torch.zeros(vocab_size, dtype=token_ids.dtype)
    lookup[rows] = torch.arange(len(rows), dtype=token_ids.dtype)
    return rows, lookup


def expand_vocabulary(model: SentenceRNN, rows: torch.Tensor, initial: torch.Tensor) -> SentenceRNN:
    """``model``, trained on a compact vocabulary (its embedding row ``i`` is word ``rows[i]``), over the
    full vocabulary: ``initial`` (the full initial embedding matrix) with the trained rows written in.

    The other rows keep their initial values, which is what training on the full matrix leaves them at.
    """
    if initial.shape[1] != model.embedding.embedding_dim or len(rows) != model.embedding.num_embeddings:
        raise ValueError(
            f"initial embeddings {tuple(initial.shape)} and {len(rows)} rows do not fit the model's "
            f"embedding {tuple(model.embedding.weight.shape)}"
        )
    full = SentenceRNN(**(model.architecture() | {"vocab_size": initial.shape[0]}))
    state = model.state_dict()
    weight = initial.to(state["embedding.weight"].dtype).clone()
    weight[rows] = state["embedding.weight"]
    full.load_state_dict(state | {"embedding.weight": weight})
    full.embedding.weight.requires_grad_(model.embedding.weight.requires_grad)
    return full.train(model.training)
