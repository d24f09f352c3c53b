"""Text sources and readers on real formats: Latin-1 files, zips, folders, text8, tagged
Brown text, a tar.gz served over HTTP on 127.0.0.1, and the real offline mirror."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlflow.sources.download import fetch
from dlflow.sources.errors import DataSourceError, DataValidationError
from dlflow.sources.text import (
    TEXT8_CHUNK_TOKENS,
    assign_folds,
    read_corpus,
    read_polarity,
)
from dlflow.sources.text_sets import (
    CORPUS_SOURCES,
    POLARITY_ARCHIVE_URL,
    POLARITY_FILES,
    fetch_corpus,
    fetch_polarity,
    get_corpus_source,
)
from dlflow.text import tokenize
from tests.conftest import MIRROR

FAST = {"backoff": 0.01, "timeout": 5.0, "progress": False}
OUR_ERRORS = (DataValidationError, DataSourceError)

# Latin-1 bytes that are not valid UTF-8: 0xE9 = é, 0x85 = NEL (a cp1252 ellipsis in the MR files).
POS = b"a touching film about caf\xe9 society . \n\n  simply great\x85 and moving  \n"
NEG = b"dull , dull , dull .\r\nna\xefve and tedious\n"


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLFLOW_DATA_MIRROR", raising=False)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name.endswith("/"):
                zf.mkdir(name.rstrip("/"))
            else:
                zf.writestr(name, data)
    return path


def needs_mirror(*relpaths: str) -> None:
    missing = [p for p in relpaths if not (MIRROR / p).is_file()]
    if missing:
        pytest.fail(
            f"offline mirror lacks {missing} (looked in {MIRROR}): set DLFLOW_DATA_MIRROR to a folder laid out like shared/data"
        )


# --- read_polarity ------------------------------------------------------------------------


def test_read_polarity_latin1(tmp_path: Path) -> None:
    frame = read_polarity(write(tmp_path / "p", POS), write(tmp_path / "n", NEG))
    assert frame["sentence"].tolist() == [
        "a touching film about café society .",
        "simply great\x85 and moving",  # NEL is not a line break
        "dull , dull , dull .",
        "naïve and tedious",
    ]
    assert frame["label"].tolist() == [1, 1, 0, 0]
    assert frame["label"].dtype == np.int8


def test_utf8_read_of_latin1_names_file_offset_and_fix(tmp_path: Path) -> None:
    pos = write(tmp_path / "rt-polarity.pos", POS)
    with pytest.raises(DataValidationError) as info:
        read_polarity(pos, write(tmp_path / "n", NEG), encoding="utf-8")
    message = str(info.value)
    offset = POS.index(b"\xe9")
    for needle in (str(pos), "utf-8", f"offset {offset}", "line 1", "0xe9", "latin-1"):
        assert needle in message


def test_utf8_file_declared_ascii_suggests_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "u.txt", "first line\nsecond naïve line\n".encode())
    with pytest.raises(DataValidationError, match=r"line 2.*encoding=utf-8"):
        list(read_corpus(path, encoding="ascii"))


@pytest.mark.parametrize("content", [b"", b"\n \n\t\r\n"])
def test_empty_polarity_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    neg = write(tmp_path / "rt-polarity.neg", content)
    with pytest.raises(DataValidationError, match=f"{neg}.*empty"):
        read_polarity(write(tmp_path / "p", POS), neg)


def test_missing_polarity_file(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        read_polarity(write(tmp_path / "p", POS), tmp_path / "nope")


def test_unknown_encoding(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown text encoding"):
        read_polarity(write(tmp_path / "p", POS), write(tmp_path / "n", NEG), encoding="klingon")
    with pytest.raises(ValueError, match="Unknown text encoding"):
        read_corpus(write(tmp_path / "c", b"x"), encoding="base64")


def test_binary_polarity_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="binary"):
        read_polarity(write(tmp_path / "p", b"abc\x00def\n"), write(tmp_path / "n", NEG))


# --- assign_folds ---------------------------------------------------------------------------


def small_frame(n_pos: int = 23, n_neg: int = 17) -> pd.DataFrame:
    labels = np.array([1] * n_pos + [0] * n_neg, dtype=np.int8)
    return pd.DataFrame({"sentence": [f"s{i}" for i in range(len(labels))], "label": labels})


def test_assign_folds_is_stratified_seeded_and_keeps_rows() -> None:
    frame = small_frame()
    a, b, c = assign_folds(frame, 5, seed=1), assign_folds(frame, 5, seed=1), assign_folds(frame, 5, seed=2)
    assert a["fold"].dtype == np.int8
    assert a["fold"].tolist() == b["fold"].tolist() != c["fold"].tolist()
    pd.testing.assert_frame_equal(a.drop(columns="fold"), frame)
    assert "fold" not in frame.columns
    sizes = a["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    for label, group in a.groupby("label"):
        per_fold = group["fold"].value_counts().reindex(range(5), fill_value=0)
        assert per_fold.max() - per_fold.min() <= 1, label


@pytest.mark.parametrize("n_folds", [1, 0, True, 2.5, 128])
def test_assign_folds_rejects_bad_fold_counts(n_folds: object) -> None:
    with pytest.raises(ValueError, match="n_folds"):
        assign_folds(small_frame(), n_folds)  # type: ignore[arg-type]


def test_assign_folds_needs_labels_and_rows() -> None:
    with pytest.raises(ValueError, match="label"):
        assign_folds(pd.DataFrame({"x": range(20)}))
    with pytest.raises(ValueError, match="3 rows"):
        assign_folds(small_frame(2, 1), 10)


# --- the real MR files through the mirror -----------------------------------------------------


def test_real_polarity_from_mirror(tmp_path: Path) -> None:
    needs_mirror("rt-polarity/rt-polarity.pos", "rt-polarity/rt-polarity.neg")
    pos, neg = fetch_polarity(tmp_path / "rt-polarity", mirror=MIRROR, progress=False)
    frame = read_polarity(pos, neg)
    assert (frame["label"] == 1).sum() == 5331 and (frame["label"] == 0).sum() == 5331
    assert frame["sentence"].str.len().min() > 0
    folds = assign_folds(frame)
    sizes = folds["fold"].value_counts()
    assert len(sizes) == 10 and sizes.between(1065, 1067).all()
    per_label = folds.groupby(["fold", "label"]).size()
    assert per_label.between(533, 534).all()
    with pytest.raises(DataValidationError, match="rt-polarity.pos.*not valid utf-8.*latin-1"):
        read_polarity(pos, neg, encoding="utf-8")


def test_real_corpora_read_as_sentences(tmp_path: Path) -> None:
    needs_mirror("rt-polarity/rt-polarity.pos", "corpora/movie_reviews.zip", "corpora/brown.zip")
    pos, neg = fetch_polarity(tmp_path / "rt-polarity", mirror=MIRROR, progress=False)
    polarity = read_polarity(pos, neg)["sentence"].tolist()
    reviews, brown = (
        list(read_corpus(fetch_corpus(name, tmp_path / "corpora" / f"{name}.zip", mirror=MIRROR, progress=False)))
        for name in ("movie_reviews", "brown")
    )
    assert (len(polarity), len(reviews), len(brown)) == (10_662, 64_720, 57_340)
    assert reviews[0].startswith("plot : two teen couples go to a church party")
    assert brown[0].startswith("The Fulton County Grand Jury said Friday an investigation of Atlanta's")
    assert "/" not in brown[0]
    assert sum(len(tokenize(s)) for s in polarity + reviews + brown) == 2_764_751


def test_real_brown_skips_documentation() -> None:
    needs_mirror("corpora/brown.zip")
    with zipfile.ZipFile(MIRROR / "corpora" / "brown.zip") as zf:
        assert {"brown/README", "brown/CONTENTS", "brown/cats.txt"} <= set(zf.namelist())
    sentences = list(read_corpus(MIRROR / "corpora" / "brown.zip"))
    assert not any("Francis" in s and "Kucera" in s for s in sentences[:50] + sentences[-50:])
    assert not any(s.startswith("ca01") for s in sentences)  # cats.txt lines look like "ca01 news"
    tagged = list(read_corpus(MIRROR / "corpora" / "brown.zip", format="lines"))
    assert tagged[0].startswith("The/at Fulton/np-tl")


# --- read_corpus ------------------------------------------------------------------------------


def test_plain_file_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", b"  one sentence .\r\n\n two\n")
    assert list(read_corpus(path)) == ["one sentence .", "two"]


def test_gzipped_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt.gz", gzip.compress(b"one\ntwo\n"))
    assert list(read_corpus(path)) == ["one", "two"]
    bad = write(tmp_path / "bad.gz", b"\x1f\x8bnot really gzip")
    with pytest.raises(DataValidationError, match="bad.gz"):
        list(read_corpus(bad))


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "c.txt", content)
    with pytest.raises(DataValidationError, match=f"{path} is empty"):
        list(read_corpus(path))


def test_missing_path_and_bad_format(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        read_corpus(tmp_path / "nope")  # eager: before iteration
    with pytest.raises(ValueError, match="Unknown corpus format"):
        read_corpus(write(tmp_path / "c.txt", b"x"), format="csv")  # type: ignore[arg-type]


def test_folder_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "b" / "z.txt", b"third\n")
    write(root / "b" / "a.txt", b"second\n")
    write(root / "a.txt", b"first\n")
    write(root / "README", b"not corpus\n")
    write(root / "cats.txt", b"ca01 news\n")
    write(root / ".hidden.txt", b"hidden\n")
    write(root / "data.csv", b"x,y\n")
    write(root / "empty.txt", b"")
    write(root / "blob", b"\x00\x01\x02")
    write(root / "c" / "d", b"fourth\n")
    assert list(read_corpus(root)) == ["first", "second", "third", "fourth"]


def test_folder_without_text(tmp_path: Path) -> None:
    write(tmp_path / "f" / "README", b"docs\n")
    with pytest.raises(DataValidationError, match="holds no text files"):
        read_corpus(tmp_path / "f")
    write(tmp_path / "g" / "a.txt", b"")
    write(tmp_path / "g" / "b.txt", b"\x00bin")
    with pytest.raises(DataValidationError, match=r"holds no text.*a\.txt \(empty\).*b\.txt \(binary\)"):
        list(read_corpus(tmp_path / "g"))


def test_zip_of_text(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "c.zip",
        {
            "corpus/": b"",
            "corpus/README": b"About this corpus\n",
            "corpus/pos/b.txt": b"second line\n",
            "corpus/pos/a.txt": "first naïve line\n\n".encode(),
            "corpus/empty.txt": b"",
            "corpus/image.png": b"\x89PNG\x00",
        },
    )
    assert list(read_corpus(path)) == ["first naïve line", "second line"]


def test_zip_detected_by_magic_without_suffix(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "c.zip", {"a.txt": b"hello\n"})
    assert list(read_corpus(path.rename(tmp_path / "corpus.bin"))) == ["hello"]


@pytest.mark.parametrize(
    "members",
    [
        {"a.txt": b"", "b.txt": b"\n \n"},
        {"a.txt": b"\x00\x01\x02", "b": b"ab\x00cd"},
    ],
)
def test_zip_with_only_empty_or_binary_members(tmp_path: Path, members: dict[str, bytes]) -> None:
    path = make_zip(tmp_path / "c.zip", members)
    with pytest.raises(DataValidationError, match=f"{path} holds no text"):
        list(read_corpus(path))


def test_zip_with_no_text_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "c.zip", {"README": b"docs", "x.png": b"\x89PNG"})
    with pytest.raises(DataValidationError, match="holds no text files.*README"):
        read_corpus(path)


def test_zip_member_undecodable_names_member_and_zip(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "c.zip", {"ok.txt": b"fine\n", "bad.txt": b"ok\nna\xefve\n"})
    sentences = read_corpus(path)
    with pytest.raises(DataValidationError) as info:
        list(sentences)
    message = str(info.value)
    for needle in ("member bad.txt", str(path), "offset 5", "line 2", "0xef", "latin-1"):
        assert needle in message
    assert list(read_corpus(path, encoding="latin-1")) == ["ok", "naïve", "fine"]


def test_corrupt_zip(tmp_path: Path) -> None:
    path = write(tmp_path / "c.zip", b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataValidationError, match="not a readable zip"):
        read_corpus(path)
    good = make_zip(tmp_path / "d.zip", {"a.txt": b"hello world " * 1000})
    data = bytearray(good.read_bytes())
    data[60] ^= 0xFF  # inside the compressed member
    write(good, bytes(data))
    with pytest.raises(DataValidationError, match="member a.txt"):
        list(read_corpus(good))


def test_text8_chunks(tmp_path: Path) -> None:
    tokens = [f"w{i % 97}" for i in range(2 * TEXT8_CHUNK_TOKENS + 500)]
    path = write(tmp_path / "text8", (" " + " ".join(tokens)).encode())
    chunks = list(read_corpus(path))
    assert [len(c.split()) for c in chunks] == [TEXT8_CHUNK_TOKENS, TEXT8_CHUNK_TOKENS, 500]
    assert " ".join(chunks).split() == tokens


def test_text8_across_blocks(tmp_path: Path) -> None:
    # 1.5 MB with no newline: tokens split by the 1 MiB read boundary must survive intact
    tokens = [f"token{i}" for i in range(160_000)]
    path = write(tmp_path / "text8", " ".join(tokens).encode())
    chunks = list(read_corpus(path))
    assert all(len(c.split()) == TEXT8_CHUNK_TOKENS for c in chunks)
    assert " ".join(chunks).split() == tokens
    zipped = make_zip(tmp_path / "text8.zip", {"text8": path.read_bytes()})
    assert list(read_corpus(zipped)) == chunks


def test_lines_across_blocks_and_late_decode_error(tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * 50 for i in range(30_000)]  # about 1.8 MB
    data = ("\n".join(lines) + "\n").encode()
    path = write(tmp_path / "big.txt", data)
    assert list(read_corpus(path)) == [line.strip() for line in lines]
    bad = write(tmp_path / "bad.txt", data + b"caf\xe9\n")
    with pytest.raises(DataValidationError, match=f"offset {len(data) + 3} \\(line 30001\\)"):
        list(read_corpus(bad))


def test_brown_style_tags_are_stripped(tmp_path: Path) -> None:
    text = (
        b"\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ./.\n"
        b"\n\tAtlanta's/np$ 1/2/cd jury/nn ,/, (/( said/vbd )/) it/pps ./.\n"
    )
    path = write(tmp_path / "ca01", text)
    assert list(read_corpus(path)) == [
        "The Fulton County said `` no evidence '' .",
        "Atlanta's 1/2 jury , ( said ) it .",
    ]
    assert list(read_corpus(path, format="lines"))[0].startswith("The/at")
    plain = write(tmp_path / "plain.txt", b"read the and/or clause , then 1/2 of it\n")
    assert list(read_corpus(plain)) == ["read the and/or clause , then 1/2 of it"]
    assert list(read_corpus(plain, format="tagged")) == ["read the and clause , then 1/2 of it"]


def test_forced_lines_on_text8(tmp_path: Path) -> None:
    path = write(tmp_path / "one-line", b"a b c")
    assert list(read_corpus(path, format="lines")) == ["a b c"]
    assert list(read_corpus(path, format="text8")) == ["a b c"]


# --- sources: registry, archive route over HTTP, mirror route ------------------------------------


from tests.sources.http_server import Server  # noqa: E402


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


ARCHIVE = {
    "rt-polaritydata/README.1.0.txt": b"readme\n",
    "rt-polaritydata/rt-polarity.pos": POS,
    "rt-polaritydata/rt-polarity.neg": NEG,
}


def polarity_remotes(url: str) -> dict[str, object]:
    """The registered MR files, pointed at ``url`` and at the test's own member checksums."""
    from dlflow.sources.download import Checksum

    return {
        label: dataclasses.replace(
            remote,
            urls=(url,),
            checksums=(Checksum("sha256", hashlib.sha256(ARCHIVE[remote.archive_member]).hexdigest()),),
        )
        for label, remote in POLARITY_FILES.items()
    }


