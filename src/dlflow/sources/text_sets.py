"""Registry of the text data sets: where each file is published and its checksums.

* **MR sentence polarity v1.0** (Pang & Lee 2005; the "MR" benchmark of Kim 2014):
  two Latin-1 files, one sentence a line. They are published only inside
  ``rt-polaritydata.tar.gz``, whose own checksum upstream does not publish, so
  each member is verified by the sha256 of its extracted bytes (the offline
  mirror holds the extracted files under ``rt-polarity/``).
* **Corpora for Word2Vec** from the NLTK data repository: ``movie_reviews``
  (polarity data v2.0, 2,000 reviews), ``brown`` (the tagged Brown corpus) and
  ``subjectivity`` (Pang & Lee 2004: 5,000 Rotten Tomatoes snippets, the source
  of MR, and 5,000 IMDb plot sentences; read as unlabelled in-domain text), as
  the zips NLTK publishes (mirror: ``corpora/<name>.zip``).

Every file goes through the one downloader, :func:`dlflow.sources.download.fetch`.
"""

from __future__ import annotations

from pathlib import Path

from dlflow.sources.download import Checksum, RemoteFile, fetch, registered

POLARITY_ARCHIVE_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
POLARITY_ENCODING = "latin-1"
POLARITY_FILES: dict[str, RemoteFile] = {
    label: RemoteFile(
        name=f"MR sentence polarity v1.0 ({word} sentences)",
        filename=f"rt-polarity.{label}",
        urls=(POLARITY_ARCHIVE_URL,),
        checksums=(Checksum("sha256", digest),),
        mirror_relpath=f"rt-polarity/rt-polarity.{label}",
        archive_member=f"rt-polaritydata/rt-polarity.{label}",
    )
    for label, word, digest in (
        ("pos", "positive", "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0"),
        ("neg", "negative", "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca"),
    )
}

_NLTK_CORPORA_URL = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/"


def _nltk_corpus(name: str, title: str, sha256: str) -> RemoteFile:
    return RemoteFile(
        name=title,
        filename=f"{name}.zip",
        urls=(f"{_NLTK_CORPORA_URL}{name}.zip",),
        checksums=(Checksum("sha256", sha256),),
        mirror_relpath=f"corpora/{name}.zip",
    )


CORPUS_SOURCES: dict[str, RemoteFile] = {
    "movie_reviews": _nltk_corpus(
        "movie_reviews",
        "NLTK movie_reviews corpus (polarity data v2.0)",
        "a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008",
    ),
    "brown": _nltk_corpus(
        "brown",
        "NLTK Brown corpus (tagged)",
        "9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6",
    ),
    "subjectivity": _nltk_corpus(
        "subjectivity",
        "NLTK subjectivity corpus (Pang & Lee 2004, v1.0)",
        "741f3371e1a4375051b874fd82fd55857b90975473c91c19a3101cbe17fc4d8c",
    ),
}


def get_corpus_source(name: str) -> RemoteFile:
    """The registered corpus called ``name``; ValueError lists the known names."""
    return registered(CORPUS_SOURCES, name, "text corpus", "corpora")


def fetch_polarity(folder: Path | str, *, mirror: Path | str | None = None, progress: bool = True) -> tuple[Path, Path]:
    """Make ``folder/rt-polarity.pos`` and ``folder/rt-polarity.neg`` verified
    copies of MR v1.0 (present → mirror → archive download) and return both paths."""
    folder = Path(folder)
    return tuple(  # type: ignore[return-value]
        fetch(POLARITY_FILES[label], folder / POLARITY_FILES[label].filename, mirror=mirror, progress=progress)
        for label in ("pos", "neg")
    )


def fetch_corpus(name: str, dest: Path | str, *, mirror: Path | str | None = None, progress: bool = True) -> Path:
    """Make ``dest`` a verified copy of the registered corpus ``name`` and return it."""
    return fetch(get_corpus_source(name), Path(dest), mirror=mirror, progress=progress)
