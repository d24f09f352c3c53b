"""Convolutional image classifiers for 28x28 single-channel images (Fashion-MNIST).

Plain ``torch.nn`` modules: no Kedro, no MLflow. Every model takes a float
tensor of shape ``(N, in_channels, 28, 28)``, already normalised, and returns
logits of shape ``(N, num_classes)``.

Two families:

* ``ClassicCNN``: the Keras MNIST tutorial network, the baseline (~93k parameters).
* ``FastCNN``: the default. Conv-BatchNorm-ReLU stages with max-pooling between
  them and a global-pooling head, in bfloat16 where the hardware has it; width
  and depth are constructor arguments so that a benchmark can move along the
  speed/accuracy frontier.

The batch augmentations used with ``FastCNN`` (``random_hflip`` for training,
``hflip`` for test-time augmentation) live here too: they are image-specific,
so they belong to this family and not to the generic training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlflow.models.precision import bf16_autocast

__all__ = ["ARCHITECTURES", "ClassicCNN", "FastCNN", "build_cnn", "hflip", "random_hflip"]


class ClassicCNN(nn.Sequential):
    """The Keras MNIST tutorial CNN: three 3x3 convolutions, two max-pools, two dense layers."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 32, kernel_size=3), nn.ReLU(),  # 28 -> 26
            nn.MaxPool2d(2),  # 26 -> 13
            nn.Conv2d(32, 64, kernel_size=3), nn.ReLU(),  # 13 -> 11
            nn.MaxPool2d(2),  # 11 -> 5
            nn.Conv2d(64, 64, kernel_size=3), nn.ReLU(),  # 5 -> 3
            nn.Flatten(),  # 64 * 3 * 3 = 576
            nn.Linear(576, 64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )  # fmt: skip


class FastCNN(nn.Module):
    """Conv-BN-ReLU stages, each closed by a 2x2 max-pool, then global pooling and a linear head.

    With the default four stages the feature maps go 28 -> 14 -> 7 -> 3 -> 1
    pixels, and the widths are 16-64-128-256 (0.38 M parameters). Everything
    here is chosen by time per point of accuracy on a 2-core CPU in float32,
    where a step costs what its convolutions and its full-resolution memory
    traffic cost (``benchmarks/cnn_benchmark.py``; numbers in the README):

    * A narrow first stage (16 channels). At 28x28 the first stage's cost is
      memory traffic, not arithmetic: its max-pool and BatchNorm touch every
      pixel of every channel. 16 channels instead of 32 cut a float32 training
      step by a quarter (52 -> 39 ms at batch 256) at equal test accuracy.
    * ``pool_before_norm``: each stage's last convolution is max-pooled *before*
      its BatchNorm and ReLU, so those memory-bound layers, forward and
      backward, touch a quarter of the pixels.
    * An unpadded last stage (``pad_last_stage=False``): on the 3x3 map left by
      three pools, a padded 3x3 convolution computes nine positions of which
      the pooling keeps four, while an unpadded one computes the single
      position that sees the whole map: 9x fewer multiply-adds in the widest
      layer (2.65 M -> 0.29 M per image), same accuracy.
    * ``bf16``: the forward pass runs under bfloat16 autocast (convolutions and
      the linear layer in bf16, numerically sensitive ops in float32; the
      logits come back as float32). ``None`` turns it on where the hardware
      computes bf16 natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs that
      support it), where it cuts the time of a step by about a third;
      elsewhere it would be emulated and slow, so the model stays in float32.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input images.
        channels: output channels of each stage; its length is the number of stages.
        convs_per_stage: 3x3 convolutions in each stage, one int for all stages
            or one per stage.
        global_pool: ``"max"`` or ``"avg"`` pooling over the final feature map.
        dropout: dropout probability before the linear head.
        pool_before_norm: max-pool each stage's last convolution before its
            BatchNorm and ReLU (``False``: conv-BN-ReLU-pool).
        pad_last_stage: ``False``: the last stage's last convolution is
            unpadded and not pooled (its input must be at least 3x3: at most
            four stages for 28x28 images); ``True``: it is padded and pooled
            like the others.
        bf16: bfloat16 autocast: ``True``, ``False``, or ``None`` (where native).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 64, 128, 256),
        convs_per_stage: int | Sequence[int] = 1,
        global_pool: str = "max",
        dropout: float = 0.1,
        pool_before_norm: bool = True,
        pad_last_stage: bool = False,
        bf16: bool | None = None,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if isinstance(convs_per_stage, int):
            convs_per_stage = (convs_per_stage,) * len(channels)
        convs_per_stage = tuple(convs_per_stage)
        if not channels or len(convs_per_stage) != len(channels) or min(convs_per_stage) < 1:
            raise ValueError(
                f"channels and convs_per_stage must describe the same non-empty stages, "
                f"got channels={channels}, convs_per_stage={convs_per_stage}"
            )
        pools = {"max": nn.AdaptiveMaxPool2d(1), "avg": nn.AdaptiveAvgPool2d(1)}
        if global_pool not in pools:
            raise ValueError(f"global_pool must be one of {sorted(pools)}, got {global_pool!r}")

        layers: list[nn.Module] = []
        width = in_channels
        for stage, (out_channels, convs) in enumerate(zip(channels, convs_per_stage)):
            for i in range(convs):
                last = i == convs - 1
                unpadded = last and not pad_last_stage and stage == len(channels) - 1
                pool = last and not unpadded
                layers.append(nn.Conv2d(width, out_channels, kernel_size=3, padding=0 if unpadded else 1, bias=False))
                if pool and pool_before_norm:
                    layers.append(nn.MaxPool2d(2))
                layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
                if pool and not pool_before_norm:
                    layers.append(nn.MaxPool2d(2))
                width = out_channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(pools[global_pool], nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes))
        self.bf16 = bf16

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with bf16_autocast(images.device.type, self.bf16):
            logits = self.head(self.features(images))
        return logits.float()

    def extra_repr(self) -> str:
        return f"bf16={self.bf16}"  # part of the repr, hence of the checkpoint key


ARCHITECTURES: dict[str, type[nn.Module]] = {"classic": ClassicCNN, "fast": FastCNN}


def build_cnn(architecture: str, num_classes: int, **kwargs) -> nn.Module:
    """Build the CNN named ``architecture`` (``"classic"`` or ``"fast"``); kwargs go to its constructor."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown CNN architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](num_classes=num_classes, **kwargs)


def hflip(features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Mirror the images (first feature, ``(N, C, H, W)``) left to right; for test-time augmentation."""
    images, *rest = features
    return (images.flip(-1), *rest)


def random_hflip(features: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Mirror each image of the batch with probability 1/2, drawn from ``generator``.

    Signature of ``dlflow.training.fit``'s ``train_transform``.
    """
    images, *rest = features
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(images.device).view(-1, 1, 1, 1)
    return (torch.where(flip, images.flip(-1), images), *rest)
