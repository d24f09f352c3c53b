"""The penultimate features of every network: the input of its last linear layer, from the same forward pass."""

from __future__ import annotations

import torch

from dlflow.models import build_cnn
from dlflow.models.features import last_linear, logits_and_features
from dlflow.models.rnn import SentenceRNN


def test_cnn_features_are_what_the_head_reads() -> None:
    torch.manual_seed(0)
    for architecture in ("classic", "fast"):
        network = build_cnn(architecture, 10, image_size=28).eval()
        images = torch.randn(3, 1, 28, 28)
        logits, features = logits_and_features(network, images)
        torch.testing.assert_close(logits, network(images))
        torch.testing.assert_close(last_linear(network)(features), logits)
        assert features.shape == (3, last_linear(network).in_features) and features.dtype == torch.float32


def test_rnn_features_are_the_sentence_vector_the_classifier_reads() -> None:
    torch.manual_seed(0)
    network = SentenceRNN(30, 8, hidden_size=6, pooling="max_mean", embedding_mode="rand").eval()
    ids, lengths = torch.randint(1, 30, (4, 7)), torch.tensor([7, 3, 1, 5])
    logits, features = logits_and_features(network, ids, lengths)
    torch.testing.assert_close(network.classifier(features), logits)
    assert features.shape == (4, network.classifier.in_features)
