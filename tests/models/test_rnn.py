"""SentenceRNN: shapes, embedding modes, padding invariance, learning a toy separable task, and training on a
compact vocabulary."""

from __future__ import annotations

import pytest
import torch

from dlflow.models.precision import native_bf16
from dlflow.models.rnn import SentenceRNN, compact_vocabulary, expand_vocabulary
from dlflow.training import TensorDataset, TrainConfig, fit

#: These networks are tiny: one intra-op thread computes them faster than two that meet at a barrier after every
#: small op (on a busy 2-core machine 20-40x faster). The thread count changes no result that a test here checks.
ONE_THREAD = {"num_threads": 1}


@pytest.fixture(autouse=True)
def one_thread():
    """Each test computes with one torch thread (``ONE_THREAD``); the process's setting is put back after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_task(n: int = 512, vocab: int = 20, length: int = 12, seed: int = 0) -> TensorDataset:
    """Label 1 iff token 3 ("good") occurs in the sentence; sentences have random lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    ids = torch.randint(4, vocab, (n, length), generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    positions = (torch.rand(n, generator=g) * lengths).long()
    ids[labels == 1, positions[labels == 1]] = 3
    mask = torch.arange(length)[None, :] >= lengths[:, None]
    ids[mask] = 0
    return TensorDataset(features=(ids, lengths), targets=labels)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["max", "last", "max_mean", "attention"])
def test_output_shape_and_padding_does_not_matter(cell, pooling):
    model = SentenceRNN(30, 8, hidden_size=6, cell=cell, pooling=pooling, embedding_mode="rand", bf16=False).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    lengths = torch.tensor([3, 2])
    logits = model(ids, lengths)
    assert logits.shape == (2, 2)
    longer = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(longer, lengths), logits)
    ids_with_garbage_padding = ids.clone()
    ids_with_garbage_padding[0, 3:] = 11
    torch.testing.assert_close(model(ids_with_garbage_padding, lengths), logits)


@pytest.mark.parametrize("pooling", ["max", "max_mean", "attention"])
@pytest.mark.parametrize("bf16", [False, True])
def test_a_convolution_over_the_states_ignores_padding_and_other_sentences(pooling, bf16):
    """With ``conv_filters`` a sentence's logits are what it gets alone: padding states are zeroed before the
    convolution, so neither the batch's longest sentence nor garbage past its end reaches the filters
    (in bf16 too, where bf16 rounding is the only difference allowed)."""
    model = SentenceRNN(
        30, 8, hidden_size=6, pooling=pooling, embedding_mode="rand", conv_filters=5, conv_kernel=3, bf16=bf16
    ).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0, 0], [8, 9, 10, 11, 12, 13, 14]])
    lengths = torch.tensor([3, 7])
    logits = model(ids, lengths)
    assert logits.shape == (2, 2) and model.conv.out_channels == 5
    tolerance = {"rtol": 1e-2, "atol": 1e-2} if bf16 else {}
    torch.testing.assert_close(model(ids[:1, :3], lengths[:1]), logits[:1], **tolerance)  # alone, no padding at all
    garbage = ids.clone()
    garbage[0, 3:] = 11
    torch.testing.assert_close(model(garbage, lengths), logits, **tolerance)


def test_static_embeddings_are_frozen_and_non_static_are_trained():
    vectors = torch.randn(10, 4)
    static = SentenceRNN(10, 4, hidden_size=3, embedding_mode="static", pretrained=vectors)
    non_static = SentenceRNN(10, 4, hidden_size=3, embedding_mode="non_static", pretrained=vectors)
    assert not static.embedding.weight.requires_grad
    assert non_static.embedding.weight.requires_grad
    torch.testing.assert_close(static.embedding.weight[1:], vectors[1:])
    assert torch.all(static.embedding.weight[0] == 0)  # padding row


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="cell"):
        SentenceRNN(10, 4, cell="transformer", embedding_mode="rand")
    with pytest.raises(ValueError, match="pretrained"):
        SentenceRNN(10, 4, embedding_mode="static")
    with pytest.raises(ValueError, match="shape"):
        SentenceRNN(10, 4, embedding_mode="static", pretrained=torch.zeros(9, 4))
    with pytest.raises(ValueError, match="odd conv_kernel"):
        SentenceRNN(10, 4, embedding_mode="rand", conv_filters=8, conv_kernel=2)
    with pytest.raises(ValueError, match="pooling 'last'"):
        SentenceRNN(10, 4, embedding_mode="rand", conv_filters=8, pooling="last")


