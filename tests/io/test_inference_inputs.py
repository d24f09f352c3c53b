"""Batch inference's inputs read in chunks (``dlflow.io.ImagesFileDataset``, ``SentencesFileDataset``), from real
files written here: IDX (gzip and raw), parquet, image folders written by Pillow, text, CSV, TSV and JSON Lines.

Chunk sizes never divide the inputs, so every test crosses chunk boundaries; every refusal must name its file.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError
from PIL import Image

from dlflow.config import parse
from dlflow.io import ImagesFileDataset, SentencesFileDataset
from dlflow.io.inference_inputs import InputRefused
from dlflow.sources.idx import write_idx
from dlflow.sources.image_files import list_image_files

RNG = np.random.default_rng(7)
IMAGES = RNG.integers(0, 256, (13, 6, 5), dtype=np.uint8)


def images(path: Path, size: int = 5) -> list:
    return list(ImagesFileDataset(filepath=str(path)).load().chunks(size))


def sentences(path: Path, size: int = 2, **options) -> list:
    return list(SentencesFileDataset(filepath=str(path)).load().chunks(size, **options))


def refused(read, *needles: str) -> str:
    """``read()`` raises an ``InputRefused`` whose message holds every needle; the message."""
    with pytest.raises(InputRefused) as error:
        read()
    message = str(error.value)
    for needle in needles:
        assert needle in message, (needle, message)
    return message


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compressed", [True, False])
def test_an_idx_file_streams_in_chunks_gzip_or_raw(tmp_path: Path, compressed: bool) -> None:
    path = write_idx(IMAGES, tmp_path / "images.idx", gzip=compressed)
    loaded = ImagesFileDataset(filepath=str(path)).load()
    assert (loaded.what, loaded.total, loaded.source) == ("images", 13, str(path))
    chunks = list(loaded.chunks(5))
    assert [len(chunk) for chunk in chunks] == [5, 5, 3]
    assert (np.concatenate([chunk.records for chunk in chunks]) == IMAGES).all()
    assert np.concatenate([chunk.ids["row"] for chunk in chunks]).tolist() == list(range(13))
    assert chunks[1].where() == f"{path} images 5-9" and chunks[2].where(1, 2) == f"{path} image 11"
    assert chunks[0].records.flags.writeable
    # other IDX types and ranks come back in native byte order
    colour = RNG.random((3, 4, 4, 3)).astype(np.float32)
    chunks = images(write_idx(colour, tmp_path / "colour.idx", gzip=compressed), 2)
    assert np.concatenate([chunk.records for chunk in chunks]).tolist() == colour.tolist()
    assert chunks[0].records.dtype == np.float32 and chunks[0].records.dtype.isnative


def test_bad_idx_files_are_refused_by_name(tmp_path: Path) -> None:
    empty = tmp_path / "empty.idx"
    empty.write_bytes(b"")
    refused(lambda: images(empty), "empty.idx is empty (0 bytes)")
    text = tmp_path / "notes.idx"
    text.write_text("hello there")
    refused(lambda: images(text), "notes.idx is not an IDX file")
    labels = write_idx(np.zeros(4, np.uint8), tmp_path / "labels.idx")
    refused(lambda: images(labels), "labels.idx holds a 1-dimensional array (a labels file?)")
    nothing = write_idx(np.zeros((0, 2, 2), np.uint8), tmp_path / "nothing.idx")
    refused(lambda: images(nothing), "nothing.idx holds no images")
    raw = write_idx(IMAGES, tmp_path / "raw.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-7])
    refused(lambda: ImagesFileDataset(filepath=str(tmp_path / "short.idx")).load(), "short.idx is truncated")  # at load
    (tmp_path / "long.idx").write_bytes(raw + b"\0")
    refused(lambda: ImagesFileDataset(filepath=str(tmp_path / "long.idx")).load(), "long.idx is followed by trailing bytes")
    (tmp_path / "header.idx").write_bytes(raw[:6])
    refused(lambda: images(tmp_path / "header.idx"), "header.idx is truncated inside its IDX header")

    # gzip: the size shows only while streaming; a refusal comes after the chunks before it
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[: 16 + 30 * 11 + 4]))
    stream = ImagesFileDataset(filepath=str(tmp_path / "short.gz")).load().chunks(5)
    assert len(next(stream)) == 5 and len(next(stream)) == 5
    refused(lambda: next(stream), "short.gz is truncated", "ends inside image 11")
    (tmp_path / "long.gz").write_bytes(gzip.compress(raw + b"\0\0"))
    refused(lambda: images(tmp_path / "long.gz"), "long.gz is followed by trailing bytes")
    compressed = gzip.compress(raw)
    (tmp_path / "cut.gz").write_bytes(compressed[: len(compressed) // 2])
    refused(lambda: images(tmp_path / "cut.gz"), "cut.gz is a corrupt or truncated gzip file")
    refused(lambda: images(tmp_path / "missing.idx"), "No images file or folder at", "missing.idx", "images_path=")


# --------------------------------------------------------------------------- parquet pixels


def test_a_pixels_table_streams_by_record_batches(tmp_path: Path) -> None:
    flat = IMAGES.reshape(13, -1)
    pq.write_table(pa.table({"pixels": [row.tobytes() for row in flat]}), tmp_path / "bytes.parquet", row_group_size=4)
    chunks = images(tmp_path / "bytes.parquet")
    assert sum(map(len, chunks)) == 13 and all(len(chunk) <= 5 for chunk in chunks)
    assert np.concatenate([chunk.ids["row"] for chunk in chunks]).tolist() == list(range(13))
    assert np.concatenate([chunk.records for chunk in chunks]).reshape(13, -1).tolist() == flat.tolist()  # 30: flat
    assert chunks[0].records.shape[1:] == (30,) and chunks[0].where() == f"{tmp_path / 'bytes.parquet'} rows 0-4"

    square = RNG.integers(0, 256, (7, 16))
    pd.DataFrame({"pixels": list(square.astype(np.float64))}).to_parquet(tmp_path / "lists.parquet")
    chunks = images(tmp_path / "lists.parquet", 3)
    assert [chunk.records.shape for chunk in chunks] == [(3, 4, 4), (3, 4, 4), (1, 4, 4)]
    assert np.concatenate([chunk.records for chunk in chunks]).reshape(7, -1).tolist() == square.tolist()

    # the image tables ingestion writes: each row's height, width and channels
    colour = RNG.integers(0, 256, (4, 2, 3, 3), dtype=np.uint8)
    table = pd.DataFrame({"pixels": [image.tobytes() for image in colour], "height": 2, "width": 3, "channels": 3})
    table.to_parquet(tmp_path / "colour.parquet")
    chunks = images(tmp_path / "colour.parquet", 3)
    assert (np.concatenate([chunk.records for chunk in chunks]) == colour).all()


def test_a_table_in_part_files_streams_part_after_part(tmp_path: Path) -> None:
    """The pipeline's image tables (dlflow.io.ParquetShardsDataset): a folder of part files, read as one table."""
    folder = tmp_path / "test"
    folder.mkdir()
    flat = IMAGES.reshape(13, -1)
    for number, rows in enumerate((slice(0, 6), slice(6, 8), slice(8, 13))):
        table = pd.DataFrame(
            {"label": 0, "pixels": [row.tobytes() for row in flat[rows]], "height": 6, "width": 5, "channels": 1}
        )
        table.to_parquet(folder / f"part-{number:05d}.parquet")
    loaded = ImagesFileDataset(filepath=str(folder)).load()
    assert loaded.total == 13
    chunks = list(loaded.chunks(4))
    assert all(len(chunk) <= 4 for chunk in chunks) and (np.concatenate([c.records for c in chunks]) == IMAGES).all()
    assert np.concatenate([chunk.ids["row"] for chunk in chunks]).tolist() == list(range(13))  # rows of the whole table
    bad = pd.read_parquet(folder / "part-00002.parquet")
    bad.loc[1, "height"] = 7
    bad.to_parquet(folder / "part-00002.parquet")
    refused(lambda: images(folder), f"{folder / 'part-00002.parquet'}: row 1 is 7x5x1, row 0 6x5x1")  # the part, its row

    sentences_folder = tmp_path / "sentences"
    sentences_folder.mkdir()
    for number, texts in enumerate((["one .", "two .", "three ."], ["four ."])):
        pd.DataFrame({"sentence": texts}).to_parquet(sentences_folder / f"part-{number:05d}.parquet")
    chunks = sentences(sentences_folder, 2)
    assert [chunk.ids["row"].tolist() for chunk in chunks] == [[0, 1], [2], [3]]
    assert [s for chunk in chunks for s in chunk.records["sentence"]] == ["one .", "two .", "three .", "four ."]


