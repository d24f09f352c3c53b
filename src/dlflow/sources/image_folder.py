"""Your own images: a folder of class folders becomes the image tables (train, validation, test).

Two layouts, told apart by the folder's subfolders::

    images/cat/1.png  images/dog/2.jpg ...                  one folder per class: the test split is
                                                            seeded and stratified (``test_fraction``)
    images/train/cat/1.png  images/test/cat/9.png ...       train/ and test/ (or train/ alone: the
    images/val/cat/5.png (optional: val/, valid/ or         test split is drawn from it), each with
    validation/)                                            class folders; val/ is the validation split

Class names are the class folders' names, sorted; a class folder may nest subfolders.
Files with an image extension (``image_files.IMAGE_EXTENSIONS``) are decoded, every one
of them, in a pool of processes working through chunks of files, each file opened once
(its bytes give the sha256 and the pixels); other files are ignored and counted.

* Size and channels default to the data's: the most common ``(height, width)`` and 3
  channels (RGB) when any image is in colour, else 1. Given ones override them, and
  ``resize`` (``stretch``, ``pad``, ``crop``) says how other sizes reach that size.
* Bad files (corrupt, truncated, empty, not an image) raise ``BadImageFilesError``
  listing every one with its reason; with ``on_bad_file="skip"`` they are left out and
  listed in the report instead.
* A seeded split keeps identical files (same sha256) together, so it never leaks;
  ``find_duplicates`` reports the files of one content found in several splits
  (what a user's own train/ and test/ folders may hold) and labels that disagree.

This module imports neither Kedro nor MLflow.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dlflow.sources.image_files import (
    IMAGE_EXTENSIONS,
    RESIZE_POLICIES,
    ImageDecodeError,
    ImageInfo,
    ResizePolicy,
    load_image,
    most_common_size,
)
from dlflow.sources.splits import stratified_indices

logger = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
SPLITS = ("train", "val", "test")
OnBadFile = Literal["fail", "skip"]
#: A decoded image of its own size is kept from the first pass up to this many bytes (larger ones are
#: decoded again at the chosen size), so memory stays about the size of the finished tables.
KEEP_BYTES = 4 << 20
LARGE_PIXELS = 512 * 512  # a size taken from the data above this draws a warning
_LISTED = 1000  # bad files named in an error message at most (all of them are in the report)


class ImageFolderError(ValueError):
    """The images folder is not laid out as class folders (optionally inside train/ and test/)."""


@dataclass(frozen=True)
class BadFile:
    """A file with an image extension that is not a whole image: ``path`` relative to the images folder."""

    path: str
    reason: str


class BadImageFilesError(ValueError):
    """Files that could not be decoded; ``bad_files`` lists every one."""

    def __init__(self, root: Path, bad_files: Sequence[BadFile]) -> None:
        self.root = root
        self.bad_files = list(bad_files)
        reasons = Counter(_reason_kind(bad.reason) for bad in self.bad_files)
        listed = "\n".join(f"  {bad.path}: {bad.reason}" for bad in self.bad_files[:_LISTED])
        more = f"\n  ... and {len(self.bad_files) - _LISTED} more" if len(self.bad_files) > _LISTED else ""
        super().__init__(
            f"{len(self.bad_files)} file(s) in {root} are not whole images "
            f"({', '.join(f'{n} {kind}' for kind, n in reasons.most_common())}):\n{listed}{more}\n"
            "Fix or remove them, or leave them out with --params images.on_bad_file=skip "
            "(they are then listed in the run's data/ingestion_report.json)."
        )


@dataclass(frozen=True)
class FolderScan:
    """What ``scan_image_folder`` found: each image file (relative path, class, split folder) in sorted order."""

    root: Path
    layout: Literal["class folders", "split folders"]
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: np.ndarray  # int64, index into class_names
    splits: tuple[str, ...]  # per file: "train", "val", "test", or "" (class folders: split later)
    ignored: tuple[str, ...] = ()  # files without an image extension

    @property
    def split_folders(self) -> tuple[str, ...]:
        return tuple(split for split in SPLITS if split in set(self.splits))


@dataclass
class ImageSplits:
    """The three image tables (``val`` may have no rows), the class names and what ingestion did."""

    train: Any  # pandas.DataFrame (dlflow.sources.image_table)
    val: Any
    test: Any
    class_names: list[str]
    report: dict[str, Any] = field(default_factory=dict)
    index: Any = None  # pandas.DataFrame or None: split, label (, path, sha256) of every row, in table order


# --------------------------------------------------------------------------- scanning


def _listing(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(folders, image files, other files) directly in ``folder``: names, sorted, hidden ones left out."""
    folders, images, others = [], [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                folders.append(entry.name)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(entry.name)
            else:
                others.append(entry.name)
    return sorted(folders), sorted(images), sorted(others)


def _files_below(folder: Path, root: Path) -> tuple[list[str], list[str]]:
    """(image files, other files) anywhere below ``folder``, relative to ``root`` (posix), sorted."""
    images, others = [], []
    prefix = len(str(root)) + 1
    for directory, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        relative = directory[prefix:].replace(os.sep, "/")
        for name in names:
            if name.startswith("."):
                continue
            path = f"{relative}/{name}" if relative else name
            (images if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS else others).append(path)
    return sorted(images), sorted(others)


def _layout_help(root: Path) -> str:
    return (
        f"Lay out {root} as one folder per class ({root}/cat/1.png, {root}/dog/2.jpg), "
        "optionally inside train/ and test/ (and val/) folders."
    )


def scan_image_folder(root: str | Path) -> FolderScan:
    """Find the classes and image files of ``root`` in either layout; ``ImageFolderError`` says what is wrong."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ImageFolderError(f"images_dir {root} is not a folder (--params images_dir=/path/to/your/images)")
    root = root.resolve()
    folders, loose, _ = _listing(root)
    splits_here = {name: SPLIT_FOLDERS[name.lower()] for name in folders if name.lower() in SPLIT_FOLDERS}
    if splits_here:
        return _scan_splits(root, folders, loose, splits_here)
    if loose:
        raise ImageFolderError(
            f"{len(loose)} image(s) lie directly in {root} ({', '.join(loose[:5])}{', ...' if len(loose) > 5 else ''}), "
            f"outside a class folder: the class of an image is the folder it is in. {_layout_help(root)}"
        )
    paths, labels, ignored = [], [], []
    for label, name in enumerate(folders):
        images, others = _files_below(root / name, root)
        paths += images
        labels += [label] * len(images)
        ignored += others
    scan = FolderScan(
        root, "class folders", tuple(folders), tuple(paths), np.array(labels, np.int64), ("",) * len(paths), tuple(ignored)
    )
    _check_classes(scan)
    return scan


def _scan_splits(root: Path, folders: list[str], loose: list[str], splits_here: dict[str, str]) -> FolderScan:
    others = [name for name in folders if name not in splits_here]
    if others or loose:
        found = ", ".join([f"{name}/" for name in others] + loose[:5])
        raise ImageFolderError(
            f"{root} holds split folders ({', '.join(f'{n}/' for n in splits_here)}) and also {found}: "
            "with train/ and test/ folders, every class folder goes inside them."
        )
    by_split: dict[str, str] = {}
    for name, split in splits_here.items():
        if split in by_split:
            raise ImageFolderError(f"{root} has both {by_split[split]}/ and {name}/: keep one validation folder")
        by_split[split] = name
    if "train" not in by_split:
        raise ImageFolderError(f"{root} has {', '.join(f'{n}/' for n in splits_here)} but no train/ folder. {_layout_help(root)}")
    class_folders: dict[str, list[str]] = {}
    for split in SPLITS:
        if split not in by_split:
            continue
        classes, loose_here, _ = _listing(root / by_split[split])
        if loose_here:
            raise ImageFolderError(
                f"{len(loose_here)} image(s) lie directly in {root / by_split[split]} ({', '.join(loose_here[:5])}), "
                f"outside a class folder. {_layout_help(root)}"
            )
        class_folders[split] = classes
    class_names = sorted(set().union(*class_folders.values()))
    index = {name: i for i, name in enumerate(class_names)}
    paths, labels, splits, ignored = [], [], [], []
    for split, classes in class_folders.items():
        for name in classes:
            images, others = _files_below(root / by_split[split] / name, root)
            paths += images
            labels += [index[name]] * len(images)
            splits += [split] * len(images)
            ignored += others
    scan = FolderScan(
        root, "split folders", tuple(class_names), tuple(paths), np.array(labels, np.int64), tuple(splits), tuple(ignored)
    )
    _check_classes(scan)
    return scan


def _check_classes(scan: FolderScan) -> None:
    counts = np.bincount(scan.labels, minlength=len(scan.class_names))
    if len(scan.class_names) < 2:
        found = f"one ({scan.class_names[0]})" if scan.class_names else "none"
        raise ImageFolderError(
            f"a classifier needs two or more class folders; {scan.root} has {found}. {_layout_help(scan.root)}"
        )
    empty = [name for name, n in zip(scan.class_names, counts) if n == 0]
    if empty:
        raise ImageFolderError(
            f"class folder(s) {', '.join(empty)} in {scan.root} hold no image files "
            f"(extensions: {', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder(s)"
        )
    if "train" in scan.splits:
        train = np.bincount(scan.labels[np.array(scan.splits) == "train"], minlength=len(scan.class_names))
        missing = [name for name, n in zip(scan.class_names, train) if n == 0]
        if missing:
            logger.warning("Class(es) %s have no training images in %s/train", ", ".join(missing), scan.root)


# --------------------------------------------------------------------------- decoding


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _pool_context():
    """``fork`` on Linux (no re-import: workers start in milliseconds), the platform's default elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


def _decode_one(root: str, path: str, size, channels, resize, keep_bytes: int) -> tuple:
    """(sha256, height, width, channels, colour, pixels or None, error or None) of one file, opened once."""
    try:
        with open(os.path.join(root, path), "rb") as stream:
            data = stream.read()
    except OSError as error:
        return None, 0, 0, 0, False, None, f"cannot be read ({error.strerror or error})"
    digest = hashlib.sha256(data).hexdigest()
    try:
        pixels, info = load_image(data, size, channels, resize, name=path)
    except ImageDecodeError as error:
        return digest, 0, 0, 0, False, None, error.reason
    except Exception as error:  # noqa: BLE001  Pillow raises more kinds than it documents on malformed files
        return digest, 0, 0, 0, False, None, f"could not be decoded ({type(error).__name__}: {error})"
    kept = pixels.tobytes() if size is not None or pixels.nbytes <= keep_bytes else None
    return digest, info.height, info.width, pixels.shape[2], info.colour, kept, None


def _decode_chunk(task: tuple) -> list[tuple]:
    root, paths, size, channels, resize, keep_bytes = task
    return [_decode_one(root, path, size, channels, resize, keep_bytes) for path in paths]


class _Progress:
    """A tqdm bar where stderr is a terminal; log lines every tenth of the work elsewhere."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.total, self.desc, self.done, self.start = total, desc, 0, time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="img", disable=None if enabled else True, mininterval=0.5)
        self.log = enabled and self.bar.disable and total >= 1000
        self.next_log = total // 10

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        if self.log and self.done >= self.next_log and self.done < self.total:
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            logger.info(
                "%s: %d of %d files (%.0f%%, %.0f images/s)", self.desc, self.done, self.total, 100 * self.done / self.total, rate
            )
            self.next_log += self.total // 10

    def close(self) -> None:
        self.bar.close()


def decode_files(
    root: str | Path,
    paths: Sequence[str],
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    resize: ResizePolicy = "stretch",
    workers: int | None = None,
    progress: bool = True,
    desc: str = "decoding images",
) -> list[tuple]:
    """Decode ``root/<path>`` for every path, in order: one ``_decode_one`` tuple per file.

    ``workers`` processes (default: one per core) each take chunks of files; small jobs run here.
    """
    n = len(paths)
    workers = max(1, min(workers or _cores(), n))
    chunk = int(np.clip(n // (workers * 8), 8, 256))
    tasks = [(str(root), list(paths[i : i + chunk]), size, channels, resize, KEEP_BYTES) for i in range(0, n, chunk)]
    results: list[tuple] = []
    bar = _Progress(n, desc, progress)
    try:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                results += _decode_chunk(task)
                bar.update(len(task[1]))
        else:
            with _pool_context().Pool(min(workers, len(tasks))) as pool:
                for done in pool.imap(_decode_chunk, tasks):
                    results += done
                    bar.update(len(done))
    finally:
        bar.close()
    return results


def read_image_folder(
    root: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    resize: ResizePolicy = "stretch",
    test_fraction: float = 0.2,
    split_seed: int = 42,
    on_bad_file: OnBadFile = "fail",
    workers: int | None = None,
    progress: bool = True,
) -> ImageSplits:
    """Scan, decode and split the images of ``root``: the image tables and a report of what was done.

    ``image_size`` = (height, width) and ``channels`` (1 or 3) default to the data's (the most
    common size; 3 if any image is in colour). Without a test/ folder, ``test_fraction`` of the
    distinct images (stratified by class, seeded by ``split_seed``) is held out for testing.
    """
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    if on_bad_file not in ("fail", "skip"):
        raise ValueError(f"on_bad_file must be 'fail' or 'skip', got {on_bad_file!r}")
    started = time.perf_counter()
    scan = scan_image_folder(root)
    if scan.ignored:
        shown = ", ".join(scan.ignored[:5]) + (", ..." if len(scan.ignored) > 5 else "")
        logger.info("Ignoring %d file(s) without an image extension in %s: %s", len(scan.ignored), scan.root, shown)
    logger.info(
        "Decoding %d image files of %d classes from %s (%s)", len(scan.paths), len(scan.class_names), scan.root, scan.layout
    )
    given_size = tuple(int(n) for n in image_size) if image_size is not None else None
    results = decode_files(
        scan.root, scan.paths, size=given_size, channels=channels, resize=resize, workers=workers, progress=progress
    )
    plan = plan_tables(scan, results, given_size=given_size, channels=channels, resize=resize,
                       test_fraction=test_fraction, split_seed=split_seed, on_bad_file=on_bad_file)  # fmt: skip
    pixels = _finish_pixels(scan, results, plan, workers, progress)
    labels = scan.labels[plan.good]
    tables = {split: _table(plan.split_of == split, pixels, labels, plan.paths, plan.digests, plan.shape) for split in SPLITS}
    elapsed = time.perf_counter() - started
    logger.info(
        "Ingested %d images (%dx%dx%d) in %.1f s (%.0f images/s): %s",
        len(plan.good), *plan.shape, elapsed, len(plan.good) / max(elapsed, 1e-9),
        ", ".join(f"{len(tables[s])} {s}" for s in SPLITS),
    )  # fmt: skip
    report = {**plan.report, "seconds": round(elapsed, 2)}
    return ImageSplits(tables["train"], tables["val"], tables["test"], list(scan.class_names), report)


@dataclass(frozen=True)
class FolderPlan:
    """What the decoded files' sizes, colours, digests and errors decide: the good files (indices into the
    scan), the tables' shape, each good file's split, and the ingestion report."""

    good: np.ndarray  # int64 indices into scan.paths
    shape: tuple[int, int, int]  # (height, width, channels) of every table row
    resized_already: bool  # decoded at the size given in the parameters
    split_of: np.ndarray  # per good file: "train", "val" or "test"
    paths: list[str]
    digests: list[str]
    report: dict[str, Any]


def plan_tables(
    scan: FolderScan,
    results: Sequence[tuple],
    *,
    given_size: tuple[int, int] | None,
    channels: int | None,
    resize: ResizePolicy,
    test_fraction: float,
    split_seed: int,
    on_bad_file: OnBadFile,
) -> FolderPlan:
    """Decide the tables from each file's ``_decode_one`` tuple (the pixels are not looked at): bad files
    (``BadImageFilesError`` unless ``on_bad_file="skip"``), the size and channels, and the splits."""
    bad = [BadFile(path, result[6]) for path, result in zip(scan.paths, results) if result[6] is not None]
    if bad and on_bad_file == "fail":
        raise BadImageFilesError(scan.root, bad)
    if bad:
        logger.warning("Skipped %d bad file(s) of %d in %s (listed in the ingestion report): %s", len(bad), len(scan.paths),
                       scan.root, "; ".join(f"{b.path}: {b.reason}" for b in bad[:5]) + (" ..." if len(bad) > 5 else ""))  # fmt: skip
    good = np.array([i for i, result in enumerate(results) if result[6] is None], np.int64)
    if len(good) == 0:
        raise ImageFolderError(f"none of the {len(scan.paths)} image files in {scan.root} could be decoded")
    emptied = sorted(set(scan.class_names) - {scan.class_names[label] for label in scan.labels[good]})
    if emptied:
        logger.warning("Class(es) %s keep no image once the bad files are left out", ", ".join(emptied))
    native = Counter((results[i][1], results[i][2]) for i in good)
    size = given_size or most_common_size(
        ImageInfo(width=results[i][2], height=results[i][1], mode="", colour=False) for i in good
    )
    if given_size is None and size[0] * size[1] > LARGE_PIXELS:
        logger.warning("The images are %dx%d: a CNN trains slowly at that size; set images.image_size (e.g. 128x128)", *size)
    colour_images = sum(bool(results[i][4]) for i in good)
    channels_from = (
        "parameters"
        if channels
        else "data: " + ("RGB, some images are in colour" if colour_images else "grey, no image is in colour")
    )
    channels = channels or (3 if colour_images else 1)
    digests = [results[i][0] for i in good]
    labels = scan.labels[good]
    split_of = _assign_splits(np.array([scan.splits[i] for i in good], dtype=object), labels, digests, test_fraction, split_seed)
    report = {
        "source": "folder",
        "images_dir": str(scan.root),
        "layout": scan.layout,
        "split_folders": list(scan.split_folders),
        "test_split": "test/ folder" if "test" in scan.splits else f"seeded, stratified: {test_fraction} of the distinct images (seed {split_seed})",
        "validation_split": "val/ folder" if "val" in scan.splits else "drawn from the training split by the CNN pipeline",
        "image_files": len(scan.paths),
        "images": int(len(good)),
        "skipped": len(bad),
        "bad_files": [{"path": b.path, "reason": b.reason} for b in bad],
        "ignored_files": len(scan.ignored),
        "ignored_examples": list(scan.ignored[:20]),
        "image_size": list(size),
        "image_size_from": "parameters" if given_size else "data: the most common size",
        "channels": channels,
        "channels_from": channels_from,
        "colour_images": colour_images,
        "resize": resize,
        "resized": int(sum(n for hw, n in native.items() if hw != tuple(size))),
        "sizes_found": {f"{h}x{w}": n for (h, w), n in native.most_common(10)},
        "class_names": list(scan.class_names),
    }  # fmt: skip
    paths = [scan.paths[i] for i in good]
    return FolderPlan(good, (*size, channels), given_size is not None, split_of, paths, digests, report)


def final_pixels(result: tuple, plan: FolderPlan) -> bytes | None:
    """A good file's table pixels from its first-pass ``_decode_one`` tuple; None when it must be decoded again
    at the plan's size (its pixels were too large to keep, or of another size)."""
    _, h, w, c, _, kept, _ = result
    if kept is None or (not plan.resized_already and (h, w) != plan.shape[:2]):
        return None
    if c != plan.shape[2]:  # a grey image among colour ones: Pillow's L -> RGB copies the value
        return np.repeat(np.frombuffer(kept, np.uint8), 3).tobytes()
    return kept


