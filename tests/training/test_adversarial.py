"""Adversarial training on word embeddings: the perturbation raises the loss, fit trains with it, runs are keyed by it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlflow.models.rnn import SentenceRNN
from dlflow.training import TrainConfig, config_key, fit
from dlflow.training.adversarial import EmbeddingAdversarialLoss
from tests.models.test_rnn import ONE_THREAD, one_thread, toy_task  # noqa: F401 - one_thread: a fixture, autouse here too


def _model(seed: int = 0) -> SentenceRNN:
    torch.manual_seed(seed)
    return SentenceRNN(20, 8, hidden_size=6, dropout=0.0, embedding_mode="rand")


def test_epsilon_zero_is_plain_cross_entropy() -> None:
    model, data = _model(), toy_task(n=32)
    logits, loss = EmbeddingAdversarialLoss(0.0)(model, data.features, data.targets)
    torch.testing.assert_close(logits, model(*data.features))
    torch.testing.assert_close(loss, nn.functional.cross_entropy(logits, data.targets))


def test_the_perturbation_is_the_one_that_raises_the_loss() -> None:
    """The added term is the loss at the perturbed vectors: above the clean loss, and by more than a random
    push of the same size would add (a sign error or a wrong norm fails here)."""
    model, data = _model(), toy_task(n=64)
    clean = nn.functional.cross_entropy(model(*data.features), data.targets)
    _, total = EmbeddingAdversarialLoss(0.5)(model, data.features, data.targets)
    adversarial = total - clean
    embedded, lengths = model.embed(*data.features)
    noise = torch.randn(embedded.shape, generator=torch.Generator().manual_seed(0))
    noise = 0.5 * noise / noise.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    random_push = nn.functional.cross_entropy(model.classify(embedded + noise, lengths), data.targets)
    assert adversarial > random_push > clean * 0.99
    total.backward()
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("embedding_mode", ["rand", "static"])
def test_its_gradients_are_those_of_clean_plus_adversarial_loss(embedding_mode: str) -> None:
    """It back-propagates the clean loss itself and hands back the adversarial part: together, the gradient
    of clean + adversarial loss with the perturbation held constant, written out here the plain way."""
    data = toy_task(n=48)
    torch.manual_seed(0)
    model = SentenceRNN(20, 8, hidden_size=6, dropout=0.0, embedding_mode=embedding_mode, pretrained=torch.randn(20, 8))
    reference = SentenceRNN(**(model.architecture() | {"embedding_mode": embedding_mode}), pretrained=torch.randn(20, 8))
    reference.load_state_dict(model.state_dict())

    _, loss = EmbeddingAdversarialLoss(0.7)(model, data.features, data.targets)
    loss.backward()

    embedded, lengths = reference.embed(*data.features)
    embedded = embedded if embedded.requires_grad else embedded.detach().requires_grad_()
    clean = nn.functional.cross_entropy(reference.classify(embedded, lengths), data.targets)
    (gradient,) = torch.autograd.grad(clean, embedded, retain_graph=True)
    gradient = gradient / gradient.abs().amax(dim=(1, 2), keepdim=True)
    push = 0.7 * gradient / gradient.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    expected = clean + nn.functional.cross_entropy(reference.classify(embedded + push, lengths), data.targets)
    expected.backward()

    torch.testing.assert_close(loss, expected.detach())
    for (name, parameter), (_, wanted) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert (parameter.grad is None) == (wanted.grad is None), name
        if wanted.grad is not None:
            torch.testing.assert_close(parameter.grad, wanted.grad, msg=name)


def test_fit_trains_with_it_and_keys_its_checkpoints_by_epsilon(tmp_path) -> None:
    train, val = toy_task(n=256, seed=1), toy_task(n=64, seed=2)
    config = TrainConfig(epochs=5, batch_size=32, lr=0.02, optimizer="adam", progress=False, **ONE_THREAD)
    result = fit(_model(), train, val, config, training_loss=EmbeddingAdversarialLoss(0.3))
    assert result.history[-1].val_accuracy > 0.9  # the toy task is learnt under the perturbation too
    keys = {
        config_key(config, _model(), train, val, training_loss=loss)
        for loss in (None, EmbeddingAdversarialLoss(0.3), EmbeddingAdversarialLoss(1.0))
    }
    assert len(keys) == 3
    with pytest.raises(ValueError, match="one process"):
        fit(_model(), train, val, config.model_copy(update={"processes": 2}), training_loss=EmbeddingAdversarialLoss(1.0))
    with pytest.raises(ValueError, match="epsilon"):
        EmbeddingAdversarialLoss(-1.0)