def test_bad_pixel_tables_are_refused_by_name_and_row(tmp_path: Path) -> None:
    pd.DataFrame({"label": [1]}).to_parquet(tmp_path / "labels.parquet")
    refused(lambda: images(tmp_path / "labels.parquet"), "labels.parquet has no 'pixels' column")
    pd.DataFrame({"pixels": [["1", "2"], ["a", "b"]]}).to_parquet(tmp_path / "text.parquet")
    refused(lambda: images(tmp_path / "text.parquet"), "text.parquet: its 'pixels' column holds list<element: string>")
    pq.write_table(pa.table({"pixels": pa.array([], pa.binary())}), tmp_path / "none.parquet")
    refused(lambda: images(tmp_path / "none.parquet"), "none.parquet holds no images (0 rows)")
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet at all")
    refused(lambda: images(tmp_path / "garbage.parquet"), "garbage.parquet is not a readable parquet file")
    for bad, shown in (([-5.0], "-5"), ([300.0], "300"), ([1.5], "1.5"), ([np.inf], "inf"), ([np.nan], "nan")):
        rows = [np.zeros(4)] * 9
        rows[7] = np.r_[np.zeros(3), bad]
        pd.DataFrame({"pixels": rows}).to_parquet(tmp_path / "bad.parquet")
        stream = ImagesFileDataset(filepath=str(tmp_path / "bad.parquet")).load().chunks(5)
        assert len(next(stream)) == 5  # the first chunk is fine; the bad value is in the second
        refused(lambda: next(stream), f"bad.parquet: 'pixels' row 7 has the value {shown} at position 3", "0-255")
    pd.DataFrame({"pixels": [np.zeros(4, np.uint8)] * 6 + [np.zeros(9, np.uint8)]}).to_parquet(tmp_path / "ragged.parquet")
    refused(lambda: images(tmp_path / "ragged.parquet"), "ragged.parquet: 'pixels' rows differ in length: row 6 holds 9")
    pq.write_table(pa.table({"pixels": pa.array([b"ab", None, b"cd"])}), tmp_path / "null.parquet")
    refused(lambda: images(tmp_path / "null.parquet"), "null.parquet: 'pixels' row 1 is empty (null)")
    table = pd.DataFrame({"pixels": [bytes(6), bytes(6)], "height": [2, 3], "width": [3, 2]})
    table.to_parquet(tmp_path / "shapes.parquet")
    refused(lambda: images(tmp_path / "shapes.parquet"), "shapes.parquet: row 1 is 3x2x1, row 0 2x3x1")
    table.assign(height=4, width=4).to_parquet(tmp_path / "sizes.parquet")
    refused(lambda: images(tmp_path / "sizes.parquet"), "sizes.parquet: row 0 holds 6 pixel values", "4x4x1 = 16")