def decode_again(root: Path, paths: Sequence[str], plan: FolderPlan, workers: int | None, progress: bool) -> list[bytes]:
    """``paths``' pixels decoded at the plan's size and channels; ``ImageFolderError`` if one no longer decodes."""
    logger.info("Resizing %d image(s) to %dx%d (%s)", len(paths), *plan.shape[:2], plan.report["resize"])
    redone = decode_files(root, paths, size=plan.shape[:2], channels=plan.shape[2], resize=plan.report["resize"],
                          workers=workers, progress=progress, desc="resizing images")  # fmt: skip
    for path, result in zip(paths, redone):
        if result[6] is not None or result[5] is None:  # changed on disk since the first pass
            raise ImageFolderError(f"{root / path} changed while it was read: {result[6]}")
    return [result[5] for result in redone]


def _finish_pixels(scan: FolderScan, results, plan: FolderPlan, workers, progress) -> list[bytes]:
    """Each good file's pixels at the plan's shape: the first pass's where they fit, the rest decoded again."""
    pixels = [final_pixels(results[i], plan) for i in plan.good]
    again = [k for k, value in enumerate(pixels) if value is None]
    if again:
        redone = decode_again(scan.root, [plan.paths[k] for k in again], plan, workers, progress)
        for k, value in zip(again, redone):
            pixels[k] = value
    return pixels  # type: ignore[return-value]


