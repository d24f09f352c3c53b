"""A folder of class folders becomes image tables: real PNG and JPEG files written by Pillow, odd modes,
mixed sizes and colours, bad files, both layouts, duplicates across splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlflow.sources.image_files import decode_image, load_image
from dlflow.sources.image_folder import (
    BadImageFilesError,
    ImageFolderError,
    find_duplicates,
    read_image_folder,
    scan_image_folder,
)
from dlflow.sources.image_table import table_images
from tests.sources.image_folders import bad_files, class_folders, colour_image, grey_image, save


def all_rows(splits):
    return [(split, table) for split, table in (("train", splits.train), ("val", splits.val), ("test", splits.test))]


def assert_pixels_are_the_decoders(root: Path, splits, size, channels, resize="stretch") -> None:
    """Every stored image equals what the one decoder (image_files.decode_image) makes of its file."""
    for _, table in all_rows(splits):
        images = table_images(table)
        for path, pixels in zip(table["path"], images):
            np.testing.assert_array_equal(pixels, decode_image(root / path, size, channels, resize), err_msg=path)


def test_class_folders_become_a_seeded_stratified_split(tmp_path):
    root = class_folders(tmp_path / "Pets", {"dog": 20, "cat": 10, "emu": 5})
    splits = read_image_folder(root, workers=1)
    assert splits.class_names == ["cat", "dog", "emu"]  # the folder names, sorted
    assert (len(splits.train), len(splits.val), len(splits.test)) == (28, 0, 7)
    counts = np.bincount(splits.test["label"], minlength=3).tolist()
    assert counts == [2, 4, 1]  # a fifth of each class
    assert splits.report["layout"] == "class folders" and splits.report["image_size"] == [16, 20]
    assert splits.report["channels"] == 3 and splits.report["channels_from"].startswith("data: RGB")
    assert set(splits.train["path"]) | set(splits.test["path"]) == {p for p in scan_image_folder(root).paths}
    assert {p.rsplit(".", 1)[1] for p in splits.train["path"]} == {"png", "jpg"}
    assert_pixels_are_the_decoders(root, splits, (16, 20), 3)
    again = read_image_folder(root, workers=1)
    assert again.test["path"].tolist() == splits.test["path"].tolist()  # seeded
    other = read_image_folder(root, workers=1, split_seed=7)
    assert other.test["path"].tolist() != splits.test["path"].tolist()


def test_a_process_pool_gives_the_same_tables(tmp_path):
    root = class_folders(tmp_path / "many", {"a": 60, "b": 60})  # 120 files: chunks of 8 over 2 processes
    one, two = read_image_folder(root, workers=1), read_image_folder(root, workers=2)
    for (_, a), (_, b) in zip(all_rows(one), all_rows(two)):
        assert a.equals(b)


def test_size_and_channels_default_to_the_data_and_parameters_override_them(tmp_path):
    root = tmp_path / "mixed"
    class_folders(root, {"a": 4, "b": 4}, size=(12, 10), grey=True)
    save(grey_image(1, (30, 40)), root / "a" / "big.png")  # another size: resized to the common one
    save(colour_image(2, (12, 10)), root / "b" / "colour.jpg")  # one colour image: RGB for all
    splits = read_image_folder(root, workers=1, test_fraction=0.3)
    assert splits.report["image_size"] == [12, 10] and splits.report["channels"] == 3
    assert splits.report["resized"] == 1 and splits.report["sizes_found"] == {"12x10": 9, "30x40": 1}
    assert splits.report["colour_images"] == 1
    assert_pixels_are_the_decoders(root, splits, (12, 10), 3)
    grey = read_image_folder(root, workers=1, test_fraction=0.3, channels=1, image_size=(8, 8), resize="crop")
    assert grey.report["channels_from"] == "parameters" and grey.report["image_size_from"] == "parameters"
    assert table_images(grey.train).shape[1:] == (8, 8, 1)
    assert_pixels_are_the_decoders(root, grey, (8, 8), 1, "crop")
    padded = read_image_folder(root, workers=1, test_fraction=0.3, image_size=(20, 20), resize="pad")
    assert_pixels_are_the_decoders(root, padded, (20, 20), 3, "pad")


def test_odd_modes_decode_and_a_grey_folder_stays_grey(tmp_path):
    root = tmp_path / "modes"
    rng = np.random.default_rng(3)
    for i in range(3):
        save(Image.fromarray(rng.integers(0, 65536, (9, 9), dtype=np.uint16)), root / "deep" / f"{i}.png")  # I;16
        save(Image.fromarray(rng.integers(0, 2, (9, 9), dtype=np.uint8) * 255).convert("1"), root / "bilevel" / f"{i}.bmp")
        palette = Image.fromarray(rng.integers(0, 4, (9, 9), dtype=np.uint8), mode="P")
        palette.putpalette([v for level in (0, 80, 160, 240) for v in (level,) * 3])  # a grey palette
        save(palette, root / "palette" / f"{i}.png")
        grey_rgba = Image.fromarray(
            np.stack([rng.integers(0, 256, (9, 9), dtype=np.uint8)] * 3 + [np.full((9, 9), 255, np.uint8)], -1)
        )
        save(grey_rgba, root / "rgba" / f"{i}.png")  # RGBA whose pixels are grey
        save(grey_image(i, (9, 9)).convert("RGB"), root / "scans" / f"{i}.jpg")  # grey saved as RGB JPEG
        save(grey_image(i, (9, 9)), root / "tiff" / f"{i}.tif")
    splits = read_image_folder(root, workers=1, test_fraction=0.34)
    assert splits.report["channels"] == 1 and splits.report["colour_images"] == 0  # no pixel is in colour
    assert splits.class_names == ["bilevel", "deep", "palette", "rgba", "scans", "tiff"]
    assert_pixels_are_the_decoders(root, splits, (9, 9), 1)
    deep = table_images(splits.train[splits.train["label"] == 1])
    assert deep.max() > 200  # 16-bit scaled by its range, not clipped to 255
    save(colour_image(5, (9, 9)).convert("RGBA"), root / "rgba" / "colour.png")
    colour = read_image_folder(root, workers=1, test_fraction=0.34)
    assert colour.report["channels"] == 3
    assert_pixels_are_the_decoders(root, colour, (9, 9), 3)


def test_load_image_is_inspect_and_decode_in_one(tmp_path):
    path = save(colour_image(1, (10, 14)), tmp_path / "a.png")
    pixels, info = load_image(path)
    assert pixels.shape == (10, 14, 3) and info.colour and (info.height, info.width) == (10, 14)
    np.testing.assert_array_equal(pixels, decode_image(path, (10, 14), 3))
    np.testing.assert_array_equal(load_image(path, (5, 5), 1, "crop")[0], decode_image(path, (5, 5), 1, "crop"))
    grey = save(grey_image(1), tmp_path / "g.png")
    assert load_image(grey)[0].shape == (16, 20, 1)


def test_bad_files_stop_the_run_listing_every_one(tmp_path):
    root = class_folders(tmp_path / "photos", {"a": 6, "b": 6})
    expected = bad_files(root / "b")
    with pytest.raises(BadImageFilesError) as caught:
        read_image_folder(root, workers=1)
    message = str(caught.value)
    assert f"5 file(s) in {root.resolve()} are not whole images" in message
    for name, reason in expected.items():
        assert f"  b/{name}: {reason}" in message, (name, message)
    assert "images.on_bad_file=skip" in message
    assert [bad.path for bad in caught.value.bad_files] == sorted(f"b/{name}" for name in expected)


def test_bad_files_can_be_skipped_counted_and_listed(tmp_path):
    root = class_folders(tmp_path / "photos", {"a": 6, "b": 6})
    expected = bad_files(root / "b")
    splits = read_image_folder(root, workers=2, on_bad_file="skip")
    assert splits.report["skipped"] == 5 and splits.report["images"] == 12
    assert {bad["path"] for bad in splits.report["bad_files"]} == {f"b/{name}" for name in expected}
    assert all(bad["reason"] for bad in splits.report["bad_files"])
    assert splits.report["ignored_files"] == 1 and splits.report["ignored_examples"] == ["b/animated.gif"]
    assert len(splits.train) + len(splits.test) == 12
    (root / "a").rename(tmp_path / "elsewhere")
    shutil.rmtree(root / "b")
    (root / "c").mkdir()
    (root / "c" / "1.png").write_text("text")
    (root / "d").mkdir()
    (root / "d" / "broken.png").write_bytes(b"")
    with pytest.raises(ImageFolderError, match="none of the 2 image files"):
        read_image_folder(root, workers=1, on_bad_file="skip")


def test_train_val_test_folders_are_the_splits_and_leakage_is_found(tmp_path):
    root = tmp_path / "split"
    class_folders(root / "train", {"cat": 6, "dog": 6})
    class_folders(root / "test", {"cat": 2, "dog": 2}, seed=50)
    class_folders(root / "val", {"cat": 2, "dog": 2}, seed=70)
    shutil.copy(root / "train" / "cat" / "001.png", root / "test" / "cat" / "copy.png")  # leaked into test
    shutil.copy(root / "train" / "dog" / "002.jpg", root / "val" / "cat" / "relabelled.jpg")  # leaked, another label
    splits = read_image_folder(root, workers=1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 5, 5)
    assert splits.report["layout"] == "split folders" and splits.report["split_folders"] == ["train", "val", "test"]
    assert splits.test["path"].str.startswith("test/").all() and splits.val["path"].str.startswith("val/").all()
    leakage = find_duplicates({"train": splits.train, "val": splits.val, "test": splits.test})
    assert leakage["checked"] and leakage["leaked_images"] == 2
    assert leakage["leaked_by_splits"] == {"train-test": 1, "train-val": 1}
    assert {"train": ["train/cat/001.png"], "test": ["test/cat/copy.png"]} in [item["files"] for item in leakage["leaked"]]
    assert leakage["conflicting_labels"] == 1
    assert leakage["conflicting"][0]["files"] == {"train/dog/002.jpg": 1, "val/cat/relabelled.jpg": 0}


def test_without_a_test_folder_the_test_split_comes_from_train_and_duplicates_stay_together(tmp_path):
    root = tmp_path / "trainonly"
    class_folders(root / "train", {"a": 10, "b": 10})
    for i in range(4):  # the same content four times: all on one side of the split
        shutil.copy(root / "train" / "a" / "001.png", root / "train" / "a" / f"dup{i}.png")
    splits = read_image_folder(root, workers=1, test_fraction=0.5)
    assert splits.report["test_split"].startswith("seeded, stratified")
    assert find_duplicates({"train": splits.train, "val": splits.val, "test": splits.test})["leaked_images"] == 0
    for table in (splits.train, splits.test):
        assert table["path"].str.startswith("train/").all()


def test_layout_mistakes_are_explained(tmp_path):
    with pytest.raises(ImageFolderError, match="is not a folder"):
        read_image_folder(tmp_path / "missing")
    loose = class_folders(tmp_path / "loose", {"a": 2, "b": 2})
    save(colour_image(1), loose / "stray.png")
    with pytest.raises(ImageFolderError, match=r"1 image\(s\) lie directly in .*stray\.png.*outside a class folder"):
        scan_image_folder(loose)
    mixed = class_folders(tmp_path / "mixed", {"train/a": 2, "train/b": 2, "c": 2})
    with pytest.raises(ImageFolderError, match=r"split folders \(train/\) and also c/"):
        scan_image_folder(mixed)
    single = class_folders(tmp_path / "single", {"only": 3})
    with pytest.raises(ImageFolderError, match=r"two or more class folders; .* has one \(only\)"):
        scan_image_folder(single)
    empty = class_folders(tmp_path / "empty", {"a": 2, "b": 2})
    (empty / "c").mkdir()
    (empty / "c" / "readme.txt").write_text("x")
    with pytest.raises(ImageFolderError, match=r"class folder\(s\) c .* hold no image files"):
        scan_image_folder(empty)
    no_train = class_folders(tmp_path / "notrain", {"test/a": 2, "test/b": 2})
    with pytest.raises(ImageFolderError, match="no train/ folder"):
        scan_image_folder(no_train)
    tiny = class_folders(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(ImageFolderError, match="too few to hold out test_fraction=0.2"):
        read_image_folder(tiny, workers=1)


def test_nested_and_hidden_files(tmp_path):
    root = class_folders(tmp_path / "nested", {"a": 3, "b": 3})
    save(colour_image(8), root / "a" / "deeper" / "x.png")  # a subfolder belongs to its class
    save(colour_image(9), root / "a" / ".hidden.png")  # hidden: not an image of the set
    save(colour_image(9), root / ".ipynb_checkpoints" / "y.png")
    scan = scan_image_folder(root)
    assert scan.class_names == ("a", "b") and "a/deeper/x.png" in scan.paths and len(scan.paths) == 7