def test_polarity_registry() -> None:
    for label, remote in POLARITY_FILES.items():
        assert remote.urls == (POLARITY_ARCHIVE_URL,)
        assert remote.archive_member == f"rt-polaritydata/rt-polarity.{label}"
        assert remote.mirror_relpath == f"rt-polarity/rt-polarity.{label}"
    assert set(CORPUS_SOURCES) == {"movie_reviews", "brown", "subjectivity"}
    assert get_corpus_source("brown").urls == (
        "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/brown.zip",
    )
    assert get_corpus_source("brown").mirror_relpath == "corpora/brown.zip"
    with pytest.raises(ValueError, match="known corpora: brown, movie_reviews, subjectivity"):
        get_corpus_source("text9")


@pytest.mark.parametrize("pack", [tar_gz, zip_bytes], ids=["tar.gz", "zip"])
def test_archive_members_are_downloaded_extracted_and_verified(server: Server, tmp_path: Path, pack: object) -> None:
    url = server.serve("/rt-polaritydata.tar.gz", (200, pack(ARCHIVE)))  # type: ignore[operator]
    dest = tmp_path / "raw"
    for label, remote in polarity_remotes(url).items():
        fetch(remote, dest / f"rt-polarity.{label}", **FAST)  # type: ignore[arg-type]
    assert server.hits["/rt-polaritydata.tar.gz"] == 2
    assert sorted(p.name for p in dest.iterdir()) == ["rt-polarity.neg", "rt-polarity.pos"]
    frame = read_polarity(dest / "rt-polarity.pos", dest / "rt-polarity.neg")
    assert len(frame) == 4
    # present and verified: no network
    fetch(polarity_remotes(url)["pos"], dest / "rt-polarity.pos", **FAST)  # type: ignore[arg-type]
    assert server.hits["/rt-polaritydata.tar.gz"] == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (tar_gz({"rt-polaritydata/other": b"x"}), "has no member rt-polaritydata/rt-polarity.pos"),
        (tar_gz(ARCHIVE)[:-40], "cannot extract"),
        (b"this is no archive at all", "cannot extract"),
        (tar_gz({**ARCHIVE, "rt-polaritydata/rt-polarity.pos": b"tampered\n"}), "failed checksum verification"),
    ],
    ids=["missing-member", "truncated", "not-an-archive", "wrong-member"],
)
def test_bad_archives_fail_and_leave_nothing(server: Server, tmp_path: Path, body: bytes, message: str) -> None:
    url = server.serve("/rt-polaritydata.tar.gz", (200, body))
    dest = tmp_path / "raw" / "rt-polarity.pos"
    with pytest.raises(DataSourceError, match=message) as info:
        fetch(polarity_remotes(url)["pos"], dest, retries=0, **FAST)  # type: ignore[arg-type]
    assert url in str(info.value)
    assert list(dest.parent.iterdir()) == []