def _assign_splits(splits: np.ndarray, labels: np.ndarray, digests: list[str], fraction: float, seed: int) -> np.ndarray:
    """Each image's split: its folder's, with the test split drawn from the unsplit (or training) images when
    there is no test/ folder, seeded and stratified by class over distinct contents (duplicates stay together)."""
    if (splits == "test").any():
        return splits
    pool = np.flatnonzero((splits == "") | (splits == "train"))
    first: dict[str, int] = {}
    for i in pool:
        first.setdefault(digests[i], i)
    representatives = np.array(list(first.values()), np.int64)
    size = round(len(representatives) * fraction)
    if not 0 < size < len(representatives):
        raise ImageFolderError(
            f"{len(representatives)} distinct images are too few to hold out test_fraction={fraction} of them for "
            "testing: add images, add a test/ folder, or change images.test_fraction"
        )
    chosen, _ = stratified_indices(labels[representatives], size, seed)
    test_contents = {digests[i] for i in representatives[chosen]}
    result = splits.copy()
    result[pool] = "train"
    result[[i for i in pool if digests[i] in test_contents]] = "test"
    return result


def _table(mask: np.ndarray, pixels: list[bytes], labels: np.ndarray, paths: list[str], digests: list[str], shape):
    from dlflow.sources.image_table import rows_table

    rows = np.flatnonzero(mask)
    return rows_table(
        [pixels[i] for i in rows], labels[rows], shape, paths=[paths[i] for i in rows], digests=[digests[i] for i in rows]
    )


