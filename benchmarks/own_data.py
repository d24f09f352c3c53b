"""Real data sets that are neither Fashion-MNIST nor MR, laid out as a user would bring them.

* ``adwaita_icons``: the PNG icons of Debian's ``adwaita-icon-theme`` (colour, with transparency),
  one class per category folder (actions, devices, places, status, ...). Each icon comes in several
  sizes (16 to 96 pixels); all sizes of one icon, and every icon sharing a picture with it, go to the
  same split, so the test set holds only pictures the network never saw, in ``train/`` and ``test/``
  class folders (dlflow's own leakage check found 206 shared pictures in a split by icon name).
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images) as grey PNGs in class
  folders (the seeded split is the pipeline's own).
* ``brown_genres``: the Brown corpus's 500 texts (``../shared/data/corpora/brown.zip``), one example
  per sentence labelled with its text's genre (15 classes), as a CSV with ``text`` and ``label``;
  sentences of the same text stay together only by chance (the split is by sentence, as in the
  benchmark's task: the genre of a sentence).

``python benchmarks/own_data.py OUT`` writes all three under ``OUT``.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ICON_THEME = Path("/usr/share/icons/Adwaita")
ICON_SIZES = ("16x16", "22x22", "24x24", "32x32", "48x48", "64x64", "96x96")
MIN_ICONS = 20  # categories with fewer distinct icons are left out (apps: 1)


def adwaita_icons(out: Path, test_fraction: float = 0.25, seed: int = 0) -> Path:
    """``out/adwaita-icons/{train,test}/<category>/<icon>-<size>.png``; returns the folder.

    The theme holds the same picture under several names and in several categories: icons that share
    a file's content are kept together (one split), and a content filed under two categories is left out,
    so the test images are pictures the network never saw, each with one label.
    """
    import hashlib

    if not ICON_THEME.is_dir():
        raise SystemExit(f"{ICON_THEME} is missing: apt-get install adwaita-icon-theme")
    files: dict[tuple[str, str], list[Path]] = defaultdict(list)  # (category, icon) -> its sizes
    for size in ICON_SIZES:
        for path in sorted((ICON_THEME / size).glob("*/*.png")):
            files[path.parent.name, path.stem].append(path)
    digest = {path: hashlib.sha256(path.read_bytes()).hexdigest() for paths in files.values() for path in paths}
    categories_of: dict[str, set[str]] = defaultdict(set)
    for (category, _), paths in files.items():
        for path in paths:
            categories_of[digest[path]].add(category)
    # Icons sharing any content form one group (union-find over the contents).
    parent = {icon: icon for icon in files}

    def root(icon):
        while parent[icon] != icon:
            parent[icon] = parent[parent[icon]]
            icon = parent[icon]
        return icon

    first_icon: dict[str, tuple[str, str]] = {}
    for icon, paths in files.items():
        for path in paths:
            other = first_icon.setdefault(digest[path], icon)
            parent[root(icon)] = root(other)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for icon in files:
        groups[root(icon)].append(icon)
    counts: dict[str, int] = defaultdict(int)
    for category, _ in files:
        counts[category] += 1
    rng = np.random.default_rng(seed)
    root_folder = out / "adwaita-icons"
    for key in sorted(groups):
        split = "test" if rng.random() < test_fraction else "train"
        for category, name in groups[key]:
            if counts[category] < MIN_ICONS:
                continue
            for path in files[category, name]:
                if len(categories_of[digest[path]]) > 1:
                    continue  # the same picture filed under two categories: no one label
                target = root_folder / split / category
                target.mkdir(parents=True, exist_ok=True)
                (target / f"{name}-{path.parts[-3]}.png").write_bytes(path.read_bytes())
    return root_folder


def digits(out: Path) -> Path:
    """``out/digits/<0..9>/<n>.png``: scikit-learn's 8x8 digits, 0-16 scaled to 0-255."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    root = out / "digits"
    for index, (image, label) in enumerate(zip(data.images, data.target)):
        target = root / str(label)
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(target / f"{index:04d}.png")
    return root


def brown_genres(out: Path, corpora: Path) -> Path:
    """``out/brown-genres.csv``: every Brown sentence (words only, tags dropped) and its text's genre."""
    path = out / "brown-genres.csv"
    with zipfile.ZipFile(corpora / "brown.zip") as archive:
        genres = dict(line.split() for line in archive.read("brown/cats.txt").decode().splitlines() if line.strip())
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["text", "label"])
            for name, genre in sorted(genres.items()):
                text = io.TextIOWrapper(archive.open(f"brown/{name}"), encoding="utf-8").read()
                for line in text.splitlines():
                    words = [token.rsplit("/", 1)[0] for token in line.split()]
                    sentence = " ".join(w for w in words if re.search(r"\w", w) or w in ".,;:!?'")
                    if len(sentence.split()) >= 3:
                        writer.writerow([sentence, genre])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpora", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for made in (adwaita_icons(args.out), digits(args.out), brown_genres(args.out, args.corpora)):
        print(made)


if __name__ == "__main__":
    main()