def test_mirror_route_is_preferred_for_archive_members(server: Server, tmp_path: Path) -> None:
    url = server.serve("/rt-polaritydata.tar.gz", (200, tar_gz(ARCHIVE)))
    mirror = tmp_path / "mirror"
    write(mirror / "rt-polarity" / "rt-polarity.pos", POS)
    write(mirror / "rt-polarity" / "rt-polarity.neg", NEG)
    dest = tmp_path / "raw"
    for label, remote in polarity_remotes(url).items():
        fetch(remote, dest / f"rt-polarity.{label}", mirror=mirror, **FAST)  # type: ignore[arg-type]
    assert server.hits["/rt-polaritydata.tar.gz"] == 0
    assert (dest / "rt-polarity.neg").read_bytes() == NEG


def test_offline_without_mirror_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dlflow.sources.text_sets.POLARITY_FILES", polarity_remotes("http://127.0.0.1:9/x.tar.gz"))
    with pytest.raises(DataSourceError, match="DLFLOW_DATA_MIRROR"):
        fetch_polarity(tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_real_corpora_fetch_from_mirror(tmp_path: Path) -> None:
    needs_mirror("corpora/movie_reviews.zip")
    path = fetch_corpus("movie_reviews", tmp_path / "movie_reviews.zip", mirror=MIRROR, progress=False)
    sentences = list(read_corpus(path))
    assert len(sentences) == 64_720
    assert not any("Sentiment Polarity Dataset" in s for s in sentences)  # README skipped


# --- properties: arbitrary bytes give results or the project's own errors --------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RANDOM_TEXTISH = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from([b"a", b"b ", b"\n", b"\r", b" ", b"\xe9", b"\xc3\xa9", b"\x85", b"/nn", b"\x00", b"\xff"]), max_size=80
    ).map(b"".join),
)


