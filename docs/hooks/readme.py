"""MkDocs hook: the site's home page is the repository's README.md, so the two cannot disagree.

The README links into the site as ``docs/<page>.md`` and shows ``docs/images/...`` (relative paths that
work on GitHub); on the site, where ``docs/`` is the root, the same links lose that prefix.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

DOCS_LINK = re.compile(r"(\]\(|src=\")docs/")


def on_files(files, config):
    readme = Path(config.config_file_path).resolve().parent / "README.md"
    content = DOCS_LINK.sub(r"\1", readme.read_text(encoding="utf-8"))
    existing = files.get_file_from_path("index.md")
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, "index.md", content=content))
    return files


def on_serve(server, config, builder):
    server.watch(str(Path(config.config_file_path).resolve().parent / "README.md"))
    return server
