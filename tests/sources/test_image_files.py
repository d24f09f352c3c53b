"""The one image decoder: real files written by Pillow in every supported format and mode, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlflow.sources.image_files import (
    ImageDecodeError,
    ImageInfo,
    decode_image,
    inspect_image,
    list_image_files,
    most_common_size,
)

RNG = np.random.default_rng(0)


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_every_format_decodes_to_the_size_and_channels_asked_for(tmp_path, suffix):
    pixels = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path / f"a{suffix}")
    assert inspect_image(path) == ImageInfo(width=30, height=20, mode="RGB", colour=True)
    assert decode_image(path, (16, 12), 3).shape == (16, 12, 3)
    assert decode_image(path, (8, 8), 1).shape == (8, 8, 1)
    if suffix in (".png", ".bmp", ".tif"):  # lossless: the same pixels back at the same size
        np.testing.assert_array_equal(decode_image(path, (20, 30), 3), pixels)


def test_odd_modes_become_8_bit_grey_or_rgb(tmp_path):
    sixteen = _save(Image.fromarray(np.full((4, 4), 65535, np.uint16)), tmp_path / "deep.png")
    assert decode_image(sixteen, (4, 4), 1).max() == 255  # scaled by the 16-bit range, not clipped
    palette = Image.new("P", (4, 4))
    palette.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    palette_path = _save(palette, tmp_path / "palette.png")
    assert inspect_image(palette_path).colour
    np.testing.assert_array_equal(decode_image(palette_path, (4, 4), 3)[0, 0], [255, 0, 0])
    clear = _save(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), tmp_path / "clear.png")
    np.testing.assert_array_equal(decode_image(clear, (4, 4), 3), 255)  # transparent: over white
    bilevel = _save(Image.new("1", (4, 4), 1), tmp_path / "bilevel.bmp")
    np.testing.assert_array_equal(decode_image(bilevel, (4, 4), 1), 255)
    grey_rgb = _save(Image.new("RGB", (4, 4), (90, 90, 90)), tmp_path / "scan.jpg")
    assert not inspect_image(grey_rgb).colour  # judged by the pixels, not the mode


def test_resize_policies_keep_or_fill_the_frame(tmp_path):
    wide = _save(Image.new("L", (40, 10), 200), tmp_path / "wide.png")
    padded = decode_image(wide, (20, 20), 1, "pad")[..., 0]
    assert padded[0, 10] == 0 and padded[10, 10] == 200  # letter-boxed on black, nothing cut
    assert (decode_image(wide, (20, 20), 1, "crop") == 200).all()  # filled, the sides cut
    assert (decode_image(wide, (20, 20), 1, "stretch") == 200).all()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.png", b"", "empty"),
        ("notes.png", b"not an image at all", "not an image"),
        ("document.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "not an image"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=reason) as error:
        decode_image(path, (8, 8), 1)
    assert error.value.path == str(path) and str(path) in str(error.value)


def test_a_truncated_file_is_refused(tmp_path):
    whole = _save(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "whole.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        inspect_image(cut)
    with pytest.raises(ImageDecodeError, match="<upload>"):
        decode_image(cut.read_bytes(), (8, 8), 3, name="<upload>")


def test_listing_and_the_most_common_size(tmp_path):
    (tmp_path / "cats").mkdir()
    for name in ("b.PNG", "a.jpeg", ".hidden.png", "notes.txt"):
        (tmp_path / "cats" / name).write_bytes(b"x")
    assert [p.name for p in list_image_files(tmp_path)] == ["a.jpeg", "b.PNG"]
    infos = [ImageInfo(8, 4, "L", False)] * 2 + [ImageInfo(16, 16, "L", False)] * 2 + [ImageInfo(2, 2, "L", False)]
    assert most_common_size(infos) == (16, 16)  # a tie: the larger area


def test_a_data_set_is_named_after_its_source_or_its_path():
    from dlflow.sources.naming import dataset_name

    assert dataset_name("fashion_mnist") == "fashion_mnist"
    assert dataset_name("folder", "/data/Product Photos/") == "product-photos"
    assert dataset_name("table", "exports/Support_Tickets.2026.csv") == "support-tickets-2026"
    with pytest.raises(ValueError, match="images_dir"):
        dataset_name("folder", None)
