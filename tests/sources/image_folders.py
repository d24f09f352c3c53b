"""Real folders of real image files for the ingestion tests, written by Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def colour_image(seed: int, size: tuple[int, int] = (16, 20)) -> Image.Image:
    """A smooth RGB image (``size`` = height, width) that JPEG keeps recognisable; distinct per seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BILINEAR)


def grey_image(seed: int, size: tuple[int, int] = (16, 20)) -> Image.Image:
    return colour_image(seed, size).convert("L")


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def class_folders(root: Path, counts: dict[str, int], *, size=(16, 20), seed: int = 0, grey: bool = False) -> Path:
    """``root/<class>/<i>.png|jpg``: ``counts[class]`` images each, PNG and JPEG alternating."""
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            image = (grey_image if grey else colour_image)(seed + 1000 * k + i, size)
            save(image, root / name / (f"{i:03d}.png" if i % 2 else f"{i:03d}.jpg"))
    return root


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def bad_files(folder: Path) -> dict[str, str]:
    """Write one file of each bad kind into ``folder``; their names and the start of the reason expected."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = png_bytes(colour_image(99, (32, 32)))
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "corrupt.png").write_bytes(whole[:60] + bytes(range(200)) + whole[260:])  # a whole header, broken data
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image at all\n")
    save(colour_image(98), folder / "animated.gif", format="GIF")  # not an image extension: ignored
    buffer = io.BytesIO()
    colour_image(97).save(buffer, format="GIF")
    (folder / "gif_in_disguise.png").write_bytes(buffer.getvalue())  # a real image, of another format
    return {
        "truncated.png": "corrupt or truncated",
        "corrupt.png": "corrupt or truncated",
        "empty.jpg": "empty",
        "notes.jpg": "not an image",
        "gif_in_disguise.png": "a GIF image",
    }
