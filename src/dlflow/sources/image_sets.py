"""Registry of the image data sets: where each file is published and its checksums.

Fashion-MNIST's files verify either by upstream's MD5 of the ``.gz`` (what a
download gives) or by the sha256 of the decompressed IDX bytes (what the
offline mirror, recompressed by Debian, gives).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlflow.sources.download import Checksum, RemoteFile, registered

_FILENAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FILE_KEYS = tuple(_FILENAMES)


@dataclass(frozen=True)
class ImageSource:
    """An image classification data set published as four IDX files."""

    name: str
    class_names: tuple[str, ...]
    files: dict[str, RemoteFile]  # keys: FILE_KEYS


def _image_source(
    name: str,
    class_names: tuple[str, ...],
    *,
    url_prefixes: tuple[str, ...],
    mirror_folder: str,
    checksums: dict[str, tuple[Checksum, ...]],
) -> ImageSource:
    files = {
        key: RemoteFile(
            name=f"{name} {key.replace('_', ' ')}",
            filename=filename,
            urls=tuple(prefix + filename for prefix in url_prefixes),
            checksums=checksums[key],
            mirror_relpath=f"{mirror_folder}/{filename}",
        )
        for key, filename in _FILENAMES.items()
    }
    return ImageSource(name=name, class_names=class_names, files=files)


def _md5_and_idx_sha256(md5: str, idx_sha256: str) -> tuple[Checksum, ...]:
    return (Checksum("md5", md5), Checksum("sha256", idx_sha256, of="gunzipped"))


IMAGE_SOURCES: dict[str, ImageSource] = {
    "fashion_mnist": _image_source(
        "Fashion-MNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        url_prefixes=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        mirror_folder="fashion-mnist",
        checksums={
            "train_images": _md5_and_idx_sha256(
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            "train_labels": _md5_and_idx_sha256(
                "25c81989df183df01b3e8a0aad5dffbe",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            "test_images": _md5_and_idx_sha256(
                "bef4ecab320f06d8554ea6380940ec79",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            "test_labels": _md5_and_idx_sha256(
                "bb300cfdad3c16e7a12a480ee83cd310",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        },
    ),
    "mnist": _image_source(
        "MNIST",
        tuple(str(digit) for digit in range(10)),
        url_prefixes=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        mirror_folder="mnist",
        checksums={
            "train_images": (Checksum("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),),
            "train_labels": (Checksum("md5", "d53e105ee54ea40749a09fcbcd1e9432"),),
            "test_images": (Checksum("md5", "9fb629c4189551a2d022fa330f9573f3"),),
            "test_labels": (Checksum("md5", "ec29112dd5afa0611ce80d1b7f02629c"),),
        },
    ),
}


def get_image_source(name: str) -> ImageSource:
    """The registered source called ``name``; ValueError lists the known names."""
    return registered(IMAGE_SOURCES, name, "image source", "sources")
