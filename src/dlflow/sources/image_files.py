"""Image files as the CNN reads them: one decoder for ingestion, batch inference and serving.

``decode_image`` turns a PNG, JPEG, BMP, WebP or TIFF file (or its bytes) of any
size and mode into a ``(height, width, channels)`` uint8 array of the size and
channels asked for:

* modes: 1 (bilevel), L, LA, P (palette, transparency included), RGB, RGBA,
  CMYK, YCbCr, I;16 / I (16-bit: scaled to 0-255 by the type's range) and F
  (floats: clipped to 0-255); transparent pixels are composited over white;
  a JPEG's EXIF orientation is applied;
* ``channels``: 1 (grey, ITU-R 601 luma) or 3 (RGB);
* ``resize``: ``stretch`` (to the size, ignoring the aspect ratio), ``pad``
  (fit inside, centred on black: nothing cut off) or ``crop`` (fill the size,
  centre-cropped: nothing letter-boxed). An image already of the size is not
  resampled.

Anything that is not a whole image of a known format (corrupt, truncated,
empty, another kind of file) raises ``ImageDecodeError`` naming the file.
This module imports neither Kedro nor MLflow.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "MPO")  # MPO: a JPEG with extra frames (phone cameras)
ResizePolicy = Literal["stretch", "pad", "crop"]
RESIZE_POLICIES: tuple[str, ...] = ("stretch", "pad", "crop")


class ImageDecodeError(ValueError):
    """A file that is not a whole image of a supported format; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds before any conversion: its size, Pillow mode and whether it is in colour."""

    width: int
    height: int
    mode: str
    colour: bool


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has one of the image extensions (case-insensitive); hidden files are not images."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_image_files(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursive), in sorted order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def _open(source: str | Path | bytes, name: str):
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray)) and not source:
        raise ImageDecodeError(name, "empty (0 bytes)")
    if not isinstance(source, (bytes, bytearray)) and Path(source).stat().st_size == 0:
        raise ImageDecodeError(name, "empty file (0 bytes)")
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")  # noqa: SIM115
    try:
        image = Image.open(stream)
    except UnidentifiedImageError:
        stream.close()
        raise ImageDecodeError(name, f"not an image Pillow can read (supported: {', '.join(IMAGE_EXTENSIONS)})") from None
    if image.format not in FORMATS:
        stream.close()
        raise ImageDecodeError(name, f"a {image.format} image; supported: {', '.join(IMAGE_EXTENSIONS)}")
    return image, stream


def _loaded(source: str | Path | bytes, name: str):
    """The decoded Pillow image (pixels read in full, orientation applied), or ImageDecodeError."""
    from PIL import Image, ImageOps

    image, stream = _open(source, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()  # truncated or corrupt data fails here, not later
        if image.format in ("JPEG", "MPO") and image.getexif().get(0x0112, 1) != 1:  # 0x0112: orientation
            image = ImageOps.exif_transpose(image)  # a copy: only when there is something to turn
        return image
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageDecodeError(name, f"corrupt or truncated {image.format} data ({error})") from None
    finally:
        stream.close()


def _has_colour(image) -> bool:
    return image.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "PA")


def inspect_image(source: str | Path | bytes, name: str | None = None) -> ImageInfo:
    """Decode ``source`` in full (so that a bad file is caught) and say what it holds.

    ``colour`` looks at the pixels, not the mode: an RGB or palette image whose
    pixels are all grey (a scan saved as RGB JPEG) is not colour.
    """
    name = name or str(source if not isinstance(source, (bytes, bytearray)) else "<bytes>")
    image = _loaded(source, name)
    colour = False
    if _has_colour(image):
        rgb = np.asarray(_to_channels(image, 3))
        colour = bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())
    return ImageInfo(width=image.width, height=image.height, mode=image.mode, colour=colour)


def _to_8bit(image):
    """16-bit, 32-bit integer and float images as 8-bit grey (``L``)."""
    from PIL import Image

    values = np.asarray(image)
    if image.mode == "F":
        scaled = np.clip(values, 0, 255)
    else:
        top = 65535 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255
        scaled = values.astype(np.float64) * (255.0 / top)
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


def _to_channels(image, channels: int):
    from PIL import Image

    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image).convert("RGB")
    return image.convert("L" if channels == 1 else "RGB")


def _resize(image, size: tuple[int, int], resize: ResizePolicy):
    from PIL import Image, ImageOps

    height, width = size
    if image.size == (width, height):
        return image
    if resize == "stretch":
        return image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if resize == "crop":
        return ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR)
    return ImageOps.pad(image, (width, height), Image.Resampling.BILINEAR, color=0)


def decode_image(
    source: str | Path | bytes,
    size: tuple[int, int],
    channels: int,
    resize: ResizePolicy = "stretch",
    name: str | None = None,
) -> np.ndarray:
    """``source`` (a file path or its bytes) as a ``(height, width, channels)`` uint8 array of ``size`` =
    ``(height, width)``; ``ImageDecodeError`` naming ``name`` (default: the path) when it is not a whole image."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    name = name or str(source if not isinstance(source, (bytes, bytearray)) else "<bytes>")
    image = _resize(_to_channels(_loaded(source, name), channels), size, resize)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(size[0], size[1], channels)


def load_image(
    source: str | Path | bytes,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    resize: ResizePolicy = "stretch",
    name: str | None = None,
) -> tuple[np.ndarray, ImageInfo]:
    """``inspect_image`` and ``decode_image`` from one decode: the pixels and what the file holds.

    ``size`` None keeps the image's own size; ``channels`` None gives 3 when its pixels are in colour,
    else 1. With both given the pixels equal ``decode_image(source, size, channels, resize)``'s.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    name = name or str(source if not isinstance(source, (bytes, bytearray)) else "<bytes>")
    image = _loaded(source, name)
    colour, rgb, raw = False, None, b""
    if _has_colour(image):
        rgb = image if image.mode == "RGB" else _to_channels(image, 3)
        raw = rgb.tobytes()
        colour = not (raw[0::3] == raw[1::3] == raw[2::3])  # bytes compare in C and stop at the first difference
    info = ImageInfo(width=image.width, height=image.height, mode=image.mode, colour=colour)
    channels = channels or (3 if colour else 1)
    if channels == 3 and rgb is not None:
        converted = rgb
    else:
        converted = image if image.mode == "L" and channels == 1 else _to_channels(image, channels)
    if size is not None and converted.size != (size[1], size[0]):
        converted = _resize(converted, size, resize)
    if converted is not rgb:  # else: the RGB bytes made for the colour check
        raw = converted.tobytes()
    return np.frombuffer(raw, np.uint8).reshape(converted.height, converted.width, channels), info


def most_common_size(infos: Iterable[ImageInfo]) -> tuple[int, int]:
    """The ``(height, width)`` most images have (ties: the larger area, then the taller)."""
    counts: dict[tuple[int, int], int] = {}
    for info in infos:
        counts[info.height, info.width] = counts.get((info.height, info.width), 0) + 1
    if not counts:
        raise ValueError("no images to take a size from")
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw[0]))
