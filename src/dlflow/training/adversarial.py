"""Adversarial training on word embeddings (Miyato, Dai & Goodfellow 2017), for models that ``embed`` and ``classify``.

Each training batch adds the loss of the same sentences with their word
vectors pushed a distance ``epsilon`` in the direction that raises the loss
most (the gradient's direction, one step): the classifier learns to hold
its answer under small changes of meaning of the words it reads. It costs a
second forward and backward pass per batch. Pass it to
``training.fit(..., training_loss=EmbeddingAdversarialLoss(epsilon))``.
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingAdversarialLoss(nn.Module):
    """``(model, (token_ids, lengths), targets) -> (logits, clean loss + adversarial loss)``.

    Call it with zeroed gradients: it back-propagates the clean loss itself
    (which gives the perturbation's direction too) and returns that part
    detached, so the caller's ``backward()`` adds the adversarial loss's
    gradients: two forward and two backward passes per batch in all.

    The perturbation is ``epsilon`` times the loss gradient with respect to
    each sentence's word vectors, scaled to unit L2 norm over the whole
    sentence; it is held constant (not differentiated through), as in the paper.
    ``epsilon`` 0 trains on the clean loss alone.
    """

    def __init__(self, epsilon: float, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = epsilon
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"

    def forward(
        self, model: nn.Module, features: tuple[torch.Tensor, ...], targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        embedded, lengths = model.embed(*features)
        if self.epsilon == 0:
            logits = model.classify(embedded, lengths)
            return logits, self.cross_entropy(logits, targets)
        if embedded.requires_grad:
            embedded.retain_grad()
        else:  # frozen (static) word vectors: the perturbation still needs the gradient at them
            embedded.requires_grad_()
        logits = model.classify(embedded, lengths)
        loss = self.cross_entropy(logits, targets)
        # One backward pass gives both the clean loss's parameter gradients and the perturbation's
        # direction; ``fit`` then back-propagates the adversarial loss (returned attached) on top.
        loss.backward()
        gradient = embedded.grad.detach()
        gradient = gradient / (gradient.abs().amax(dim=(1, 2), keepdim=True) + 1e-12)  # no underflow in the norm
        direction = gradient / (gradient.pow(2).sum(dim=(1, 2), keepdim=True).sqrt() + 1e-6)
        embedded_again, lengths = model.embed(*features)  # a fresh graph: the first one is spent
        adversarial = self.cross_entropy(model.classify(embedded_again + self.epsilon * direction, lengths), targets)
        return logits.detach(), loss.detach() + adversarial