@FUZZ
@given(data=RANDOM_TEXTISH, encoding=st.sampled_from(["latin-1", "utf-8"]))
def test_random_bytes_as_polarity_file(tmp_path: Path, data: bytes, encoding: str) -> None:
    pos = write(tmp_path / "rt-polarity.pos", data)
    neg = write(tmp_path / "rt-polarity.neg", b"fine\n")
    try:
        frame = read_polarity(pos, neg, encoding=encoding)
    except OUR_ERRORS as exc:
        assert str(pos) in str(exc)
        return
    assert all(s == s.strip() and s and "\n" not in s for s in frame["sentence"])
    if encoding == "latin-1":
        assert frame["sentence"].iloc[:-1].tolist() == [
            line.strip() for line in data.decode("latin-1").split("\n") if line.strip()
        ]


@FUZZ
@given(
    data=RANDOM_TEXTISH,
    encoding=st.sampled_from(["latin-1", "utf-8", "ascii", "utf-16"]),
    format=st.sampled_from(["auto", "lines", "tagged", "text8"]),
)
def test_random_bytes_as_corpus_file(tmp_path: Path, data: bytes, encoding: str, format: str) -> None:
    path = write(tmp_path / "corpus.txt", data)
    try:
        sentences = list(read_corpus(path, encoding=encoding, format=format))  # type: ignore[arg-type]
    except OUR_ERRORS as exc:
        assert str(path) in str(exc)
        return
    assert sentences and all(isinstance(s, str) and s == s.strip() and s for s in sentences)


@FUZZ
@given(members=st.lists(RANDOM_TEXTISH, min_size=1, max_size=3), encoding=st.sampled_from(["latin-1", "utf-8"]))
def test_random_bytes_as_zip_members(tmp_path: Path, members: list[bytes], encoding: str) -> None:
    path = make_zip(tmp_path / "c.zip", {f"m{i}.txt": data for i, data in enumerate(members)})
    try:
        sentences = list(read_corpus(path, encoding=encoding))
    except OUR_ERRORS as exc:
        assert str(path) in str(exc)
        return
    assert sentences and all(s == s.strip() and s for s in sentences)


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_as_zip_file(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "c.zip", b"PK\x03\x04" + data)
    try:
        list(read_corpus(path))
    except OUR_ERRORS as exc:
        assert str(path) in str(exc)


def test_the_subjectivity_corpus_reads_both_of_its_numbered_files(data_mirror: Path) -> None:
    sentences = list(read_corpus(data_mirror / "corpora" / "subjectivity.zip"))
    assert len(sentences) == 10_000  # 5,000 plot sentences, then 5,000 Rotten Tomatoes snippets; no README
    assert not any("Subjectivity Dataset" in s for s in sentences)
