"""The CNN family: shapes, sizes, the factory, and the flip augmentations."""

import numpy as np
import pytest
import torch
from torch import nn

from dlflow.models import ClassicCNN, FastCNN, build_cnn, hflip, random_hflip
from dlflow.models.precision import _onednn_isa_allows_bf16
from dlflow.sources.idx import read_idx
from dlflow.training import TensorDataset, TrainConfig, fit, predict


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_classic_cnn_has_the_keras_tutorial_size():
    assert n_parameters(ClassicCNN()) == 93_322


@pytest.mark.parametrize("architecture", ["classic", "fast"])
def test_models_map_images_to_one_logit_per_class(architecture):
    model = build_cnn(architecture, num_classes=10)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)


def test_fast_cnn_width_and_depth_are_configurable():
    small = FastCNN(channels=(8, 16), convs_per_stage=(1, 2), global_pool="avg", dropout=0.0)
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert n_parameters(small) < n_parameters(FastCNN())
    wide = build_cnn("fast", num_classes=3, channels=(32, 64, 128))
    assert wide(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_fast_cnn_rejects_inconsistent_stages():
    with pytest.raises(ValueError, match="convs_per_stage"):
        FastCNN(channels=(8, 16), convs_per_stage=(1, 1, 1))
    with pytest.raises(ValueError, match="global_pool"):
        FastCNN(global_pool="median")


def test_build_cnn_names_the_choices_for_an_unknown_architecture():
    with pytest.raises(ValueError, match=r"'resnet'.*\['classic', 'fast'\]"):
        build_cnn("resnet", num_classes=10)


def test_hflip_mirrors_the_images_and_keeps_other_features():
    images, lengths = torch.arange(8.0).view(1, 1, 2, 4), torch.tensor([3])
    flipped, same = hflip((images, lengths))
    assert torch.equal(flipped[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert same is lengths


def test_random_hflip_is_reproducible_and_flips_about_half():
    images = torch.randn(400, 1, 28, 28)
    (a,) = random_hflip((images,), torch.Generator().manual_seed(0))
    (b,) = random_hflip((images,), torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    flipped = [torch.equal(x, y.flip(-1)) for x, y in zip(a, images)]
    unchanged = [torch.equal(x, y) for x, y in zip(a, images)]
    assert all(f != u for f, u in zip(flipped, unchanged))
    assert 150 < sum(flipped) < 250


def test_fast_cnn_pools_before_batchnorm_and_keeps_float32_logits_under_bf16():
    model = FastCNN(channels=(8, 16), bf16=True).eval()
    layers = list(model.features)
    first_pool = next(i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d))
    assert isinstance(layers[first_pool - 1], nn.Conv2d) and isinstance(layers[first_pool + 1], nn.BatchNorm2d)
    logits = model(torch.randn(3, 1, 28, 28))
    assert logits.dtype == torch.float32 and logits.shape == (3, 10)
    assert "bf16=True" in repr(model) and "bf16=False" in repr(FastCNN(bf16=False))


def _layer_output_dtypes(model: nn.Module, images: torch.Tensor) -> set[torch.dtype]:
    dtypes: set[torch.dtype] = set()
    hooks = [
        layer.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
        for layer in model.modules()
        if isinstance(layer, (nn.Conv2d, nn.Linear))
    ]
    with torch.inference_mode():
        model(images)
    for hook in hooks:
        hook.remove()
    return dtypes


def test_the_float32_path_computes_every_layer_in_float32():
    images = torch.randn(4, 1, 28, 28)
    assert _layer_output_dtypes(FastCNN(bf16=False).eval(), images) == {torch.float32}
    assert _layer_output_dtypes(FastCNN(bf16=True).eval(), images) == {torch.bfloat16}


def test_bf16_is_not_native_where_onednn_is_capped_below_it(monkeypatch):
    for cap, allowed in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True), ("", True)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert _onednn_isa_allows_bf16() is allowed, cap


def test_the_last_stage_is_unpadded_and_sees_the_whole_map():
    model = FastCNN()
    convs = [layer for layer in model.features if isinstance(layer, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [16, 64, 128, 256]
    assert [conv.padding for conv in convs] == [(1, 1)] * 3 + [(0, 0)]
    maps = model.features(torch.randn(2, 1, 28, 28))
    assert maps.shape == (2, 256, 1, 1)  # 28 -> 14 -> 7 -> 3 -> 1
    padded = FastCNN(pad_last_stage=True)
    assert padded.features(torch.randn(2, 1, 28, 28)).shape == (2, 256, 1, 1)  # 3 -> pooled to 1
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in padded.parameters())


def test_the_float32_path_learns_fashion_mnist(data_mirror):
    """Correctness of the float32 path, not its speed: a short run on real images learns."""
    images = read_idx(data_mirror / "fashion-mnist" / "train-images-idx3-ubyte.gz")[:3000]
    labels = read_idx(data_mirror / "fashion-mnist" / "train-labels-idx1-ubyte.gz")[:3000]
    x = torch.from_numpy(((images.astype(np.float32) / 255.0 - 0.286) / 0.353)[:, None])
    y = torch.from_numpy(labels.astype(np.int64))
    train, val = TensorDataset((x[:2500],), y[:2500]), TensorDataset((x[2500:],), y[2500:])
    torch.manual_seed(0)
    config = TrainConfig(epochs=2, batch_size=128, optimizer="adamw", lr=0.006, schedule="onecycle", progress=False)
    model = fit(FastCNN(bf16=False), train, val, config).model
    accuracy = (predict(model, val.features, device="cpu").argmax(dim=1) == val.targets).float().mean().item()
    assert accuracy > 0.7, accuracy
    assert _layer_output_dtypes(model, val.features[0][:8]) == {torch.float32}


@pytest.mark.parametrize("architecture", ["classic", "fast"])
@pytest.mark.parametrize(
    ("channels", "size"), [(1, (8, 8)), (3, (32, 32)), (3, (48, 48)), (3, (17, 40)), (1, (4, 4)), (3, (64, 96))]
)
def test_both_architectures_take_any_size_and_channels(architecture, channels, size):
    model = build_cnn(architecture, num_classes=4, in_channels=channels, image_size=size).eval()
    assert model(torch.randn(2, channels, *size)).shape == (2, 4)
    # parameter-free layers adapt; the weights keep their names, so a description rebuilds them
    assert list(model.state_dict()) == list(build_cnn(architecture, num_classes=4, in_channels=channels).state_dict())


@pytest.mark.parametrize(("architecture", "options"), [("classic", {}), ("fast", {}), ("fast", {"pad_last_stage": True})])
def test_the_28x28_grey_networks_are_unchanged_by_the_image_size(architecture, options):
    torch.manual_seed(0)
    default = build_cnn(architecture, num_classes=10, **options)
    torch.manual_seed(0)
    explicit = build_cnn(architecture, num_classes=10, in_channels=1, image_size=(28, 28), **options)
    assert repr(default) == repr(explicit)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))
    assert not any(isinstance(layer, nn.Identity) for layer in default.modules())  # every pool runs at 28x28
    assert n_parameters(build_cnn("classic", num_classes=10, image_size=28)) == 93_322


def test_fast_cnn_leaves_out_the_pools_a_small_image_cannot_take():
    def sides(model, size):
        maps, shown = torch.randn(1, 1, size, size), []
        for layer in model.features:
            maps = layer(maps)
            if isinstance(layer, (nn.MaxPool2d, nn.Identity)):
                shown.append(maps.shape[-1])
        return shown + [model.features(torch.randn(1, 1, size, size)).shape[-1]]

    assert sides(FastCNN().eval(), 28) == [14, 7, 3, 1]
    assert sides(FastCNN(image_size=8).eval(), 8) == [4, 4, 4, 2]  # the unpadded last stage needs 3x3
    assert sides(FastCNN(image_size=32).eval(), 32) == [16, 8, 4, 2]
    assert sides(FastCNN(image_size=8, pad_last_stage=True).eval(), 8) == [4, 2, 1, 1, 1]


def test_images_too_small_for_the_network_are_refused_with_the_minimum():
    with pytest.raises(ValueError, match="at least 3 pixels"):
        FastCNN(image_size=2)
    with pytest.raises(ValueError, match="at least 4 pixels"):
        ClassicCNN(image_size=(3, 30))


def test_flips_mirror_colour_images_channel_by_channel():
    images = torch.arange(24.0).view(1, 3, 2, 4)
    (flipped,) = hflip((images,))
    assert torch.equal(flipped[0, 2, 1], torch.tensor([23.0, 22.0, 21.0, 20.0]))