# --------------------------------------------------------------------------- image folders


def _save(image: Image.Image, path: Path, **options) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path.read_bytes()


def test_a_folder_of_images_streams_recursively_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    grey = Image.fromarray(RNG.integers(0, 256, (9, 7), dtype=np.uint8))
    colour = Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    written = {
        "b/cat.PNG": _save(grey, folder / "b" / "cat.PNG"),
        "b/c/deep.jpg": _save(colour, folder / "b" / "c" / "deep.jpg", quality=90),
        "a.png": _save(colour.convert("RGBA"), folder / "a.png"),
        "d.bmp": _save(grey.convert("P"), folder / "d.bmp"),
        "e.tiff": _save(Image.fromarray(np.full((5, 5), 40000, np.uint16)), folder / "e.tiff"),
        "b/f.webp": _save(colour, folder / "b" / "f.webp"),
        "b0.png": _save(grey, folder / "b0.png"),
    }
    (folder / "README.txt").write_text("not an image")
    _save(grey, folder / ".hidden.png")
    loaded = ImagesFileDataset(filepath=str(folder)).load()
    assert (loaded.what, loaded.total) == ("images", None)
    chunks = list(loaded.chunks(3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    paths = [path for chunk in chunks for path in chunk.ids["path"]]
    assert paths == [path.relative_to(folder).as_posix() for path in list_image_files(folder)]  # one order, one rule
    assert set(paths) == set(written)
    encoded = pd.concat([chunk.records for chunk in chunks], ignore_index=True)
    assert list(encoded.columns) == ["image"]
    assert [base64.b64decode(value) for value in encoded["image"]] == [written[path] for path in paths]
    assert chunks[0].where(1, 2) == str(folder / paths[1]) and chunks[0].where() == f"{folder}: files {paths[0]} ... {paths[2]}"

    # one image file is a folder of one
    [chunk] = images(folder / "b" / "cat.PNG")
    assert chunk.ids["path"].tolist() == ["cat.PNG"] and base64.b64decode(chunk.records["image"][0]) == written["b/cat.PNG"]


def test_bad_image_files_are_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for index in range(5):
        _save(Image.fromarray(RNG.integers(0, 256, (64, 64), dtype=np.uint8)), folder / f"{index}.png")
    good = (folder / "0.png").read_bytes()
    (folder / "3.png").write_bytes(good[: len(good) // 2])  # truncated: the second chunk
    stream = ImagesFileDataset(filepath=str(folder)).load().chunks(3)
    assert len(next(stream)) == 3
    refused(lambda: next(stream), f"{folder / '3.png'}: corrupt or truncated PNG", "remove or replace that file")
    (folder / "3.png").write_bytes(b"")
    refused(lambda: images(folder), f"{folder / '3.png'}: empty (0 bytes)")
    (folder / "3.png").write_text("<html>not a picture</html>")
    refused(lambda: images(folder), f"{folder / '3.png'}: not an image Pillow can read")

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("nothing to see")
    refused(lambda: images(empty), f"No image files below {empty}", ".png", "no parquet part files", "images_path=")


# --------------------------------------------------------------------------- sentences


def test_a_text_file_streams_by_lines(tmp_path: Path) -> None:
    path = tmp_path / "reviews.txt"
    path.write_bytes("\ufeffgood film .\r\n\r\n  bad film .  \nok .\nfine .\n\n".encode())
    loaded = SentencesFileDataset(filepath=str(path)).load()
    assert (loaded.what, loaded.total) == ("sentences", None)
    chunks = list(loaded.chunks(3))
    assert [chunk.records["sentence"].tolist() for chunk in chunks] == [["good film .", "bad film .", "ok ."], ["fine ."]]
    assert [chunk.ids["row"].tolist() for chunk in chunks] == [[0, 2, 3], [4]]  # the line, from 0: blank lines count
    assert chunks[0].where() == f"{path} lines 1-4" and chunks[1].where() == f"{path} line 5"

    path.write_text("café crème .\nnaïve .\n", encoding="latin-1")
    assert [c.records["sentence"].tolist() for c in sentences(path, encoding="latin-1")] == [["café crème .", "naïve ."]]
    path.write_text("día uno .\n\ndía dos .\nfin .\n", encoding="utf-16")
    chunks = sentences(path, encoding="utf-16")
    assert [chunk.records["sentence"].tolist() for chunk in chunks] == [["día uno .", "día dos ."], ["fin ."]]
    assert [chunk.ids["row"].tolist() for chunk in chunks] == [[0, 2], [3]]


def test_bad_text_files_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "reviews.txt"
    path.write_bytes(b"")
    refused(lambda: sentences(path), "reviews.txt is empty (0 bytes)")
    path.write_text("\n   \n\n")
    refused(lambda: sentences(path), "reviews.txt holds no sentences: every line is blank")
    path.write_bytes("one .\ntwo .\nthree .\ncaf\xe9 .\n".encode("latin-1"))
    stream = SentencesFileDataset(filepath=str(path)).load().chunks(2)
    assert len(next(stream)) == 2
    refused(lambda: next(stream), "reviews.txt: line 4 is not valid utf-8 (byte 0xe9 at column 4", "inference.rnn.encoding=")
    refused(lambda: sentences(tmp_path / "gone.txt"), "No sentences file at", "gone.txt", "sentences_path=<file>")
    with pytest.raises(DatasetError, match="read-only"):
        SentencesFileDataset(filepath=str(path)).save(pd.DataFrame())


TEXTS = ["a fine film .", 'a "quoted" , comma , film', "dull .", "tab\there", "naïve .", "last one ."]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_table_of_sentences_streams_its_text_column(tmp_path: Path, suffix: str) -> None:
    table = pd.DataFrame({"id": range(6), "review": TEXTS, "stars": [5, 4, 1, 3, 3, 2]})
    path = tmp_path / f"tickets{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(table), path, row_group_size=4)
    elif suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        table.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    chunks = sentences(path, 4, text_column="review")
    assert sum(map(len, chunks)) == 6 and all(len(chunk) <= 4 for chunk in chunks)
    assert [s for chunk in chunks for s in chunk.records["sentence"]] == TEXTS
    assert [r for chunk in chunks for r in chunk.ids["row"]] == list(range(6))  # JSON Lines: its lines, here one per row
    unit = "lines 1-4" if suffix == ".jsonl" else "rows 0-3"
    assert chunks[0].where() == f"{path} {unit}"
    refused(lambda: sentences(path), f"tickets{suffix}", "'sentence'", "inference.rnn.text_column=")


def test_bad_tables_are_refused_by_name_and_row(tmp_path: Path) -> None:
    csv = tmp_path / "tickets.csv"
    csv.write_text("id,sentence\n1,fine .\n2,good .\n\n3,\n")
    refused(lambda: sentences(csv), "tickets.csv: row 2 (line 5) has the sentence ''; every row needs a non-empty string")
    csv.write_text("id,sentence\n1,fine .\n2,too,many\n")
    refused(lambda: sentences(csv), "tickets.csv: row 1 (line 3) has 3 fields, the header 2")
    csv.write_text("id,sentence\n")
    refused(lambda: sentences(csv), "tickets.csv holds no sentences: no rows")
    csv.write_bytes("sentence\nfine .\ncaf\xe9 .\n".encode("latin-1"))
    refused(lambda: sentences(csv), "tickets.csv is not valid utf-8", "inference.rnn.encoding=")
    assert [c.records["sentence"].tolist() for c in sentences(csv, 5, encoding="latin-1")] == [["fine .", "café ."]]

    lines = tmp_path / "tickets.jsonl"
    for text, message in (
        ('{"sentence": "fine ."}\n{"sentence": "good ."\n', "tickets.jsonl: line 2 is not JSON"),
        ('{"sentence": "fine ."}\n["a list"]\n', "tickets.jsonl: line 2 holds a list, not an object"),
        ('{"sentence": "fine ."}\n\n{"text": "x"}\n', "tickets.jsonl: line 3 has no 'sentence' (its keys: ['text'])"),
        ('{"sentence": "fine ."}\n{"sentence": 42}\n', "tickets.jsonl: line 2 has the sentence 42; every row needs"),
    ):
        lines.write_text(text)
        refused(lambda: sentences(lines), message)

    table = tmp_path / "tickets.parquet"
    pd.DataFrame({"sentence": ["fine .", "good .", None]}).to_parquet(table)
    refused(lambda: sentences(table), "tickets.parquet: row 2 has the sentence None")
    pd.DataFrame({"sentence": [1, 2]}).to_parquet(table)
    refused(lambda: sentences(table), "tickets.parquet: its column 'sentence' holds int64, not text")
    pd.DataFrame({"sentence": pd.Series([], dtype=str)}).to_parquet(table)
    refused(lambda: sentences(table), "tickets.parquet holds no sentences (0 rows)")


def test_the_inference_parameters_are_checked() -> None:
    block = {"model_name": "m", "alias": "champion", "batch_size": 8, "chunk_size": 16}
    parsed = parse("inference", {"cnn": block, "rnn": block | {"text_column": "review", "encoding": "latin-1"}})
    assert (parsed.cnn.chunk_size, parsed.rnn.text_column, parsed.rnn.encoding) == (16, "review", "latin-1")
    assert parse("inference", {"cnn": {"model_name": "m"}, "rnn": {"model_name": "m"}}).rnn.text_column == "sentence"
    for bad, needle in (
        ({"cnn": block | {"chunk_size": 0}, "rnn": block}, "inference.cnn.chunk_size"),
        ({"cnn": block, "rnn": block | {"encoding": "klingon"}}, "unknown encoding 'klingon'"),
        ({"cnn": block | {"text_column": "x"}, "rnn": block}, "inference.cnn.text_column"),
    ):
        with pytest.raises(ValueError, match=needle):
            parse("inference", bad)


def test_nothing_is_read_before_the_first_chunk(tmp_path: Path) -> None:
    path = write_idx(IMAGES, tmp_path / "images.idx", gzip=True)
    stream = ImagesFileDataset(filepath=str(path)).load().chunks(4)
    path.unlink()  # load() only looked at the header; the chunks open the file when asked
    with pytest.raises(FileNotFoundError):
        next(stream)
    with pytest.raises(ValueError, match="chunk size must be at least 1"):
        ImagesFileDataset(filepath=str(write_idx(IMAGES, tmp_path / "again.idx"))).load().chunks(0)
