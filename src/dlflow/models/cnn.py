"""Convolutional image classifiers for images of any size and channels (28x28 grey: Fashion-MNIST).

Plain ``torch.nn`` modules: no Kedro, no MLflow. Every model takes a float
tensor of shape ``(N, in_channels, height, width)``, already normalised, with
the ``image_size = (height, width)`` it was built for, and returns logits of
shape ``(N, num_classes)``. At 28x28x1 both networks are exactly the ones
they always were (same layers, parameters and initialisation order); other
sizes change only parameter-free layers (which max-pools run, an adaptive
pool before a fixed-size flatten), so the weights' names stay the same.

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
    """The Keras MNIST tutorial CNN: three 3x3 convolutions, two max-pools, two dense layers.

    The dense layers take the last convolution's 64 maps at 3x3 (576 values), which is
    what a 28x28 image leaves. Images of another size get an adaptive average pool to
    3x3 before the flatten; images smaller than 18 pixels, which three unpadded
    convolutions and two pools would shrink to nothing, get padded convolutions
    (at least 4x4).
    """

    MIN_UNPADDED = 18  # ((18 - 2) // 2 - 2) // 2 - 2 = 1: the smallest side three unpadded convolutions keep

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int | Sequence[int] = 28) -> None:
        height, width = _image_size(image_size, minimum=4)
        padding = 0 if min(height, width) >= self.MIN_UNPADDED else 1
        last = [_classic_side(side, padding) for side in (height, width)]
        flatten = nn.Flatten() if last == [3, 3] else _PoolFlatten(3)
        super().__init__(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=padding), nn.ReLU(),  # 28 -> 26
            nn.MaxPool2d(2),  # 26 -> 13
            nn.Conv2d(32, 64, kernel_size=3, padding=padding), nn.ReLU(),  # 13 -> 11
            nn.MaxPool2d(2),  # 11 -> 5
            nn.Conv2d(64, 64, kernel_size=3, padding=padding), nn.ReLU(),  # 5 -> 3
            flatten,  # 64 * 3 * 3 = 576
            nn.Linear(576, 64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )  # fmt: skip


def _classic_side(side: int, padding: int) -> int:
    """What ``ClassicCNN``'s convolutions and pools leave of one side of the image."""
    shrink = 2 - 2 * padding
    return ((side - shrink) // 2 - shrink) // 2 - shrink


class _PoolFlatten(nn.Module):
    """Adaptive average pool to ``size`` x ``size``, then flatten: a fixed-size flatten for any map size."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(size)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.pool(maps).flatten(1)


def _image_size(image_size: int | Sequence[int], minimum: int) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair; ``ValueError`` below ``minimum`` pixels a side."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(side) for side in image_size)
    if len(size) != 2 or min(size) < minimum:
        raise ValueError(f"image_size must be (height, width), each at least {minimum} pixels, got {image_size!r}")
    return size


class FastCNN(nn.Module):
    """Conv-BN-ReLU stages, each closed by a 2x2 max-pool, then global pooling and a linear head.

    With the default four stages the feature maps of a 28x28 image go
    28 -> 14 -> 7 -> 3 -> 1 pixels, and the widths are 16-64-128-256 (0.38 M
    parameters). The global pool makes the head independent of the image size;
    a stage's pool is left out (an ``nn.Identity`` in its place, so the weights
    keep their names) where it would shrink the map below what the remaining
    stages need: 3 pixels before an unpadded last stage, else 1. A 32x32 image
    goes 32 -> 16 -> 8 -> 4 -> 2, an 8x8 one 8 -> 4 -> 4 -> 4 -> 2. Everything
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
        image_size: ``(height, width)`` of the input images (an int: square); at least 3 pixels
            a side, or 1 with ``pad_last_stage``.
        channels: output channels of each stage; its length is the number of stages.
        convs_per_stage: 3x3 convolutions in each stage, one int for all stages
            or one per stage.
        global_pool: ``"max"`` or ``"avg"`` pooling over the final feature map.
        dropout: dropout probability before the linear head.
        pool_before_norm: max-pool each stage's last convolution before its
            BatchNorm and ReLU (``False``: conv-BN-ReLU-pool).
        pad_last_stage: ``False``: the last stage's last convolution is
            unpadded and not pooled (its input must be at least 3x3, so fewer
            pools run on small images); ``True``: it is padded and pooled like
            the others.
        bf16: bfloat16 autocast: ``True``, ``False``, or ``None`` (where native).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
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

        smallest = 1 if pad_last_stage else 3  # what a pool must leave: the unpadded last convolution needs 3x3
        side = min(_image_size(image_size, minimum=smallest))
        layers: list[nn.Module] = []
        width = in_channels
        for stage, (out_channels, convs) in enumerate(zip(channels, convs_per_stage)):
            for i in range(convs):
                last = i == convs - 1
                unpadded = last and not pad_last_stage and stage == len(channels) - 1
                pool = last and not unpadded
                layers.append(nn.Conv2d(width, out_channels, kernel_size=3, padding=0 if unpadded else 1, bias=False))
                if pool:
                    shrink = side // 2 >= smallest
                    side = side // 2 if shrink else side
                    pooling = nn.MaxPool2d(2) if shrink else nn.Identity()
                if pool and pool_before_norm:
                    layers.append(pooling)
                layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
                if pool and not pool_before_norm:
                    layers.append(pooling)
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


def build_cnn(
    architecture: str,
    num_classes: int,
    *,
    in_channels: int = 1,
    image_size: int | Sequence[int] = 28,
    **options,
) -> nn.Module:
    """Build the CNN named ``architecture`` (``"classic"`` or ``"fast"``) for ``in_channels`` x
    ``image_size`` images (``(height, width)``); ``options`` go to its constructor."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown CNN architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options)


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