# --------------------------------------------------------------------------- leakage


def find_duplicates(tables: Mapping[str, Any]) -> dict[str, Any]:
    """Contents (sha256 of the file) found in more than one split, and contents given more than one label.

    ``tables`` maps split names to image tables with ``path``, ``sha256`` and ``label`` columns; a table
    without ``sha256`` (a registered IDX source) is not checked, which the result says.
    """
    import pandas as pd

    unchecked = [split for split, table in tables.items() if len(table) and "sha256" not in table.columns]
    if unchecked:
        return {"checked": False, "reason": f"no file digests in the {', '.join(unchecked)} table(s)", "leaked_images": 0}
    frames = [
        pd.DataFrame({"split": split, "path": table["path"], "sha256": table["sha256"], "label": table["label"]})
        for split, table in tables.items()
        if len(table)
    ]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "path", "sha256", "label"])
    order = {split: k for k, split in enumerate(tables)}
    leaked, conflicting, pairs = [], [], Counter()
    for digest, group in rows.groupby("sha256", sort=True):
        splits = sorted(set(group["split"]), key=order.__getitem__)
        if len(splits) > 1:
            leaked.append({"sha256": digest, "files": {s: sorted(group.loc[group["split"] == s, "path"]) for s in splits}})
            for k, a in enumerate(splits):
                for b in splits[k + 1 :]:
                    pairs[f"{a}-{b}"] += 1
        if group["label"].nunique() > 1:
            conflicting.append({"sha256": digest, "files": dict(zip(group["path"], group["label"].astype(int)))})
    return {
        "checked": True,
        "leaked_images": len(leaked),  # distinct contents found in more than one split
        "leaked_by_splits": dict(sorted(pairs.items())),
        "conflicting_labels": len(conflicting),
        "leaked": leaked,
        "conflicting": conflicting,
    }


def _reason_kind(reason: str) -> str:
    """The kind of a bad file, from ``image_files``' reasons, for the error's one-line count."""
    kinds = (("empty", "empty"), ("not an image", "not images"), ("corrupt", "corrupt or truncated"), ("a ", "of another format"))
    return next((kind for prefix, kind in kinds if reason.startswith(prefix)), "unreadable")