def test_learns_a_toy_separable_task():
    train, val = toy_task(seed=0), toy_task(n=256, seed=1)
    model = SentenceRNN(20, 8, hidden_size=16, cell="gru", embedding_mode="rand", dropout=0.1)
    config = TrainConfig(epochs=8, batch_size=32, optimizer="adam", lr=0.01, progress=False, seed=0, **ONE_THREAD)
    result = fit(model, train, val, config)
    assert result.history[-1].val_accuracy > 0.95


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_packed_sequences(cell):
    """The dense, reverse-within-length computation equals PyTorch's packed bidirectional RNN."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    model = SentenceRNN(30, 6, hidden_size=5, cell=cell, embedding_mode="rand", dropout=0.0, bf16=False).eval()
    packed_rnn = getattr(torch.nn, cell.upper())(6, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():  # the packed RNN gets the same weights as our two directions
        for name, value in model.forward_layers[0].named_parameters():
            getattr(packed_rnn, name).copy_(value)
        for name, value in model.backward_layers[0].named_parameters():
            getattr(packed_rnn, f"{name}_reverse").copy_(value)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [11, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])
    embedded = model.embedding(ids)
    packed, _ = packed_rnn(pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False))
    expected, _ = pad_packed_sequence(packed, batch_first=True, padding_value=float("-inf"))
    expected_logits = model.classifier(expected.max(dim=1).values)
    torch.testing.assert_close(model(ids, lengths), expected_logits)


def test_bf16_runs_the_network_after_the_embedding_in_bf16_and_returns_float32_logits():
    """``bf16=True``: cells, convolution and classifier compute in bf16 (the embedding stays float32), the logits
    come back in float32 and stay close to the float32 network's; ``False`` is float32 throughout. On a CPU
    without native bf16 the recurrent cells stay float32 (oneDNN has no emulated bf16 LSTM and refused it)."""
    cells = torch.bfloat16 if native_bf16("cpu") else torch.float32
    torch.manual_seed(0)
    fp32 = SentenceRNN(30, 8, hidden_size=6, embedding_mode="rand", conv_filters=5, bf16=False).eval()
    bf16 = SentenceRNN(**fp32.architecture() | {"bf16": True}).eval()
    bf16.load_state_dict(fp32.state_dict())
    ids, lengths = torch.randint(1, 30, (4, 7)), torch.tensor([7, 3, 1, 5])
    for model, inside in ((fp32, torch.float32), (bf16, torch.bfloat16)):
        seen = {}
        hooks = [
            module.register_forward_hook(lambda module, args, output, name=name: seen.setdefault(name, output))
            for name, module in (
                ("embedding", model.embedding),
                ("lstm", model.forward_layers[0]),
                ("classifier", model.classifier),
            )
        ]
        logits = model(ids, lengths)
        for hook in hooks:
            hook.remove()
        assert logits.dtype == torch.float32 and seen["embedding"].dtype == torch.float32
        assert seen["lstm"][0].dtype == (cells if inside == torch.bfloat16 else inside)
        assert seen["classifier"].dtype == inside
    torch.testing.assert_close(bf16(ids, lengths), fp32(ids, lengths), rtol=0.05, atol=0.05)
    assert "bf16=True" in repr(bf16) and bf16.architecture()["bf16"] is True


def test_reverse_within_length_is_an_involution():
    from dlflow.models.rnn import reverse_within_length

    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    lengths = torch.tensor([3, 2])
    assert reverse_within_length(x, lengths).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_within_length(reverse_within_length(x, lengths), lengths), x)


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "bidirectional": True, "pooling": "max", "num_layers": 1},
        {"cell": "gru", "bidirectional": False, "pooling": "attention", "num_layers": 2},
        {"cell": "lstm", "bidirectional": True, "pooling": "max_mean", "num_layers": 2, "embedding_mode": "static"},
        {"cell": "lstm", "bidirectional": True, "pooling": "max", "num_layers": 1, "conv_filters": 5, "conv_kernel": 5},
    ],
)
def test_architecture_rebuilds_the_same_network(options: dict) -> None:
    """What the registered RNN stores to rebuild itself: same shape, same answers once the weights are loaded."""
    torch.manual_seed(0)
    pretrained = torch.randn(30, 8)
    mode = options.pop("embedding_mode", "non_static")
    trained = SentenceRNN(30, 8, hidden_size=6, num_classes=3, embedding_mode=mode, pretrained=pretrained, **options).eval()
    rebuilt = SentenceRNN(**trained.architecture())
    rebuilt.load_state_dict(trained.state_dict())
    rebuilt.eval()
    ids, lengths = torch.randint(1, 30, (4, 7)), torch.tensor([7, 3, 1, 5])
    assert torch.equal(trained(ids, lengths), rebuilt(ids, lengths))


def _adam_steps(model: SentenceRNN, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> SentenceRNN:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for ids, lengths, labels in batches:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(ids, lengths), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)  # clips: the norm covers every row
        optimizer.step()
    return model


@pytest.mark.parametrize("embedding_mode", ["non_static", "static"])
def test_training_on_a_compact_vocabulary_is_training_on_the_full_one(embedding_mode: str) -> None:
    """Dense Adam never moves a row without gradient: training only the rows the sentences use, then
    expanding, gives the network full-vocabulary training gives (words never seen keep their vectors)."""
    torch.manual_seed(0)
    vocab, dim = 200, 8
    pretrained = torch.randn(vocab, dim)
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(4):
        ids = torch.randint(2, 60, (16, 9), generator=g)  # words 60..199 never occur
        lengths = torch.randint(1, 10, (16,), generator=g)
        ids[torch.arange(9)[None, :] >= lengths[:, None]] = 0
        batches.append((ids, lengths, torch.randint(0, 2, (16,), generator=g)))
    options = {"hidden_size": 6, "dropout": 0.0, "embedding_mode": embedding_mode}
    full = SentenceRNN(vocab, dim, pretrained=pretrained, **options)
    rows, lookup = compact_vocabulary(torch.cat([b[0].flatten() for b in batches]), vocab)
    assert rows[0] == 0 and len(rows) <= 59 and torch.equal(lookup[rows], torch.arange(len(rows)))
    compact = SentenceRNN(len(rows), dim, pretrained=pretrained[rows], **options)
    compact.load_state_dict(full.state_dict() | {"embedding.weight": full.embedding.weight.detach()[rows]})

    _adam_steps(full, batches)
    _adam_steps(compact, [(lookup[ids], lengths, labels) for ids, lengths, labels in batches])
    expanded = expand_vocabulary(compact, rows, pretrained.clone().index_fill_(0, torch.tensor([0]), 0.0))

    assert expanded.embedding.weight.requires_grad == (embedding_mode != "static")
    for name, value in full.state_dict().items():
        torch.testing.assert_close(expanded.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)
    unseen = torch.arange(60, vocab)
    assert torch.equal(expanded.embedding.weight[unseen], pretrained[unseen])
    test_ids, test_lengths = torch.randint(1, vocab, (5, 7)), torch.tensor([7, 2, 5, 1, 3])  # unseen words too
    torch.testing.assert_close(expanded.eval()(test_ids, test_lengths), full.eval()(test_ids, test_lengths))


def test_compact_vocabulary_checks_its_inputs() -> None:
    model = SentenceRNN(5, 4, hidden_size=3, embedding_mode="rand")
    with pytest.raises(ValueError, match="padding id 0"):
        compact_vocabulary(torch.tensor([1, 2]), 10, padding_idx=1)
    with pytest.raises(ValueError, match="do not fit"):
        expand_vocabulary(model, torch.arange(4), torch.zeros(10, 4))
