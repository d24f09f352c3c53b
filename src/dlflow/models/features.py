"""The penultimate layer of a classifier: what its last linear layer reads, for monitoring.

Every network here ends in one ``nn.Linear`` that turns a feature vector into
class logits (the CNNs' head, the RNN's ``classifier``). ``logits_and_features``
runs the network once and keeps that layer's input as well, through a forward
pre-hook, so no network needs a second ``forward`` to expose its features.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def last_linear(network: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``network`` in registration order (its classifier); ``ValueError`` if none."""
    linear = [module for module in network.modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(network).__name__} has no nn.Linear layer to read features from")
    return linear[-1]


def logits_and_features(network: nn.Module, *inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``network(*inputs)`` and the float32 ``(N, D)`` input of its last linear layer, in one forward pass."""
    captured: list[torch.Tensor] = []
    handle = last_linear(network).register_forward_pre_hook(lambda _module, args: captured.append(args[0].detach()))
    try:
        logits = network(*inputs)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"the last linear layer of {type(network).__name__} ran {len(captured)} times in one forward pass")
    return logits, captured[0].float().reshape(len(logits), -1)
