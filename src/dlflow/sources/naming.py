"""What a data set is called, so that its model is called after it: one rule for registration and inference.

A registered data set is called by its source name (``fashion_mnist``, ``mnist``, ``mr``); a
user's folder of images or table of text by the folder's or the file's name, made safe for a
registered-model name (``/data/Product Photos/`` → ``product-photos``). ``conf/base`` names
models ``dlflow-<family>-${dlflow.dataset_name:<source>,<path>}`` through the config loader's
resolver (``dlflow.settings``), and the inference catalog finds them by the same expression.
"""

from __future__ import annotations

import re
from pathlib import PurePath

USER_SOURCES = ("folder", "table")  # the sources whose name comes from their path


def dataset_name(source: str, path: str | None = None, name: str | None = None) -> str:
    """``source`` itself, or for a user's ``folder`` / ``table`` the slug of the path's last part (a file without its suffix).

    ``name`` given (``--params dataset_name=...``) wins, slugged alike.
    """
    if name not in (None, ""):
        slug = re.sub(r"[^a-z0-9_]+", "-", str(name).lower()).strip("-")
        if not slug:
            raise ValueError(f"dataset_name {name!r} has no letters or digits: name the data set with some")
        return slug
    if source not in USER_SOURCES:
        return source
    if not path:
        parameter = "images_dir" if source == "folder" else "labelled_text"
        raise ValueError(f"{source} data needs a path: --params {parameter}=/path/to/your/data")
    part = PurePath(str(path).rstrip("/\\"))
    stem = part.stem if source == "table" else part.name
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot name a model after {path!r}: pass --params dataset_name=<name>")
    return slug
