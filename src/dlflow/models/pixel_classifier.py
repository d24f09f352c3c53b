"""The servable form of an image classifier: raw pixels in, class probabilities out."""

from __future__ import annotations

import torch
from torch import nn


class PixelClassifier(nn.Module):
    """Wraps a trained network with its input normalisation and a softmax.

    Takes pixel values 0-255 shaped ``(N, 28, 28)`` (or ``(N, 784)``) and returns
    ``(N, num_classes)`` probabilities, so a registered model needs no
    preprocessing code on the caller's side. With ``flip_test_time`` the
    probabilities are averaged over each image and its mirror image, exactly as
    the pipeline evaluated it.
    """

    def __init__(
        self, network: nn.Module, mean: float, std: float, *, flip_test_time: bool = False, image_shape=(28, 28)
    ):
        super().__init__()
        self.network = network
        self.flip_test_time = flip_test_time
        self.image_shape = tuple(image_shape)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = pixels.float().reshape(-1, 1, *self.image_shape)
        images = (images / 255.0 - self.mean) / self.std
        probabilities = torch.softmax(self.network(images), dim=1)
        if self.flip_test_time:
            probabilities = (probabilities + torch.softmax(self.network(images.flip(-1)), dim=1)) / 2
        return probabilities
